package conformance

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/plumtree-go/plumtree/transport"
)

// transportRule is one rule of TestTransport: its name and sentence, the
// path it needs, and the function that checks it. The suite runs exactly
// the rules of transportRules, in order, so a rule cannot be listed and not
// run, or run and not listed.
type transportRule struct {
	Subtest
	need  pathNeed
	check func(e *tenv)
}

// transportRules is TestTransport's table. The rules after the first block
// (from datagram/buffers-across-calls, in transport_more.go) check what the
// contract states across calls, sizes, counts and time, where a rule that
// tries one case lets a broken adapter through (issue 19).
var transportRules = []transportRule{
	{Subtest{"datagram/both-ways", "A datagram from A reaches B and one from B reaches A, each unchanged, with From set to the sender's LocalAddr."}, needDatagram, ruleDatagramBothWays},
	{Subtest{"datagram/max-size", "A datagram of exactly MaxDatagramSize bytes arrives whole."}, needDatagram, ruleDatagramMaxSize},
	{Subtest{"datagram/too-large", "SendDatagram refuses a datagram longer than MaxDatagramSize with a *transport.TooLargeError giving the path, size and limit, and sends nothing."}, needDatagram, ruleDatagramTooLarge},
	{Subtest{"datagram/empty", "An empty datagram arrives as an empty message."}, needDatagram, ruleDatagramEmpty},
	{Subtest{"datagram/buffer-ownership", "SendDatagram neither changes nor keeps the caller's slice: overwriting it after the call returns does not change what arrives."}, needDatagram, ruleDatagramBufferOwnership},
	{Subtest{"datagram/concurrent-senders", "Datagrams sent from many goroutines at once arrive unchanged (each is resent until seen, as the path is best effort)."}, needDatagram, ruleDatagramConcurrentSenders},
	{Subtest{"datagram/slow-receiver", "SendDatagram to a peer that does not read never blocks (5000 datagrams, or four times its queue); every accepted datagram is counted as sent or dropped, and the peer works again once it reads."}, needDatagram, ruleDatagramSlowReceiver},
	{Subtest{"datagram/restart", "A peer that closes and listens again on the same address receives datagrams again."}, needDatagram, ruleDatagramRestart},
	{Subtest{"stream/both-ways", "A frame from A reaches B and one from B reaches A, each unchanged, with From set to the sender's LocalAddr."}, needStream, ruleStreamBothWays},
	{Subtest{"stream/max-size", "A frame of exactly MaxFrameSize bytes (up to 64 MiB) arrives whole."}, needStream, ruleStreamMaxSize},
	{Subtest{"stream/too-large", "SendFrame refuses a frame longer than MaxFrameSize with a *transport.TooLargeError giving the path, size and limit, and sends nothing."}, needStream, ruleStreamTooLarge},
	{Subtest{"stream/empty", "An empty frame arrives as an empty frame, in its place among the frames around it."}, needStream, ruleStreamEmpty},
	{Subtest{"stream/order", "Frames sent one after another from A to B arrive whole, once each, in the order sent."}, needStream, ruleStreamOrder},
	{Subtest{"stream/concurrent-senders", "Frames sent to one peer from many goroutines at once all arrive whole, each goroutine's frames in the order it sent them."}, needStream, ruleStreamConcurrentSenders},
	{Subtest{"stream/many-peers", "Several transports sending to one peer at once all get through, each frame with its own sender's address, in each sender's order."}, needStream, ruleStreamManyPeers},
	{Subtest{"stream/buffer-ownership", "SendFrame neither changes nor keeps the caller's slice: overwriting it after the call returns does not change what arrives."}, needStream, ruleStreamBufferOwnership},
	{Subtest{"stream/slow-receiver", "SendFrame to a peer that does not read blocks once the queue towards it is full and returns the context's error; every frame it accepted then arrives, in order, when the peer reads."}, needStream, ruleStreamSlowReceiver},
	{Subtest{"stream/unreachable", "SendFrame to an address nobody listens on fails with an error wrapping transport.ErrUnreachable (at the latest on a later call), rather than reporting frames sent."}, needStream, ruleStreamUnreachable},
	{Subtest{"stream/restart", "A peer that closes and listens again on the same address is reachable again: after at most a few lost or failed sends, frames arrive, in order."}, needStream, ruleStreamRestart},
	{Subtest{"both/separate-paths", "A transport with both paths keeps them apart: datagrams arrive on Datagrams with Path datagram, frames on Frames with Path stream."}, needBoth, ruleBothSeparatePaths},
	{Subtest{"close/idempotent", "Close can be called again: later calls return without blocking or panicking."}, needAny, ruleCloseIdempotent},
	{Subtest{"close/sends-fail", "After Close, SendDatagram and SendFrame fail with an error wrapping transport.ErrClosed."}, needAny, ruleCloseSendsFail},
	{Subtest{"close/channels", "Close closes the Datagrams and Frames channels, so a reader ranging over them stops."}, needAny, ruleCloseChannels},
	{Subtest{"close/unblocks-send", "Close unblocks a SendFrame waiting on a full queue; it returns an error wrapping transport.ErrClosed."}, needStream, ruleCloseUnblocksSend},
	{Subtest{"close/no-goroutines", "No goroutine the transport started is still running shortly after Close returns."}, needAny, ruleCloseNoGoroutines},
	{Subtest{"stats/counters", "A transport that reports Stats counts what it sent and received (frames, datagrams, bytes), and reports no open connections after Close."}, needAny, ruleStatsCounters},
	{Subtest{"datagram/buffers-across-calls", "Buffers stay with their owners across calls: a later SendDatagram neither writes to nor keeps a slice given to an earlier one, and the Data of a received datagram is never reused for a later one."}, needDatagram, ruleDatagramBuffersAcrossCalls},
	{Subtest{"datagram/sizes", "Datagrams of every size from 0 to MaxDatagramSize arrive whole: every size up to 16, each power of two and its neighbours, and random sizes between them."}, needDatagram, ruleDatagramSizes},
	{Subtest{"datagram/unreachable", "SendDatagram to an address nobody listens on returns promptly (within a second: it never waits for the peer), with nil or an error wrapping transport.ErrUnreachable."}, needDatagram, ruleDatagramUnreachable},
	{Subtest{"datagram/after-idle", "After the link has been idle (IdleFor, default 250ms), datagrams get through again in both directions."}, needDatagram, ruleDatagramAfterIdle},
	{Subtest{"stream/buffers-across-calls", "Buffers stay with their owners across calls: a later SendFrame neither writes to nor keeps a slice given to an earlier one, and the Data of a received frame is never reused for a later one."}, needStream, ruleStreamBuffersAcrossCalls},
	{Subtest{"stream/sizes", "Frames of every size up to MaxFrameSize arrive whole: each power of two and its neighbours, random sizes between them, and sizes between 256 KiB and the maximum (up to 2 MiB; stream/max-size sends the maximum)."}, needStream, ruleStreamSizes},
	{Subtest{"stream/past-the-queue", "More frames than the queues towards a peer hold (twice what SendFrame accepted before it blocked, plus 2,000) all arrive, whole and in order, while the peer reads: a loss that shows only once a queue has wrapped is caught."}, needStream, ruleStreamPastTheQueue},
	{Subtest{"stream/after-idle", "After the link has been idle (IdleFor, default 250ms), the next frame in each direction arrives: none is lost to a connection that went stale."}, needStream, ruleStreamAfterIdle},
	{Subtest{"close/pending-traffic", "Close returns and leaves no goroutine of the transport running while messages wait unread in its receive channels and sends towards it are in flight."}, needAny, ruleClosePendingTraffic},
	{Subtest{"stats/exact", "A transport's counters are exact for traffic that arrived and was read: FramesSent, FramesReceived and DatagramsReceived equal the messages, BytesSent and BytesReceived the payload bytes (no headers), every accepted datagram is counted as sent or dropped, a message is counted before the reader sees it, and the values stay put after Close."}, needAny, ruleStatsExact},
	{Subtest{"stats/dropped", "A datagram that reaches a peer with no room in its receive queue is counted in its DatagramsDropped: with more datagrams than its queue holds sent to a peer that does not read, every datagram accepted is read once the peer reads, or counted dropped by the receiver or the sender."}, needDatagram, ruleStatsDropped},
	{Subtest{"identity", "A transport that does not declare that it authenticates (transport.Authenticator) leaves Message.Identity empty; one that declares it gives every message of a sender that sender's one non-empty identity, at least on its stream path."}, needAny, ruleIdentity},
}

