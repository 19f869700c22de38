package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/goleak"

	"github.com/plumtree-go/plumtree/transport"
)

// This file holds the rules of transportRules from
// datagram/buffers-across-calls on. They
// check what the contract states across calls, sizes, counts and time,
// where a rule that tries one case lets a broken adapter through (issue 19).

// promptly bounds calls that must not wait for a peer. It is far above what
// a loaded machine needs for a call that does not wait, and far below a
// connection or handshake timeout.
const promptly = time.Second

func ruleDatagramBuffersAcrossCalls(e *tenv) {
	a, b := e.dgPair()
	limit := min(a.MaxDatagramSize(), 512)
	const k = 12
	pending := make(map[string]bool)
	var given [][]byte // the caller's slices, overwritten with 0xEE after each call
	send := func(p []byte) {
		e.t.Helper()
		buf := bytes.Clone(p)
		if err := a.SendDatagram(e.ctx, b.LocalAddr(), buf); err != nil {
			e.t.Fatalf("SendDatagram: %v", err)
		}
		fill(buf, 0xEE)
		given = append(given, buf)
	}
	for i := range k {
		p := e.tagged(8 + (i*(limit-8))/k)
		pending[string(p)] = true
		send(p)
	}
	type kept struct{ data, copy []byte }
	var got []kept
	tick := time.NewTicker(resendEvery)
	defer tick.Stop()
	for len(pending) > 0 {
		select {
		case m, ok := <-b.Datagrams():
			if !ok {
				e.t.Fatalf("Datagrams closed")
			}
			if !e.sentBefore(m.Data) {
				e.t.Fatalf("a datagram arrived that was never sent (%d bytes, starts %x): was a received buffer reused, or a caller's slice changed?", len(m.Data), head(m.Data))
			}
			got = append(got, kept{m.Data, bytes.Clone(m.Data)})
			delete(pending, string(m.Data))
		case <-tick.C:
			for p := range pending {
				send([]byte(p))
			}
		case <-e.ctx.Done():
			e.t.Fatalf("watchdog: %d of %d datagrams never arrived", len(pending), k)
		}
	}
	// One more send and receive, after which everything kept is looked at.
	e.datagramEcho(a, b, e.tagged(min(64, limit)))
	for i, g := range got {
		if !bytes.Equal(g.data, g.copy) {
			e.t.Errorf("received datagram %d changed after later datagrams arrived (now starts %x, was %x): the transport reused its Data", i+1, head(g.data), head(g.copy))
			break
		}
	}
	for i, buf := range given {
		if j := slices.IndexFunc(buf, func(c byte) bool { return c != 0xEE }); j >= 0 {
			e.t.Errorf("the slice given to SendDatagram call %d changed at byte %d after the call returned: a later call wrote into it", i+1, j)
			break
		}
	}
}