// transportSubtests is the names and sentences of transportRules.
var transportSubtests = func() []Subtest {
	st := make([]Subtest, len(transportRules))
	for i, r := range transportRules {
		st[i] = r.Subtest
	}
	return st
}()

// TransportSubtests lists the rules TestTransport checks, for Skip.
func TransportSubtests() []Subtest { return append([]Subtest(nil), transportSubtests...) }

// resendEvery paces the resending of datagrams, which the datagram path may
// lose; it is not a bound on anything.
const resendEvery = 20 * time.Millisecond

// TestTransport checks a transport against the contract of package
// transport: on the datagram path if it implements transport.Datagram, on
// the stream path if it implements transport.Stream, statistics if it
// implements transport.StatsReporter. Each subtest gets a fresh network from
// mk and closes every transport it opens.
//
// The "close/no-goroutines" subtest looks at every goroutine of the process,
// so do not run TestTransport in parallel with other tests.
func TestTransport(t *testing.T, mk MakeNetwork, opts ...Option) {
	t.Helper()
	testTransport(stdT{t}, mk, opts)
}

// pathNeed says which path a subtest needs.
type pathNeed int

const (
	needAny pathNeed = iota
	needDatagram
	needStream
	needBoth
)

// tenv is the environment of one transport subtest.
type tenv struct {
	*caseEnv
	listen ListenFunc
	seq    uint32
	sent   map[uint64]bool // hashes of the payloads sent; guarded by mu
}

func testTransport(t tT, mk MakeNetwork, opts []Option) {
	t.Helper()
	s := newSuite(t, "Transport", transportSubtests, opts)
	for _, r := range transportRules {
		s.run(t, r.Name, func(c *caseEnv) { runTransportRule(c, mk, r) })
	}
}

// runTransportRule runs one rule on a fresh network from mk, skipping it
// with a reason when the transport lacks the path it needs.
func runTransportRule(c *caseEnv, mk MakeNetwork, r transportRule) {
	listen := mk(c.t.std())
	if listen == nil {
		c.t.Fatalf("MakeNetwork returned a nil ListenFunc")
	}
	e := &tenv{caseEnv: c, listen: listen}
	// Learn the paths from a first transport, then start clean.
	probe := e.open("")
	_, dg := probe.(transport.Datagram)
	_, st := probe.(transport.Stream)
	e.closeT(probe)
	switch {
	case r.need == needDatagram && !dg:
		c.t.Skipf("%T does not implement transport.Datagram", probe)
	case r.need == needStream && !st:
		c.t.Skipf("%T does not implement transport.Stream", probe)
	case r.need == needBoth && !(dg && st):
		c.t.Skipf("%T does not implement both transport.Datagram and transport.Stream", probe)
	case !dg && !st:
		c.t.Fatalf("%T implements neither transport.Datagram nor transport.Stream", probe)
	}
	r.check(e)
}

func ruleDatagramBothWays(e *tenv) {
	a, b := e.dgPair()
	e.datagramEcho(a, b, e.tagged(64))
	e.datagramEcho(b, a, e.tagged(64))
}

func ruleDatagramMaxSize(e *tenv) {
	a, b := e.dgPair()
	if a.MaxDatagramSize() < 16 {
		e.t.Fatalf("MaxDatagramSize is %d; the core needs room for its headers", a.MaxDatagramSize())
	}
	e.datagramEcho(a, b, e.tagged(b.MaxDatagramSize()))
}

func ruleDatagramTooLarge(e *tenv) {
	a, b := e.dgPair()
	limit := a.MaxDatagramSize()
	big := e.tagged(limit + 1)
	err := a.SendDatagram(e.ctx, b.LocalAddr(), bytes.Clone(big))
	checkTooLarge(e.caseEnv, err, transport.PathDatagram, limit+1, limit)
	// Nothing of it may arrive before a datagram sent after it: not
	// the whole, nor a part.
	marker := e.tagged(32)
	e.sendDatagramUntil(a, b, marker, func(m transport.Message) bool {
		if !bytes.Equal(m.Data, marker) {
			e.t.Errorf("a %d-byte datagram (starts %x) arrived although SendDatagram refused the only other one sent: was it sent in part?", len(m.Data), head(m.Data))
		}
		return bytes.Equal(m.Data, marker)
	})
}

func ruleDatagramEmpty(e *tenv) {
	a, b := e.dgPair()
	m := e.sendDatagramUntil(a, b, []byte{}, func(m transport.Message) bool { return len(m.Data) == 0 })
	if m.From != a.LocalAddr() {
		e.t.Errorf("empty datagram: From is %q, want the sender's LocalAddr %q", m.From, a.LocalAddr())
	}
}

func ruleDatagramBufferOwnership(e *tenv) {
	a, b := e.dgPair()
	want := e.tagged(min(256, a.MaxDatagramSize()))
	tick := time.NewTicker(resendEvery)
	defer tick.Stop()
	for {
		buf := bytes.Clone(want)
		if err := a.SendDatagram(e.ctx, b.LocalAddr(), buf); err != nil {
			e.t.Fatalf("SendDatagram: %v", err)
		}
		if !bytes.Equal(buf, want) {
			e.t.Fatalf("SendDatagram modified the caller's slice")
		}
		for i := range buf {
			buf[i] = 0xEE
		}
		select {
		case m, ok := <-b.Datagrams():
			if !ok {
				e.t.Fatalf("Datagrams closed")
			}
			if !bytes.Equal(m.Data, want) {
				e.t.Fatalf("the datagram that arrived differs from what was sent (%d bytes, starts %x): SendDatagram kept the caller's slice", len(m.Data), head(m.Data))
			}
			return
		case <-tick.C:
		case <-e.ctx.Done():
			e.t.Fatalf("watchdog: no datagram arrived")
		}
	}
}