func ruleDatagramSizes(e *tenv) {
	a, b := e.dgPair()
	limit := min(a.MaxDatagramSize(), b.MaxDatagramSize())
	sizes := map[int]bool{limit: true, limit - 1: true}
	for n := 0; n <= min(16, limit); n++ {
		sizes[n] = true
	}
	for p := 1; p <= limit; p *= 2 {
		for _, n := range []int{p - 1, p, p + 1, p + e.rng.IntN(p)} {
			if n >= 0 && n <= limit {
				sizes[n] = true
			}
		}
	}
	pending := make(map[string]int)
	var all [][]byte
	for n := range sizes {
		p := e.tagged(n)
		all = append(all, p)
		pending[string(p)]++
	}
	slices.SortFunc(all, func(x, y []byte) int { return len(x) - len(y) })
	for _, p := range all {
		if err := a.SendDatagram(e.ctx, b.LocalAddr(), bytes.Clone(p)); err != nil {
			e.t.Fatalf("SendDatagram of %d bytes (limit %d): %v", len(p), limit, err)
		}
	}
	tick := time.NewTicker(resendEvery)
	defer tick.Stop()
	for len(pending) > 0 {
		select {
		case m, ok := <-b.Datagrams():
			if !ok {
				e.t.Fatalf("Datagrams closed")
			}
			if _, ok := pending[string(m.Data)]; ok {
				delete(pending, string(m.Data))
				continue
			}
			if !e.sentBefore(m.Data) {
				e.t.Fatalf("a %d-byte datagram arrived that was never sent (starts %x): one of the sizes was cut or corrupted", len(m.Data), head(m.Data))
			}
		case <-tick.C:
			for p := range pending {
				if err := a.SendDatagram(e.ctx, b.LocalAddr(), []byte(p)); err != nil {
					e.t.Fatalf("SendDatagram of %d bytes: %v", len(p), err)
				}
			}
		case <-e.ctx.Done():
			var missing []int
			for p := range pending {
				missing = append(missing, len(p))
			}
			slices.Sort(missing)
			e.t.Fatalf("watchdog: datagrams of these sizes never arrived whole: %v", missing)
		}
	}
}

func ruleDatagramUnreachable(e *tenv) {
	a := e.open("").(transport.Datagram)
	dead := e.open("")
	addr := dead.LocalAddr()
	e.closeT(dead)
	for i := range 5 {
		var err error
		if !e.promptly(fmt.Sprintf("SendDatagram %d to an address nobody listens on", i+1), func() {
			err = a.SendDatagram(e.ctx, addr, e.tagged(32))
		}) {
			return
		}
		if err != nil && !errors.Is(err, transport.ErrUnreachable) {
			e.t.Errorf("SendDatagram to an address nobody listens on: %v; want nil (dropped, counted) or an error wrapping transport.ErrUnreachable", err)
			return
		}
	}
}

func ruleDatagramAfterIdle(e *tenv) {
	a, b := e.dgPair()
	e.datagramEcho(a, b, e.tagged(48))
	e.datagramEcho(b, a, e.tagged(48))
	e.idleWait()
	e.datagramEcho(a, b, e.tagged(48))
	e.datagramEcho(b, a, e.tagged(48))
}