func ruleDatagramConcurrentSenders(e *tenv) {
	a, b := e.dgPair()
	const goroutines, each = 8, 16
	size := min(512, a.MaxDatagramSize())
	want := make(map[string]bool)
	var all [][]byte
	for i := 0; i < goroutines*each; i++ {
		p := e.tagged(8 + e.rng.IntN(size-7))
		want[string(p)] = true
		all = append(all, p)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- protectPanic("SendDatagram", func() {
				for _, p := range all[g*each : (g+1)*each] {
					if err := a.SendDatagram(e.ctx, b.LocalAddr(), bytes.Clone(p)); err != nil {
						errs <- err
						return
					}
				}
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err == nil {
			continue
		}
		e.t.Fatalf("SendDatagram from a goroutine: %v", err)
	}
	tick := time.NewTicker(resendEvery)
	defer tick.Stop()
	for len(want) > 0 {
		select {
		case m, ok := <-b.Datagrams():
			if !ok {
				e.t.Fatalf("Datagrams closed")
			}
			if _, known := want[string(m.Data)]; !known && !e.sentBefore(m.Data) {
				e.t.Fatalf("a datagram arrived that was never sent (%d bytes, starts %x)", len(m.Data), head(m.Data))
			}
			delete(want, string(m.Data))
		case <-tick.C:
			for p := range want {
				if err := a.SendDatagram(e.ctx, b.LocalAddr(), []byte(p)); err != nil {
					e.t.Fatalf("SendDatagram: %v", err)
				}
			}
		case <-e.ctx.Done():
			e.t.Fatalf("watchdog: %d of %d datagrams never arrived", len(want), goroutines*each)
		}
	}
}

func ruleDatagramSlowReceiver(e *tenv) {
	a, b := e.dgPair()
	// Several times what the peer's queue holds, and at least 5000.
	n := max(5000, 4*cap(b.Datagrams()))
	p := e.tagged(min(64, a.MaxDatagramSize()))
	accepted := 0
	if !e.within(fmt.Sprintf("sending %d datagrams to a peer that does not read", n), func() {
		for range n {
			if err := a.SendDatagram(e.ctx, b.LocalAddr(), p); err == nil {
				accepted++
			} else {
				e.bgErrorf("SendDatagram to a peer that does not read: %v (it must drop and count, not fail)", err)
				return
			}
		}
	}) {
		return
	}
	// The peer reads again: a new datagram gets through.
	marker := e.tagged(32)
	delivered := 0
	e.sendDatagramUntil(a, b, marker, func(m transport.Message) bool {
		delivered++
		return bytes.Equal(m.Data, marker)
	})
	if sr, ok := b.(transport.StatsReporter); ok {
		if st := sr.Stats(); st.DatagramsReceived < uint64(delivered) {
			e.t.Errorf("receiver's Stats: DatagramsReceived %d, but %d datagrams were read from it", st.DatagramsReceived, delivered)
		}
	}
	if sr, ok := a.(transport.StatsReporter); ok {
		e.closeT(a)
		st := sr.Stats()
		if st.DatagramsSent+st.DatagramsDropped < uint64(accepted) {
			e.t.Errorf("sender's Stats after Close: DatagramsSent %d + DatagramsDropped %d < %d datagrams accepted; datagrams vanished uncounted", st.DatagramsSent, st.DatagramsDropped, accepted)
		}
	}
}

func ruleDatagramRestart(e *tenv) {
	a, b := e.dgPair()
	e.datagramEcho(a, b, e.tagged(64))
	addr := b.LocalAddr()
	e.closeT(b)
	b2, ok := e.open(addr).(transport.Datagram)
	if !ok {
		e.t.Fatalf("the transport opened again at %s has no datagram path", addr)
	}
	e.datagramEcho(a, b2, e.tagged(64))
	e.datagramEcho(b2, a, e.tagged(64))
}

func ruleStreamBothWays(e *tenv) {
	a, b := e.stPair()
	e.frameEcho(a, b, e.tagged(64))
	e.frameEcho(b, a, e.tagged(64))
}

func ruleStreamMaxSize(e *tenv) {
	a, b := e.stPair()
	size := b.MaxFrameSize()
	if size > 64<<20 {
		e.t.Logf("MaxFrameSize is %d; checking a 64 MiB frame", size)
		size = 64 << 20
	}
	e.frameEcho(a, b, e.tagged(size))
	e.frameEcho(b, a, e.tagged(min(size, a.MaxFrameSize())))
}

func ruleStreamTooLarge(e *tenv) {
	a, b := e.stPair()
	limit := a.MaxFrameSize()
	if limit > 256<<20 {
		e.t.Skipf("MaxFrameSize is %d; the suite does not allocate a frame past it", limit)
	}
	err := a.SendFrame(e.ctx, b.LocalAddr(), make([]byte, limit+1))
	checkTooLarge(e.caseEnv, err, transport.PathStream, limit+1, limit)
	marker := e.tagged(32)
	e.sendFrame(a, b, marker)
	m := e.recv(b.Frames(), "a frame after the refused one")
	if !bytes.Equal(m.Data, marker) {
		e.t.Errorf("after a refused frame, a %d-byte frame arrived instead of the next one sent", len(m.Data))
	}
}

func ruleStreamEmpty(e *tenv) {
	a, b := e.stPair()
	frames := [][]byte{e.tagged(16), {}, e.tagged(16), {}, {}, e.tagged(16)}
	e.sendAll(a, b.LocalAddr(), frames)
	e.expectFrames(b, a.LocalAddr(), frames)
}

func ruleStreamOrder(e *tenv) {
	a, b := e.stPair()
	limit := min(a.MaxFrameSize(), 64<<10)
	var frames [][]byte
	for range 500 {
		frames = append(frames, e.tagged(8+e.rng.IntN(limit-7)))
	}
	e.sendAll(a, b.LocalAddr(), frames)
	e.expectFrames(b, a.LocalAddr(), frames)
}

func ruleStreamConcurrentSenders(e *tenv) {
	a, b := e.stPair()
	const goroutines, each = 8, 60
	limit := min(a.MaxFrameSize(), 8<<10)
	per := make([][][]byte, goroutines)
	for g := range per {
		for range each {
			per[g] = append(per[g], e.taggedG(g, 12+e.rng.IntN(limit-11)))
		}
	}
	for g := range per {
		e.sendAll(a, b.LocalAddr(), per[g])
	}
	e.expectInterleaved(b, map[string][][][]byte{a.LocalAddr(): per})
}

func ruleStreamManyPeers(e *tenv) {
	b := e.openStream("")
	const senders, each = 4, 100
	want := make(map[string][][][]byte)
	for range senders {
		a := e.openStream("")
		var frames [][]byte
		for range each {
			frames = append(frames, e.taggedG(0, 12+e.rng.IntN(2048)))
		}
		want[a.LocalAddr()] = [][][]byte{frames}
		e.sendAll(a, b.LocalAddr(), frames)
	}
	e.expectInterleaved(b, want)
}

func ruleStreamBufferOwnership(e *tenv) {
	a, b := e.stPair()
	var want [][]byte
	for range 50 {
		want = append(want, e.tagged(8+e.rng.IntN(4096)))
	}
	e.spawn(func() {
		for _, p := range want {
			buf := bytes.Clone(p)
			if err := a.SendFrame(e.ctx, b.LocalAddr(), buf); err != nil {
				if !e.expired() {
					e.bgErrorf("SendFrame: %v", err)
				}
				return
			}
			if !bytes.Equal(buf, p) {
				e.bgErrorf("SendFrame modified the caller's slice")
			}
			for i := range buf {
				buf[i] = 0xEE
			}
		}
	})
	e.expectFrames(b, a.LocalAddr(), want)
}

func ruleStreamSlowReceiver(e *tenv) {
	a, b := e.stPair()
	sent, stuck := e.fillStream(a, b)
	if stuck == nil {
		return
	}
	// The peer reads again: what was accepted arrives in order, the
	// frame whose send gave up arrives after it or not at all, then a
	// frame sent now.
	marker := e.tagged(32)
	e.sendAll(a, b.LocalAddr(), [][]byte{marker})
	e.expectFrames(b, a.LocalAddr(), sent)
	m := e.recv(b.Frames(), "the frame sent after the peer started reading")
	if bytes.Equal(m.Data, stuck) {
		m = e.recv(b.Frames(), "the frame sent after the peer started reading")
	}
	if !bytes.Equal(m.Data, marker) {
		e.t.Errorf("after the accepted frames, a %d-byte frame arrived that is not the next one sent (starts %x); was the frame whose send gave up sent in part?", len(m.Data), head(m.Data))
	}
}

func ruleStreamUnreachable(e *tenv) {
	a := e.openStream("")
	dead := e.openStream("")
	addr := dead.LocalAddr()
	e.closeT(dead)
	for i := range 20 {
		err := a.SendFrame(e.ctx, addr, e.tagged(32))
		if err == nil {
			continue
		}
		if !errors.Is(err, transport.ErrUnreachable) {
			e.t.Fatalf("SendFrame to an address nobody listens on: %v; want an error wrapping transport.ErrUnreachable", err)
		}
		if i > 0 {
			e.t.Logf("the first %d frames were reported sent before SendFrame reported the peer unreachable", i)
		}
		return
	}
	e.t.Errorf("20 frames to an address nobody listens on were all reported sent")
}

func ruleStreamRestart(e *tenv) {
	a, b := e.stPair()
	e.frameEcho(a, b, e.tagged(64))
	addr := b.LocalAddr()
	e.closeT(b)
	b2, ok := e.open(addr).(transport.Stream)
	if !ok {
		e.t.Fatalf("the transport opened again at %s has no stream path", addr)
	}
	// Frames sent right after the restart may be lost or fail (a
	// connection to the old peer may still look open); within a few
	// attempts one must get through.
	tick := time.NewTicker(resendEvery)
	defer tick.Stop()
	var got transport.Message
	arrived := false
	for attempt := 0; !arrived; attempt++ {
		if attempt == 100 {
			e.t.Fatalf("none of 100 frames sent after the peer restarted arrived")
		}
		ctx, cancel := context.WithTimeout(e.ctx, time.Second)
		_ = a.SendFrame(ctx, addr, e.tagged(32))
		cancel()
		select {
		case got, arrived = <-b2.Frames():
			if !arrived {
				e.t.Fatalf("Frames of the restarted peer closed")
			}
		case <-tick.C:
		case <-e.ctx.Done():
			e.t.Fatalf("watchdog: no frame reached the restarted peer")
		}
	}
	if got.From != a.LocalAddr() {
		e.t.Errorf("From is %q, want %q", got.From, a.LocalAddr())
	}
	// Once through, the stream is reliable again. Frames still in
	// flight from the attempts may come first.
	var frames [][]byte
	for range 20 {
		frames = append(frames, e.tagged(64))
	}
	e.sendAll(a, addr, frames)
	for {
		m := e.recv(b2.Frames(), "frames after the restart")
		if bytes.Equal(m.Data, frames[0]) {
			break
		}
		if !e.sentBefore(m.Data) {
			e.t.Fatalf("a frame that was never sent arrived (%d bytes)", len(m.Data))
		}
	}
	e.expectFrames(b2, a.LocalAddr(), frames[1:])
	e.frameEcho(b2, a, e.tagged(64))
}

func ruleBothSeparatePaths(e *tenv) {
	a := e.open("")
	b := e.open("")
	adg, bdg := a.(transport.Datagram), b.(transport.Datagram)
	ast, bst := a.(transport.Stream), b.(transport.Stream)
	frame := e.tagged(48)
	e.sendFrame(ast, bst, frame)
	dgram := e.tagged(48)
	m := e.sendDatagramUntil(adg, bdg, dgram, func(m transport.Message) bool {
		if bytes.Equal(m.Data, frame) {
			e.t.Errorf("a stream frame arrived on Datagrams")
		}
		return bytes.Equal(m.Data, dgram)
	})
	if m.Path != transport.PathDatagram {
		e.t.Errorf("a datagram arrived with Path %v", m.Path)
	}
	f := e.recv(bst.Frames(), "the frame")
	if !bytes.Equal(f.Data, frame) {
		e.t.Errorf("Frames delivered %d bytes (starts %x), not the frame sent", len(f.Data), head(f.Data))
	}
	if f.Path != transport.PathStream {
		e.t.Errorf("a frame arrived with Path %v", f.Path)
	}
}

func ruleCloseIdempotent(e *tenv) {
	a, b := e.open(""), e.open("")
	e.warmUp(a, b)
	for i := range 3 {
		var err error
		if !e.within(fmt.Sprintf("Close call %d", i+1), func() {
			if perr := protectPanic("Close", func() { err = a.Close() }); perr != nil {
				e.bgErrorf("Close call %d: %v", i+1, perr)
			}
		}) {
			return
		}
		if i == 0 && err != nil {
			e.t.Errorf("the first Close: %v", err)
		}
	}
}

func ruleCloseSendsFail(e *tenv) {
	a, b := e.open(""), e.open("")
	e.warmUp(a, b)
	e.closeT(a)
	if dg, ok := a.(transport.Datagram); ok {
		if err := dg.SendDatagram(e.ctx, b.LocalAddr(), []byte("late")); !errors.Is(err, transport.ErrClosed) {
			e.t.Errorf("SendDatagram after Close: %v; want an error wrapping transport.ErrClosed", err)
		}
	}
	if st, ok := a.(transport.Stream); ok {
		var err error
		if e.within("SendFrame after Close", func() { err = st.SendFrame(e.ctx, b.LocalAddr(), []byte("late")) }) && !errors.Is(err, transport.ErrClosed) {
			e.t.Errorf("SendFrame after Close: %v; want an error wrapping transport.ErrClosed", err)
		}
	}
}

func ruleCloseChannels(e *tenv) {
	a, b := e.open(""), e.open("")
	e.warmUp(a, b)
	var chans []<-chan transport.Message
	var names []string
	if dg, ok := b.(transport.Datagram); ok {
		chans, names = append(chans, dg.Datagrams()), append(names, "Datagrams")
	}
	if st, ok := b.(transport.Stream); ok {
		chans, names = append(chans, st.Frames()), append(names, "Frames")
	}
	e.closeT(b)
	for i, ch := range chans {
		e.within("ranging over "+names[i]+" after Close", func() {
			for range ch {
			}
		})
	}
}

func ruleCloseUnblocksSend(e *tenv) {
	a, b := e.stPair()
	if _, stuck := e.fillStream(a, b); stuck == nil {
		return
	}
	// A sender goes on sending until a send fails. The queue is full
	// (a slow machine may only have made it look full: then the sender
	// fills it), so it ends up blocked, and Close must unblock it. If
	// Close comes first, the next send fails the same way. Either way
	// the sender's last error must say the transport closed.
	res := make(chan error, 1)
	e.spawn(func() {
		for range 64 << 20 / 64 {
			if err := a.SendFrame(e.ctx, b.LocalAddr(), e.tagged(64)); err != nil {
				res <- err
				return
			}
		}
		res <- errors.New("64 MiB of frames to a peer that does not read were all accepted")
	})
	e.closeT(a)
	select {
	case err := <-res:
		if !errors.Is(err, transport.ErrClosed) {
			e.t.Errorf("a sender blocked on a full queue got %v when the transport closed; want an error wrapping transport.ErrClosed", err)
		}
	case <-e.ctx.Done():
		e.t.Errorf("a SendFrame blocked on a full queue did not return when the transport closed")
	}
}

func ruleCloseNoGoroutines(e *tenv) {
	// The network is made; its goroutines (if any) may live on.
	before := goleak.IgnoreCurrent()
	a, b := e.open(""), e.open("")
	e.warmUp(a, b)
	e.warmUp(b, a)
	e.closeT(a)
	e.closeT(b)
	if err := goleak.Find(before); err != nil {
		e.t.Errorf("goroutines still running after Close returned:\n%v", err)
	}
}

func ruleStatsCounters(e *tenv) {
	a, b := e.open(""), e.open("")
	sa, ok := a.(transport.StatsReporter)
	if !ok {
		e.t.Skipf("%T does not implement transport.StatsReporter", a)
	}
	sb := b.(transport.StatsReporter)
	var frameBytes, dgBytes uint64
	const k = 10
	st, isStream := a.(transport.Stream)
	if isStream {
		var frames [][]byte
		for range k {
			p := e.tagged(100 + e.rng.IntN(1000))
			frames = append(frames, p)
			frameBytes += uint64(len(p))
		}
		e.sendAll(st, b.LocalAddr(), frames)
		e.expectFrames(b.(transport.Stream), a.LocalAddr(), frames)
		if c := sa.Stats().Connections; c < 1 {
			e.t.Errorf("Stats().Connections is %d while frames flow to a peer", c)
		}
	}
	dg, isDatagram := a.(transport.Datagram)
	if isDatagram {
		for range k {
			p := e.tagged(min(100, dg.MaxDatagramSize()))
			dgBytes += uint64(len(p))
			e.sendDatagramUntil(dg, b.(transport.Datagram), p, func(m transport.Message) bool { return bytes.Equal(m.Data, p) })
		}
	}
	e.closeT(a)
	e.closeT(b)
	x, y := sa.Stats(), sb.Stats()
	if isStream {
		if x.FramesSent < k || y.FramesReceived < k {
			e.t.Errorf("after %d frames: sender FramesSent %d, receiver FramesReceived %d", k, x.FramesSent, y.FramesReceived)
		}
	}
	if isDatagram {
		if x.DatagramsSent < k || y.DatagramsReceived < k {
			e.t.Errorf("after %d datagrams: sender DatagramsSent %d, receiver DatagramsReceived %d", k, x.DatagramsSent, y.DatagramsReceived)
		}
	}
	if total := frameBytes + dgBytes; x.BytesSent < total || y.BytesReceived < total {
		e.t.Errorf("after %d payload bytes: sender BytesSent %d, receiver BytesReceived %d", total, x.BytesSent, y.BytesReceived)
	}
	if x.Connections != 0 || y.Connections != 0 {
		e.t.Errorf("after Close, Stats().Connections is %d and %d; want 0", x.Connections, y.Connections)
	}
}

// open opens a transport and arranges for it to be closed at the end of the
// case (and when the watchdog fires).
func (e *tenv) open(addr string) transport.Transport {
	e.t.Helper()
	tr, err := e.listen(addr)
	if err != nil {
		if addr == "" {
			e.t.Fatalf("listen: %v", err)
		}
		e.t.Fatalf("listen again on %s: %v", addr, err)
	}
	if tr == nil {
		e.t.Fatalf("listen returned a nil transport")
	}
	if addr != "" && tr.LocalAddr() != addr {
		e.t.Fatalf("listening again on %s gave a transport at %s", addr, tr.LocalAddr())
	}
	e.atFire(func() { tr.Close() })
	e.defer_(func() { e.closeQuietly(tr) })
	return tr
}

func (e *tenv) openStream(addr string) transport.Stream {
	e.t.Helper()
	tr := e.open(addr)
	st, ok := tr.(transport.Stream)
	if !ok {
		e.t.Fatalf("%T has no stream path", tr)
	}
	return st
}

func (e *tenv) dgPair() (transport.Datagram, transport.Datagram) {
	e.t.Helper()
	return e.open("").(transport.Datagram), e.open("").(transport.Datagram)
}

func (e *tenv) stPair() (transport.Stream, transport.Stream) {
	e.t.Helper()
	return e.open("").(transport.Stream), e.open("").(transport.Stream)
}

// closeT closes tr within the watchdog and fails the case if Close hangs.
func (e *tenv) closeT(tr transport.Transport) {
	e.t.Helper()
	if !e.within("Close", func() {
		if err := protectPanic("Close", func() { tr.Close() }); err != nil {
			e.bgErrorf("%v", err)
		}
	}) {
		e.t.Fatalf("Close hung; the case cannot go on")
	}
}

// closeQuietly closes tr at the end of a case; a Close that hangs there
// (after the case already failed, or a second Close) is bounded by the
// watchdog's duration.
func (e *tenv) closeQuietly(tr transport.Transport) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := protectPanic("Close", func() { tr.Close() }); err != nil {
			e.bgErrorf("%v", err)
		}
	}()
	timer := time.NewTimer(e.watchdog)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		e.t.Errorf("Close did not return within %v", e.watchdog)
	}
}

// tagged returns a seeded payload of n bytes whose first 4 bytes (when
// n ≥ 4) are a sequence number unique within the case, and remembers it.
// Senders on goroutines of their own call it too: the generator and the
// count are used under the case's lock.
func (e *tenv) tagged(n int) []byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	b := e.payload(n)
	e.seq++
	if n >= 4 {
		binary.BigEndian.PutUint32(b, e.seq)
	}
	e.rememberLocked(b)
	return b
}

// taggedG is tagged with the sender goroutine's number in bytes 4..8.
func (e *tenv) taggedG(g, n int) []byte {
	b := e.tagged(n)
	binary.BigEndian.PutUint32(b[4:], uint32(g))
	e.mu.Lock()
	e.rememberLocked(b)
	e.mu.Unlock()
	return b
}

// rememberLocked records (a hash of) a payload the case sent, so that a
// late copy of an earlier payload is told apart from one that was never
// sent. e.mu is held.
func (e *tenv) rememberLocked(b []byte) {
	if e.sent == nil {
		e.sent = make(map[uint64]bool)
	}
	e.sent[hashOf(b)] = true
}

func (e *tenv) sentBefore(b []byte) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.sent[hashOf(b)]
}

func hashOf(b []byte) uint64 {
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64()
}

// checkTooLarge checks the error of a refused over-limit send.
func checkTooLarge(c *caseEnv, err error, path transport.Path, size, limit int) {
	c.t.Helper()
	var tl *transport.TooLargeError
	if !errors.As(err, &tl) {
		c.t.Errorf("sending %d bytes past a limit of %d: %v; want a *transport.TooLargeError", size, limit, err)
		return
	}
	if tl.Path != path || tl.Size != size || tl.Limit != limit {
		c.t.Errorf("TooLargeError{Path: %v, Size: %d, Limit: %d}; want {Path: %v, Size: %d, Limit: %d}", tl.Path, tl.Size, tl.Limit, path, size, limit)
	}
}