func ruleStreamBuffersAcrossCalls(e *tenv) {
	a, b := e.stPair()
	limit := min(a.MaxFrameSize(), 8<<10)
	var want [][]byte
	for range 40 {
		want = append(want, e.tagged(8+e.rng.IntN(limit-7)))
	}
	var mu sync.Mutex
	var given [][]byte
	done := make(chan struct{})
	e.spawn(func() {
		defer close(done)
		for _, p := range want {
			buf := bytes.Clone(p)
			if err := a.SendFrame(e.ctx, b.LocalAddr(), buf); err != nil {
				if !e.expired() {
					e.bgErrorf("SendFrame: %v", err)
				}
				return
			}
			fill(buf, 0xEE)
			mu.Lock()
			given = append(given, buf)
			mu.Unlock()
		}
	})
	type kept struct{ data, copy []byte }
	var got []kept
	for i, p := range want {
		m := e.recv(b.Frames(), fmt.Sprintf("frame %d of %d", i+1, len(want)))
		if !bytes.Equal(m.Data, p) {
			e.t.Fatalf("frame %d of %d: %s", i+1, len(want), describeMismatch(m.Data, p, want))
		}
		got = append(got, kept{m.Data, bytes.Clone(m.Data)})
	}
	select {
	case <-done:
	case <-e.ctx.Done():
		e.t.Fatalf("watchdog: the sends did not return")
	}
	e.frameEcho(a, b, e.tagged(64))
	for i, g := range got {
		if !bytes.Equal(g.data, g.copy) {
			e.t.Errorf("received frame %d changed after later frames arrived (now starts %x, was %x): the transport reused its Data", i+1, head(g.data), head(g.copy))
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for i, buf := range given {
		if j := slices.IndexFunc(buf, func(c byte) bool { return c != 0xEE }); j >= 0 {
			e.t.Errorf("the slice given to SendFrame call %d changed at byte %d after the call returned: a later call wrote into it", i+1, j)
			break
		}
	}
}

func ruleStreamSizes(e *tenv) {
	a, b := e.stPair()
	limit := min(a.MaxFrameSize(), b.MaxFrameSize())
	const dense = 256 << 10 // every octave below this; a few sizes above
	sizes := map[int]bool{0: true}
	for p := 1; p <= min(limit, dense); p *= 2 {
		for _, n := range []int{p - 1, p, p + 1, p + e.rng.IntN(p)} {
			if n >= 0 && n <= limit {
				sizes[n] = true
			}
		}
	}
	if top := min(limit, 2<<20); top > dense+1 {
		sizes[top-1] = true
		sizes[dense+1+e.rng.IntN(top-dense-1)] = true
	}
	var frames [][]byte
	for n := range sizes {
		frames = append(frames, e.tagged(n))
	}
	// Ascending, then each large one followed by a small one.
	slices.SortFunc(frames, func(x, y []byte) int { return len(x) - len(y) })
	e.rng.Shuffle(len(frames), func(i, j int) { frames[i], frames[j] = frames[j], frames[i] })
	e.sendAll(a, b.LocalAddr(), frames)
	e.expectFrames(b, a.LocalAddr(), frames)
}

func ruleStreamPastTheQueue(e *tenv) {
	a, b := e.stPair()
	sent, stuck := e.fillStream(a, b)
	if stuck == nil {
		return
	}
	n := 2*len(sent) + 2000
	var frames [][]byte
	for range n {
		frames = append(frames, e.tagged(8+e.rng.IntN(248)))
	}
	e.sendAll(a, b.LocalAddr(), frames)
	e.expectFrames(b, a.LocalAddr(), sent)
	m := e.recv(b.Frames(), "the first frame sent after the queue was full")
	if bytes.Equal(m.Data, stuck) {
		m = e.recv(b.Frames(), "the first frame sent after the queue was full")
	}
	if !bytes.Equal(m.Data, frames[0]) {
		e.t.Fatalf("after the %d frames that filled the queue: %s", len(sent), describeMismatch(m.Data, frames[0], frames))
	}
	e.expectFrames(b, a.LocalAddr(), frames[1:])
}

func ruleStreamAfterIdle(e *tenv) {
	a, b := e.stPair()
	e.frameEcho(a, b, e.tagged(48))
	e.frameEcho(b, a, e.tagged(48))
	e.idleWait()
	e.frameEcho(a, b, e.tagged(48))
	e.frameEcho(b, a, e.tagged(48))
}

func ruleClosePendingTraffic(e *tenv) {
	before := goleak.IgnoreCurrent()
	a, b := e.open(""), e.open("")
	e.warmUp(a, b)
	e.warmUp(b, a)
	// b never reads again; a sends until b's queues are full.
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	var sent atomic.Int64
	var wg sync.WaitGroup
	if ad, ok := a.(transport.Datagram); ok {
		n := 256
		if bd, ok := b.(transport.Datagram); ok {
			n += cap(bd.Datagrams())
		}
		for range n {
			if ad.SendDatagram(ctx, b.LocalAddr(), e.tagged(min(64, ad.MaxDatagramSize()))) != nil {
				break
			}
		}
	}
	as, isStream := a.(transport.Stream)
	stopped := make(chan struct{})
	if isStream {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(stopped)
			_ = protectPanic("SendFrame", func() {
				for range 4096 {
					if as.SendFrame(ctx, b.LocalAddr(), e.tagged(1024)) != nil {
						return
					}
					sent.Add(1)
				}
			})
		}()
	}
	// Some of it is on its way before the closes.
	tick := time.NewTicker(time.Millisecond)
	for isStream && sent.Load() < 64 {
		select {
		case <-tick.C:
		case <-stopped:
			isStream = false
		case <-e.ctx.Done():
			isStream = false
		}
	}
	tick.Stop()
	e.closeT(b)
	e.closeT(a)
	cancel()
	if !e.within("SendFrame after both ends closed", wg.Wait) {
		return
	}
	if err := goleak.Find(before); err != nil {
		e.t.Errorf("goroutines still running after Close returned with traffic pending:\n%v", err)
	}
}

func ruleStatsExact(e *tenv) {
	a, b := e.open(""), e.open("")
	sa, ok := a.(transport.StatsReporter)
	if !ok {
		e.t.Skipf("%T does not implement transport.StatsReporter", a)
	}
	sb := b.(transport.StatsReporter)
	var frameBytes uint64
	const k = 20
	st, isStream := a.(transport.Stream)
	if isStream {
		limit := min(st.MaxFrameSize(), 4000)
		var frames [][]byte
		for range k {
			p := e.tagged(e.rng.IntN(limit + 1))
			frames = append(frames, p)
			frameBytes += uint64(len(p))
		}
		e.sendAll(st, b.LocalAddr(), frames)
		bs := b.(transport.Stream)
		for i, p := range frames {
			m := e.recv(bs.Frames(), fmt.Sprintf("frame %d of %d", i+1, k))
			if !bytes.Equal(m.Data, p) {
				e.t.Fatalf("frame %d of %d: %s", i+1, k, describeMismatch(m.Data, p, frames))
			}
			if got := sb.Stats().FramesReceived; got < uint64(i+1) {
				e.t.Errorf("FramesReceived is %d after %d frames were read: a frame must be counted before the reader sees it", got, i+1)
			}
		}
	}
	dg, isDatagram := a.(transport.Datagram)
	var size, accepted, read uint64
	var bd transport.Datagram
	if isDatagram {
		bd = b.(transport.Datagram)
		size = uint64(min(100, dg.MaxDatagramSize()))
		pending := make(map[string]bool)
		for range k {
			pending[string(e.tagged(int(size)))] = true
		}
		send := func() {
			e.t.Helper()
			for p := range pending {
				if err := dg.SendDatagram(e.ctx, b.LocalAddr(), []byte(p)); err != nil {
					e.t.Fatalf("SendDatagram: %v", err)
				}
				accepted++
			}
		}
		send()
		tick := time.NewTicker(resendEvery)
		defer tick.Stop()
		for len(pending) > 0 {
			select {
			case m, ok := <-bd.Datagrams():
				if !ok {
					e.t.Fatalf("Datagrams closed")
				}
				read++
				delete(pending, string(m.Data))
				if got := sb.Stats().DatagramsReceived; got < read {
					e.t.Errorf("DatagramsReceived is %d after %d datagrams were read: a datagram must be counted before the reader sees it", got, read)
				}
			case <-tick.C:
				send()
			case <-e.ctx.Done():
				e.t.Fatalf("watchdog: %d of %d datagrams never arrived", len(pending), k)
			}
		}
	}
	x0 := sa.Stats()
	e.closeT(a)
	e.closeT(b)
	if isDatagram {
		// What was queued and not read yet can still be read.
		e.within("reading Datagrams after Close", func() {
			for range bd.Datagrams() {
				read++
			}
		})
	}
	x, y := sa.Stats(), sb.Stats()
	if x2, y2 := sa.Stats(), sb.Stats(); x2 != x || y2 != y {
		e.t.Errorf("Stats changed after Close: %+v then %+v (sender), %+v then %+v (receiver)", x, x2, y, y2)
	}
	if down := wentDown(x0, x); down != "" {
		e.t.Errorf("the sender's %s went down at Close: counters never go down", down)
	}
	if isStream {
		if x.FramesSent != k || y.FramesReceived != k {
			e.t.Errorf("after %d frames sent and read: sender FramesSent %d, receiver FramesReceived %d; want %d each", k, x.FramesSent, y.FramesReceived, k)
		}
	}
	if isDatagram {
		if x.DatagramsSent > accepted || x.DatagramsSent+x.DatagramsDropped < accepted {
			e.t.Errorf("%d datagrams accepted by SendDatagram: sender DatagramsSent %d, DatagramsDropped %d; each accepted one is counted as sent or dropped, and no more are sent", accepted, x.DatagramsSent, x.DatagramsDropped)
		}
		if y.DatagramsReceived != read {
			e.t.Errorf("the receiver's DatagramsReceived is %d, but %d datagrams were queued for Datagrams (all read, some after Close)", y.DatagramsReceived, read)
		}
	}
	if want := frameBytes + x.DatagramsSent*size; x.BytesSent != want {
		e.t.Errorf("sender BytesSent is %d; the payloads counted sent hold %d bytes (%d in frames, %d datagrams of %d): Bytes count payload bytes, without the transport's headers", x.BytesSent, want, frameBytes, x.DatagramsSent, size)
	}
	if want := frameBytes + y.DatagramsReceived*size; y.BytesReceived != want {
		e.t.Errorf("receiver BytesReceived is %d; the payloads counted received hold %d bytes (%d in frames, %d datagrams of %d): Bytes count payload bytes, without the transport's headers", y.BytesReceived, want, frameBytes, y.DatagramsReceived, size)
	}
}

func ruleStatsDropped(e *tenv) {
	a, b := e.dgPair()
	sa, ok1 := a.(transport.StatsReporter)
	sb, ok2 := b.(transport.StatsReporter)
	if !ok1 || !ok2 {
		e.t.Skipf("%T does not implement transport.StatsReporter", a)
	}
	// Batches small enough for any socket buffer, each given a moment
	// to be taken in, so that nothing is lost below the transport.
	const batch = 16
	n := uint64(cap(b.Datagrams()) + 512)
	size := min(64, a.MaxDatagramSize())
	var accepted, read uint64
	accounted := func() uint64 {
		x, y := sa.Stats(), sb.Stats()
		return read + y.DatagramsDropped + x.DatagramsDropped
	}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for accepted < n {
		for range batch {
			if err := a.SendDatagram(e.ctx, b.LocalAddr(), e.tagged(size)); err != nil {
				e.t.Fatalf("SendDatagram to a peer that does not read: %v", err)
			}
			accepted++
		}
		pace := time.NewTimer(20 * time.Millisecond)
		for y := sb.Stats(); y.DatagramsReceived+y.DatagramsDropped+sa.Stats().DatagramsDropped < accepted; y = sb.Stats() {
			select {
			case <-tick.C:
				continue
			case <-pace.C:
			case <-e.ctx.Done():
				e.t.Fatalf("watchdog while sending")
			}
			break
		}
		pace.Stop()
	}
	// The peer reads now: every datagram is read or was counted
	// dropped (a transport may hold some in queues of its own).
	for accounted() < accepted {
		select {
		case _, ok := <-b.Datagrams():
			if !ok {
				e.t.Fatalf("Datagrams closed")
			}
			read++
		case <-tick.C:
		case <-e.ctx.Done():
			x, y := sa.Stats(), sb.Stats()
			e.t.Fatalf("watchdog: %d datagrams accepted for a peer that did not read (its queue holds %d); %d were read once it did, it counts %d received and %d dropped, the sender %d dropped: the rest vanished uncounted", accepted, cap(b.Datagrams()), read, y.DatagramsReceived, y.DatagramsDropped, x.DatagramsDropped)
		}
	}
	e.closeT(b)
	e.within("reading Datagrams after Close", func() {
		for range b.Datagrams() {
			read++
		}
	})
	if y := sb.Stats(); y.DatagramsReceived != read {
		e.t.Errorf("the receiver's DatagramsReceived is %d, but %d datagrams were queued for Datagrams", y.DatagramsReceived, read)
	}
}

func ruleIdentity(e *tenv) {
	a, b := e.open(""), e.open("")
	var msgs [2][]transport.Message
	for i, pair := range [][2]transport.Transport{{a, b}, {b, a}} {
		from, to := pair[0], pair[1]
		if fs, ok := from.(transport.Stream); ok {
			ts := to.(transport.Stream)
			p := e.tagged(32)
			e.sendFrame(fs, ts, p)
			msgs[i] = append(msgs[i], e.recv(ts.Frames(), "a frame"))
		}
		if fd, ok := from.(transport.Datagram); ok {
			p := e.tagged(32)
			msgs[i] = append(msgs[i], e.sendDatagramUntil(fd, to.(transport.Datagram), p, func(m transport.Message) bool { return bytes.Equal(m.Data, p) }))
		}
	}
	for i, to := range []transport.Transport{b, a} {
		auth := transport.Authenticates(to)
		ident := ""
		for _, m := range msgs[i] {
			switch {
			case !auth && m.Identity != "":
				e.t.Errorf("a %v message carries Identity %q, but %T does not declare that it authenticates its peers (transport.Authenticator): the identity is a claim nothing verified, and a core trusting it could be impersonated", m.Path, m.Identity, to)
			case auth && m.Identity == "" && (m.Path == transport.PathStream || !isStream(to)):
				e.t.Errorf("%T declares that it authenticates its peers, but a %v message arrived with an empty Identity", to, m.Path)
			case auth && m.Identity != "" && ident != "" && m.Identity != ident:
				e.t.Errorf("messages from one sender carry different identities, %q and %q", ident, m.Identity)
			}
			if m.Identity != "" {
				ident = m.Identity
			}
		}
	}
}

func isStream(tr transport.Transport) bool {
	_, ok := tr.(transport.Stream)
	return ok
}

func fill(b []byte, c byte) {
	for i := range b {
		b[i] = c
	}
}

// wentDown names a counter of s that is lower in t.
func wentDown(s, t transport.Stats) string {
	for _, c := range []struct {
		name string
		a, b uint64
	}{
		{"DatagramsSent", s.DatagramsSent, t.DatagramsSent},
		{"DatagramsReceived", s.DatagramsReceived, t.DatagramsReceived},
		{"DatagramsDropped", s.DatagramsDropped, t.DatagramsDropped},
		{"FramesSent", s.FramesSent, t.FramesSent},
		{"FramesReceived", s.FramesReceived, t.FramesReceived},
		{"FramesDropped", s.FramesDropped, t.FramesDropped},
		{"BytesSent", s.BytesSent, t.BytesSent},
		{"BytesReceived", s.BytesReceived, t.BytesReceived},
	} {
		if c.b < c.a {
			return c.name
		}
	}
	return ""
}

// promptly runs f on a goroutine of the case and fails the case if it has
// not returned within the promptly bound; it then waits no longer (the case
// closes what it opened, which must unblock f).
func (e *tenv) promptly(what string, f func()) bool {
	e.t.Helper()
	done := make(chan struct{})
	e.spawn(func() {
		defer close(done)
		f()
	})
	timer := time.NewTimer(promptly)
	defer timer.Stop()
	select {
	case <-done:
		return true
	case <-timer.C:
		e.t.Errorf("%s did not return within %v: it must not wait for the peer", what, promptly)
	case <-e.ctx.Done():
		e.t.Errorf("watchdog: %s did not return", what)
	}
	return false
}

// idleWait leaves the case's links idle for the IdleFor duration.
func (e *tenv) idleWait() {
	e.t.Helper()
	timer := time.NewTimer(e.idle)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-e.ctx.Done():
		e.t.Fatalf("watchdog while idle")
	}
}