// recv waits for one message on ch.
func (e *tenv) recv(ch <-chan transport.Message, what string) transport.Message {
	e.t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			e.t.Fatalf("the channel closed while waiting for %s", what)
		}
		return m
	case <-e.ctx.Done():
		e.t.Fatalf("watchdog: waiting for %s", what)
	}
	panic("unreachable")
}

// sendDatagramUntil sends p from a to b, again every resendEvery, until b
// receives a datagram for which match returns true.
func (e *tenv) sendDatagramUntil(a, b transport.Datagram, p []byte, match func(transport.Message) bool) transport.Message {
	e.t.Helper()
	tick := time.NewTicker(resendEvery)
	defer tick.Stop()
	for {
		if err := a.SendDatagram(e.ctx, b.LocalAddr(), bytes.Clone(p)); err != nil {
			e.t.Fatalf("SendDatagram of %d bytes: %v", len(p), err)
		}
	wait:
		for {
			select {
			case m, ok := <-b.Datagrams():
				if !ok {
					e.t.Fatalf("Datagrams closed")
				}
				if match(m) {
					return m
				}
			case <-tick.C:
				break wait
			case <-e.ctx.Done():
				e.t.Fatalf("watchdog: a %d-byte datagram never arrived", len(p))
			}
		}
	}
}

// datagramEcho sends p from a to b until it arrives and checks it.
func (e *tenv) datagramEcho(a, b transport.Datagram, p []byte) {
	e.t.Helper()
	m := e.sendDatagramUntil(a, b, p, func(m transport.Message) bool {
		if len(m.Data) >= 4 && len(p) >= 4 && bytes.Equal(m.Data[:4], p[:4]) && !bytes.Equal(m.Data, p) {
			e.t.Fatalf("a %d-byte datagram arrived as %d different bytes", len(p), len(m.Data))
		}
		return bytes.Equal(m.Data, p)
	})
	if m.From != a.LocalAddr() {
		e.t.Errorf("datagram From is %q, want the sender's LocalAddr %q", m.From, a.LocalAddr())
	}
	if m.Path != transport.PathDatagram {
		e.t.Errorf("datagram Path is %v", m.Path)
	}
}

// sendFrame sends one frame, failing the case on error.
func (e *tenv) sendFrame(a, b transport.Stream, p []byte) {
	e.t.Helper()
	if err := a.SendFrame(e.ctx, b.LocalAddr(), bytes.Clone(p)); err != nil {
		e.t.Fatalf("SendFrame of %d bytes: %v", len(p), err)
	}
}

// frameEcho sends p from a to b and checks that it arrives as the next frame.
func (e *tenv) frameEcho(a, b transport.Stream, p []byte) {
	e.t.Helper()
	e.sendAll(a, b.LocalAddr(), [][]byte{p})
	e.expectFrames(b, a.LocalAddr(), [][]byte{p})
}

// sendAll sends frames in order from a goroutine of its own; an error fails
// the case (it is reported, and the reader then waits for the watchdog or
// sees the shortfall).
func (e *tenv) sendAll(a transport.Stream, to string, frames [][]byte) {
	e.spawn(func() {
		for i, p := range frames {
			// A copy, so that a transport that writes to the slice it
			// is given fails the buffer-ownership rule, not this one.
			if err := a.SendFrame(e.ctx, to, bytes.Clone(p)); err != nil {
				if !e.expired() {
					e.bgErrorf("SendFrame %d of %d (%d bytes): %v", i+1, len(frames), len(p), err)
				}
				return
			}
		}
	})
}

// expectFrames reads len(want) frames from b and checks that they are want,
// in order, from the given sender.
func (e *tenv) expectFrames(b transport.Stream, from string, want [][]byte) {
	e.t.Helper()
	for i, p := range want {
		m := e.recv(b.Frames(), fmt.Sprintf("frame %d of %d", i+1, len(want)))
		if m.From != from {
			e.t.Fatalf("frame %d: From is %q, want the sender's LocalAddr %q", i+1, m.From, from)
		}
		if m.Path != transport.PathStream {
			e.t.Errorf("frame %d: Path is %v", i+1, m.Path)
		}
		if !bytes.Equal(m.Data, p) {
			e.t.Fatalf("frame %d of %d: %s", i+1, len(want), describeMismatch(m.Data, p, want))
		}
	}
}

// expectInterleaved reads frames from b until every sequence in want has
// arrived; frames of one sequence (bytes 4..8 name it, per sender) must come
// in order.
func (e *tenv) expectInterleaved(b transport.Stream, want map[string][][][]byte) {
	e.t.Helper()
	next := make(map[string][]int)
	left := 0
	for from, seqs := range want {
		next[from] = make([]int, len(seqs))
		for _, s := range seqs {
			left += len(s)
		}
	}
	for left > 0 {
		m := e.recv(b.Frames(), fmt.Sprintf("%d more frames", left))
		seqs, ok := want[m.From]
		if !ok {
			e.t.Fatalf("a frame arrived From %q, which sent nothing", m.From)
		}
		if len(m.Data) < 8 {
			e.t.Fatalf("a %d-byte frame arrived from %s; every frame sent was at least 12 bytes", len(m.Data), m.From)
		}
		g := int(binary.BigEndian.Uint32(m.Data[4:]))
		if g >= len(seqs) {
			e.t.Fatalf("a frame from %s names sender goroutine %d, which does not exist (corrupted?)", m.From, g)
		}
		i := next[m.From][g]
		if i >= len(seqs[g]) {
			e.t.Fatalf("goroutine %d of %s: more frames arrived than it sent", g, m.From)
		}
		if p := seqs[g][i]; !bytes.Equal(m.Data, p) {
			e.t.Fatalf("goroutine %d of %s, frame %d: %s", g, m.From, i+1, describeMismatch(m.Data, p, seqs[g]))
		}
		next[m.From][g]++
		left--
	}
}

// describeMismatch explains how a frame that arrived differs from the one
// expected: another frame of the sequence (lost or reordered), the same
// frame cut short, or different bytes.
func describeMismatch(got, want []byte, all [][]byte) string {
	for j, p := range all {
		if bytes.Equal(got, p) {
			return fmt.Sprintf("frame number %d of the sequence arrived in its place (a frame was lost, repeated or reordered)", j+1)
		}
	}
	switch {
	case len(got) < len(want) && bytes.Equal(got, want[:len(got)]):
		return fmt.Sprintf("%d of its %d bytes arrived (truncated)", len(got), len(want))
	case len(got) != len(want):
		return fmt.Sprintf("%d bytes arrived, want %d (starts %x, want %x)", len(got), len(want), head(got), head(want))
	default:
		for i := range got {
			if got[i] != want[i] {
				return fmt.Sprintf("byte %d of %d is %#02x, want %#02x (corrupted)", i, len(want), got[i], want[i])
			}
		}
	}
	return "differs"
}

// warmUp makes a send a→b on every path a has and waits for it, so that
// connections exist before a close-rule is checked.
func (e *tenv) warmUp(a, b transport.Transport) {
	e.t.Helper()
	if ad, ok := a.(transport.Datagram); ok {
		if bd, ok := b.(transport.Datagram); ok {
			e.datagramEcho(ad, bd, e.tagged(32))
		}
	}
	if as, ok := a.(transport.Stream); ok {
		if bs, ok := b.(transport.Stream); ok {
			e.frameEcho(as, bs, e.tagged(32))
		}
	}
}

// fillStream sends frames from a to b, which does not read, until SendFrame
// blocks. It returns the frames accepted and the one whose send gave up, or
// nil (having failed the case) if the sends never blocked.
func (e *tenv) fillStream(a, b transport.Stream) (sent [][]byte, stuck []byte) {
	e.t.Helper()
	const budget = 64 << 20
	size := min(a.MaxFrameSize(), 16<<10)
	// The first frame sets up whatever the path needs (a dial, a
	// handshake) and may take long on a loaded machine: it is sent with the
	// case's own context, so that only a full queue looks blocked below.
	first := e.tagged(size)
	if err := a.SendFrame(e.ctx, b.LocalAddr(), bytes.Clone(first)); err != nil {
		e.t.Fatalf("SendFrame of the first frame: %v", err)
	}
	sent = append(sent, first)
	for total := size; total < budget; total += size {
		p := e.tagged(size)
		// A send that waits this long is taken as blocked. A slow machine
		// may make a send that was not yet blocked look blocked; the cases
		// that use this hold either way (the send gave up, so the frame
		// was not sent; close/unblocks-send keeps sending).
		ctx, cancel := context.WithTimeout(e.ctx, 100*time.Millisecond)
		err := a.SendFrame(ctx, b.LocalAddr(), bytes.Clone(p))
		cancel()
		switch {
		case err == nil:
			sent = append(sent, p)
		case e.expired():
			e.t.Fatalf("watchdog while filling the queue towards a peer that does not read")
		case isCtxErr(err):
			return sent, p
		default:
			e.t.Fatalf("SendFrame to a peer that does not read: %v; want it to block, then return the context's error", err)
		}
	}
	e.t.Errorf("%d bytes of frames to a peer that never reads were all accepted; SendFrame must block once the queue towards it is full", budget)
	return nil, nil
}
