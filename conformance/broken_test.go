package conformance

// The suites must catch broken adapters. Each adapter below has one defect;
// the suite is run against it with a recorder in place of *testing.T, and
// must fail the rule that names the defect. The correct adapters beside them
// must pass.

import (
	"bytes"
	"compress/flate"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plumtree-go/plumtree/codec"
	"github.com/plumtree-go/plumtree/compressor"
	"github.com/plumtree-go/plumtree/membership"
	"github.com/plumtree-go/plumtree/membership/static"
	"github.com/plumtree-go/plumtree/transport"
	"github.com/plumtree-go/plumtree/transport/mem"
)

// expectFailure checks that the suite failed the wanted subtest, and logs
// what else failed.
func expectFailure(t *testing.T, failed []Failure, want string) {
	t.Helper()
	var names []string
	for _, f := range failed {
		names = append(names, f.Subtest)
	}
	for _, f := range failed {
		if f.Subtest == want {
			t.Logf("failed %v; %s", names, f)
			return
		}
	}
	t.Errorf("the suite did not fail %q; it failed %v", want, names)
}

// expectOnly checks that the suite failed the wanted subtest and no other.
func expectOnly(t *testing.T, failed []Failure, want string) {
	t.Helper()
	expectFailure(t, failed, want)
	for _, f := range failed {
		if f.Subtest != want {
			t.Errorf("the defect also failed %s; it was meant to show only in %s", f, want)
		}
	}
}

func expectPass(t *testing.T, failed []Failure) {
	t.Helper()
	for _, f := range failed {
		t.Errorf("a correct adapter failed %s", f)
	}
}

// ---- transports ----

// defect is what a broken transport gets wrong.
type defect int

const (
	correct defect = iota
	dropsFrame
	reordersStream
	truncatesLarge
	corruptsByte
	ignoresDatagramLimit
	leaksGoroutine
	hangsOnClose
	mutatesBuffer
	// The defects below pass the rules that existed before issue 19.
	reusesReceived   // a received message's Data is one of two buffers used in turn
	writesOldSlice   // a send writes into the slice given to the previous send
	sendsRefusedPart // a datagram over the limit is refused, but its first limit bytes are sent
	truncatesMid     // frames between 64 KiB and the maximum lose their last byte
	ringLoss         // a frame is lost at each wrap of a 2,500-slot ring
	waitsOnDeadPeer  // SendDatagram to an address nobody listens on waits 3s for an answer
	staleAfterIdle   // a link idle for 200ms goes stale: what is sent on it afterwards is lost
	leaksPending     // a receive goroutine blocked on an unread message outlives Close
	bytesWithHeader  // BytesSent counts a 4-byte header per frame
	uncountedDrops   // DatagramsDropped is never counted
	fakeIdentity     // Message.Identity is the sender's address, though nothing authenticates it
	declaresNoIdent  // declares that it authenticates, but leaves Identity empty
	panicsOnSend     // SendFrame and SendDatagram panic on the 5th call
)

// brokenNet makes transports over one mem network, each with the defect.
type brokenNet struct {
	d       defect
	release chan struct{} // ends leaked and hung goroutines
}

func (bn *brokenNet) make(t testing.TB) ListenFunc {
	// The network allows datagrams of 4000 bytes; the transports claim
	// 1400, so a transport that skips the check is caught.
	n := mem.NewNetwork(mem.Config{MaxDatagramSize: 4000, MaxFrameSize: 1 << 20, QueueSize: 256})
	return func(addr string) (transport.Transport, error) {
		tr, err := n.Listen(addr)
		if err != nil {
			return nil, err
		}
		bt := &brokenTransport{Transport: tr, d: bn.d, release: bn.release, done: make(chan struct{})}
		bt.dgrams, bt.frames = tr.Datagrams(), tr.Frames()
		switch bn.d {
		case reusesReceived, leaksPending, fakeIdentity:
			dg, fr := make(chan transport.Message), make(chan transport.Message)
			bt.dgrams, bt.frames = dg, fr
			if bn.d != leaksPending {
				bt.wg.Add(2)
			}
			go bt.forward(tr.Datagrams(), dg)
			go bt.forward(tr.Frames(), fr)
		}
		return bt, nil
	}
}

// forward hands the inner transport's messages on, with the defect.
func (b *brokenTransport) forward(in <-chan transport.Message, out chan<- transport.Message) {
	defer close(out)
	if b.d != leaksPending {
		defer b.wg.Done()
	}
	// Two receive buffers, used in turn: message k+2 is written over the
	// Data of message k. (One buffer would be a data race the race
	// detector reports; two make the reuse a defect it does not see.)
	var scratch [2][]byte
	k := 0
	for m := range in {
		switch b.d {
		case reusesReceived:
			buf := &scratch[k%2]
			k++
			if cap(*buf) < len(m.Data) {
				*buf = make([]byte, 2*len(m.Data))
			}
			m.Data = (*buf)[:copy((*buf)[:len(m.Data)], m.Data)]
		case fakeIdentity:
			m.Identity = m.From
		case leaksPending:
			// The defect: no case for Close, and Close does not wait.
			select {
			case out <- m:
			case <-b.release:
				return
			}
			continue
		}
		select {
		case out <- m:
		case <-b.done:
			return
		}
	}
}

func (b *brokenTransport) Datagrams() <-chan transport.Message { return b.dgrams }
func (b *brokenTransport) Frames() <-chan transport.Message    { return b.frames }

func (b *brokenTransport) Authenticates() bool { return b.d == declaresNoIdent }

func (b *brokenTransport) Stats() transport.Stats {
	s := b.Transport.Stats()
	switch b.d {
	case bytesWithHeader:
		s.BytesSent += 4 * s.FramesSent
	case uncountedDrops:
		s.DatagramsDropped = 0
	}
	return s
}

// link remembers when addr was last sent to and reports whether the link
// has been idle long enough to go stale (staleAfterIdle).
func (b *brokenTransport) stale(addr string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.lastSend == nil {
		b.lastSend = make(map[string]time.Time)
	}
	if b.staleTo == nil {
		b.staleTo = make(map[string]bool)
	}
	if last, ok := b.lastSend[addr]; ok && time.Since(last) > 200*time.Millisecond {
		b.staleTo[addr] = true
	}
	b.lastSend[addr] = time.Now()
	return b.staleTo[addr]
}

// keep remembers the caller's slice and writes into the previous one
// (writesOldSlice).
func (b *brokenTransport) keep(p []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.prev) > 0 {
		b.prev[0] ^= 0x80
	}
	b.prev = p
}

func (b *brokenTransport) countCall() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls++
	return b.calls
}

type brokenTransport struct {
	*mem.Transport
	d       defect
	release chan struct{}
	done    chan struct{} // closed by Close
	wg      sync.WaitGroup
	dgrams  <-chan transport.Message
	frames  <-chan transport.Message

	mu       sync.Mutex
	nframes  int
	calls    int
	prev     []byte
	lastSend map[string]time.Time
	staleTo  map[string]bool
	pending  []byte // a frame held back to be reordered
	pendTo   string
}

const brokenDatagramLimit = 1400

func (b *brokenTransport) MaxDatagramSize() int { return brokenDatagramLimit }

func (b *brokenTransport) SendDatagram(ctx context.Context, addr string, p []byte) error {
	if b.d == panicsOnSend && b.countCall() == 5 {
		panic("brokenTransport: SendDatagram's fifth call")
	}
	if b.d != ignoresDatagramLimit && len(p) > brokenDatagramLimit {
		if b.d == sendsRefusedPart {
			b.Transport.SendDatagram(ctx, addr, p[:brokenDatagramLimit])
		}
		return &transport.TooLargeError{Path: transport.PathDatagram, Size: len(p), Limit: brokenDatagramLimit}
	}
	switch b.d {
	case writesOldSlice:
		b.keep(p)
	case staleAfterIdle:
		if b.stale(addr) {
			return nil
		}
	case waitsOnDeadPeer:
		before := b.Transport.Stats().DatagramsDropped
		err := b.Transport.SendDatagram(ctx, addr, p)
		if b.Transport.Stats().DatagramsDropped > before {
			// No listener: wait for an answer that never comes.
			select {
			case <-time.After(3 * time.Second):
			case <-ctx.Done():
			case <-b.release:
			}
		}
		return err
	}
	err := b.Transport.SendDatagram(ctx, addr, p)
	if b.d == mutatesBuffer && len(p) > 0 {
		p[0] ^= 0xFF
	}
	return err
}

func (b *brokenTransport) SendFrame(ctx context.Context, addr string, p []byte) error {
	b.mu.Lock()
	b.nframes++
	k := b.nframes
	b.mu.Unlock()
	switch b.d {
	case panicsOnSend:
		if b.countCall() == 5 {
			panic("brokenTransport: SendFrame's fifth call")
		}
	case writesOldSlice:
		b.keep(p)
	case truncatesMid:
		if len(p) > 64<<10 && len(p) < b.MaxFrameSize() {
			p = p[:len(p)-1]
		}
	case ringLoss:
		if k%2500 == 0 {
			return nil
		}
	case staleAfterIdle:
		if b.stale(addr) && k%2 == 0 {
			return nil
		}
	case dropsFrame:
		if k%100 == 0 {
			return nil
		}
	case reordersStream:
		b.mu.Lock()
		if k%50 == 0 && b.pending == nil {
			b.pending, b.pendTo = bytes.Clone(p), addr
			b.mu.Unlock()
			return nil
		}
		held, to := b.pending, b.pendTo
		b.pending = nil
		b.mu.Unlock()
		if err := b.Transport.SendFrame(ctx, addr, p); err != nil {
			return err
		}
		if held != nil {
			return b.Transport.SendFrame(ctx, to, held)
		}
		return nil
	case truncatesLarge:
		if len(p) > 64<<10 {
			p = p[:64<<10]
		}
	case corruptsByte:
		if k%37 == 0 && len(p) > 0 {
			p = bytes.Clone(p)
			p[len(p)/2] ^= 0x01
		}
	}
	err := b.Transport.SendFrame(ctx, addr, p)
	if b.d == mutatesBuffer && len(p) > 0 {
		p[len(p)-1] ^= 0xFF
	}
	return err
}

func (b *brokenTransport) Close() error {
	switch b.d {
	case leaksGoroutine:
		go func() { <-b.release }()
	case hangsOnClose:
		<-b.release
	}
	b.mu.Lock()
	select {
	case <-b.done:
	default:
		close(b.done)
	}
	b.mu.Unlock()
	err := b.Transport.Close()
	b.wg.Wait()
	return err
}

func TestTransportSuiteCatchesBrokenTransports(t *testing.T) {
	cases := []struct {
		name string
		d    defect
		want string
		// also are further subtests to run; the others are skipped, as
		// most would only wait for the watchdog after the defect. The
		// correct transport below runs them all.
		also []string
	}{
		{"drops a stream frame", dropsFrame, "stream/order", []string{"stream/both-ways", "datagram/both-ways"}},
		{"reorders a peer's stream", reordersStream, "stream/order", nil},
		{"truncates a large frame", truncatesLarge, "stream/max-size", nil},
		{"corrupts a byte", corruptsByte, "stream/order", nil},
		{"ignores the datagram limit", ignoresDatagramLimit, "datagram/too-large", nil},
		{"leaks a goroutine after Close", leaksGoroutine, "close/no-goroutines", nil},
		{"hangs on Close", hangsOnClose, "close/idempotent", nil},
		{"mutates the caller's buffer (stream)", mutatesBuffer, "stream/buffer-ownership", nil},
		{"mutates the caller's buffer (datagram)", mutatesBuffer, "datagram/buffer-ownership", nil},
		{"reuses a received buffer (datagram)", reusesReceived, "datagram/buffers-across-calls", nil},
		{"reuses a received buffer (stream)", reusesReceived, "stream/buffers-across-calls", nil},
		{"writes into an earlier caller's slice (datagram)", writesOldSlice, "datagram/buffers-across-calls", nil},
		{"writes into an earlier caller's slice (stream)", writesOldSlice, "stream/buffers-across-calls", nil},
		{"sends part of a refused datagram", sendsRefusedPart, "datagram/too-large", nil},
		{"truncates frames between 64 KiB and the maximum", truncatesMid, "stream/sizes", nil},
		{"loses a frame at each wrap of its ring", ringLoss, "stream/past-the-queue", nil},
		{"waits on a dead peer", waitsOnDeadPeer, "datagram/unreachable", nil},
		{"loses frames on a link gone stale", staleAfterIdle, "stream/after-idle", nil},
		{"loses datagrams on a link gone stale", staleAfterIdle, "datagram/after-idle", nil},
		{"leaves a receive goroutine blocked after Close", leaksPending, "close/pending-traffic", nil},
		{"counts headers in BytesSent", bytesWithHeader, "stats/exact", nil},
		{"never counts dropped datagrams", uncountedDrops, "stats/dropped", nil},
		{"fills Identity without authenticating", fakeIdentity, "identity", nil},
		{"declares it authenticates but gives no Identity", declaresNoIdent, "identity", nil},
		{"panics in SendFrame", panicsOnSend, "stream/order", nil},
		{"panics in SendDatagram", panicsOnSend, "datagram/concurrent-senders", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bn := &brokenNet{d: tc.d, release: make(chan struct{})}
			defer close(bn.release)
			watchdog := 5 * time.Second
			switch tc.d {
			case staleAfterIdle, uncountedDrops, panicsOnSend:
				// The defect shows as a wait for what never comes.
				watchdog = 2 * time.Second
			}
			if tc.d == hangsOnClose {
				// Every Close waits for the watchdog; no need to wait long.
				watchdog = time.Second
			}
			opts := []Option{Watchdog(watchdog), Seed(1)}
			for _, st := range transportSubtests {
				if st.Name != tc.want && !slices.Contains(tc.also, st.Name) {
					opts = append(opts, Skip(st.Name, "this test looks at the rule the defect breaks"))
				}
			}
			failed := check(transportSubtests, func(r tT) { testTransport(r, bn.make, opts) })
			expectFailure(t, failed, tc.want)
			for _, f := range failed {
				if f.Subtest != tc.want && !slices.Contains(tc.also, f.Subtest) {
					t.Errorf("the defect also failed %s", f)
				}
			}
		})
	}
	t.Run("correct", func(t *testing.T) {
		bn := &brokenNet{d: correct, release: make(chan struct{})}
		defer close(bn.release)
		expectPass(t, check(transportSubtests, func(r tT) { testTransport(r, bn.make, []Option{Seed(1)}) }))
	})
}

// TestNewDefectsPassedTheOldRules shows that the defects added with issue
// 19 passed every transport rule that existed before it: run with
// PLUMTREE_CONFORMANCE_GAPS=1 (it runs the whole suite once per defect).
// datagram/too-large was made stricter for sendsRefusedPart, so that one
// fails it.
func TestNewDefectsPassedTheOldRules(t *testing.T) {
	if os.Getenv("PLUMTREE_CONFORMANCE_GAPS") == "" {
		t.Skip("set PLUMTREE_CONFORMANCE_GAPS=1 to run the pre-issue-19 rules against each new defect")
	}
	names := []string{"reusesReceived", "writesOldSlice", "sendsRefusedPart", "truncatesMid", "ringLoss", "waitsOnDeadPeer", "staleAfterIdle", "leaksPending", "bytesWithHeader", "uncountedDrops", "fakeIdentity", "declaresNoIdent", "panicsOnSend"}
	for d := reusesReceived; d <= panicsOnSend; d++ {
		t.Run(names[d-reusesReceived], func(t *testing.T) {
			bn := &brokenNet{d: d, release: make(chan struct{})}
			defer close(bn.release)
			opts := []Option{Seed(1), Watchdog(5 * time.Second)}
			first := slices.IndexFunc(transportSubtests, func(st Subtest) bool { return st.Name == "datagram/buffers-across-calls" })
			for _, st := range transportSubtests[first:] {
				opts = append(opts, Skip(st.Name, "added with issue 19"))
			}
			var failed []string
			for _, f := range check(transportSubtests, func(r tT) { testTransport(r, bn.make, opts) }) {
				failed = append(failed, f.Subtest)
			}
			t.Logf("the pre-issue-19 rules failed %v", failed)
		})
	}
}

// ---- codecs ----

type codecDefect int

const (
	codecCorrect codecDefect = iota
	codecCorruptsByte
	codecMutatesInput
	codecKeepsInput
	codecPanicsOnGarbage
	codecLosesFullPrefix // Append to a dst with no spare capacity starts a new buffer without dst's bytes
	codecSharesScratch   // Decode returns a slice of a buffer the codec reuses
)

// lpCodec encodes a []byte with a one-byte length prefix (values up to 255
// bytes), the defect aside.
type lpCodec struct {
	d       codecDefect
	scratch *[]byte
}

func (c lpCodec) Append(dst []byte, v []byte) ([]byte, error) {
	if len(v) > 255 {
		return dst, errors.New("lpCodec: value too long")
	}
	if c.d == codecLosesFullPrefix && cap(dst)-len(dst) < 1+len(v) {
		dst = make([]byte, len(dst), 2*(len(dst)+1+len(v))) // the defect: dst's bytes not copied
	}
	start := len(dst)
	dst = append(dst, byte(len(v)))
	dst = append(dst, v...)
	if c.d == codecCorruptsByte && len(v) > 2 {
		dst[start+2] ^= 0x40
	}
	return dst, nil
}

func (c lpCodec) Decode(src []byte) ([]byte, error) {
	if c.d == codecPanicsOnGarbage {
		n := int(src[0])
		return bytes.Clone(src[1 : 1+n]), nil
	}
	if len(src) == 0 || int(src[0]) != len(src)-1 {
		return nil, errors.New("lpCodec: bad length")
	}
	out := src[1:]
	switch c.d {
	case codecKeepsInput:
	case codecSharesScratch:
		*c.scratch = append((*c.scratch)[:0], out...)
		out = *c.scratch
	default:
		out = bytes.Clone(out)
	}
	if c.d == codecMutatesInput {
		src[0] = 0
	}
	return out, nil
}

func TestCodecSuiteCatchesBrokenCodecs(t *testing.T) {
	samples := [][]byte{{}, []byte("abc"), bytes.Repeat([]byte("xy"), 100)}
	eq := EqualFunc(bytes.Equal)
	cases := []struct {
		name string
		d    codecDefect
		want string
		only bool // the defect breaks no other rule
	}{
		{"corrupts a byte", codecCorruptsByte, "round-trip", false},
		{"mutates the caller's buffer", codecMutatesInput, "decode-leaves-input", false},
		{"keeps the input", codecKeepsInput, "decode-does-not-keep-input", false},
		{"panics on garbage", codecPanicsOnGarbage, "garbage", false},
		{"loses the bytes of a full dst", codecLosesFullPrefix, "append-full-dst", true},
		{"decodes into a shared scratch buffer", codecSharesScratch, "decode-independent", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mk := func() codec.Codec[[]byte] { return lpCodec{tc.d, new([]byte)} }
			failed := check(codecSubtests, func(r tT) { testCodec(r, mk, samples, []Option{eq, Seed(1)}) })
			if tc.only {
				expectOnly(t, failed, tc.want)
			} else {
				expectFailure(t, failed, tc.want)
			}
		})
	}
	t.Run("correct", func(t *testing.T) {
		mk := func() codec.Codec[[]byte] { return lpCodec{codecCorrect, new([]byte)} }
		expectPass(t, check(codecSubtests, func(r tT) { testCodec(r, mk, samples, []Option{eq, Seed(1)}) }))
	})
}

// ---- compressors ----

type compDefect int

const (
	compCorrect compDefect = iota
	compNoLimit
	compCorruptsByte
	compMutatesInput
	compMidLimit  // no limit for maxSize between 64 and 256 KiB
	compSharesOut // Decompress into a nil dst returns a buffer it reuses
	compBareError // corrupt input fails with an error that wraps nothing
)

// flateCompressor is DEFLATE from the standard library, the defect aside.
type flateCompressor struct {
	d       compDefect
	scratch *bytes.Buffer
}

func (flateCompressor) ID() byte     { return 200 }
func (flateCompressor) Name() string { return "flate-test" }

func (f flateCompressor) Compress(dst, src []byte) ([]byte, error) {
	buf := bytes.NewBuffer(dst)
	w, err := flate.NewWriter(buf, flate.BestSpeed)
	if err != nil {
		return dst, err
	}
	if _, err := w.Write(src); err != nil {
		return dst, err
	}
	if err := w.Close(); err != nil {
		return dst, err
	}
	if f.d == compMutatesInput && len(src) > 0 {
		src[0] ^= 0xFF
	}
	return buf.Bytes(), nil
}

func (f flateCompressor) Decompress(dst, src []byte, maxSize int) ([]byte, error) {
	r := flate.NewReader(bytes.NewReader(src))
	defer r.Close()
	start := len(dst)
	var in io.Reader = io.LimitReader(r, int64(maxSize)+1)
	unlimited := f.d == compNoLimit || f.d == compMidLimit && maxSize > 64<<10 && maxSize < 256<<10
	if unlimited {
		in = r
	}
	buf := bytes.NewBuffer(dst)
	if f.d == compSharesOut && dst == nil {
		buf = f.scratch
		buf.Reset()
	}
	if _, err := buf.ReadFrom(in); err != nil {
		if f.d == compBareError {
			return dst, fmt.Errorf("flate-test: %v", err)
		}
		return dst, fmt.Errorf("%w: %v", compressor.ErrCorrupt, err)
	}
	out := buf.Bytes()
	if len(out)-start > maxSize && !unlimited {
		return dst, compressor.ErrTooLarge
	}
	if f.d == compCorruptsByte && len(out)-start > 2 {
		out[start+2] ^= 0x01
	}
	return out, nil
}

func TestCompressorSuiteCatchesBrokenCompressors(t *testing.T) {
	cases := []struct {
		name string
		d    compDefect
		want string
	}{
		{"decompresses without a limit", compNoLimit, "bomb"},
		{"corrupts a byte", compCorruptsByte, "round-trip"},
		{"mutates the caller's buffer", compMutatesInput, "input-untouched"},
		{"skips the limit between 64 and 256 KiB", compMidLimit, "limit-every-size"},
		{"returns a buffer it reuses", compSharesOut, "output-not-shared"},
		{"fails corrupt input with a bare error", compBareError, "corrupt-error"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mk := func() compressor.Compressor { return flateCompressor{tc.d, new(bytes.Buffer)} }
			opts := []Option{Seed(1)}
			for _, st := range compressorSubtests {
				if st.Name != tc.want {
					opts = append(opts, Skip(st.Name, "this test looks at the rule the defect breaks"))
				}
			}
			expectOnly(t, check(compressorSubtests, func(r tT) { testCompressor(r, mk, opts) }), tc.want)
		})
	}
	t.Run("correct", func(t *testing.T) {
		mk := func() compressor.Compressor { return flateCompressor{compCorrect, new(bytes.Buffer)} }
		expectPass(t, check(compressorSubtests, func(r tT) { testCompressor(r, mk, []Option{Seed(1)}) }))
	})
}

// ---- membership ----

// echoCluster is a cluster of static memberships whose nodes report every
// Join twice.
type echoCluster struct {
	mu    sync.Mutex
	next  atomic.Int32
	nodes map[string]*echoNode
}

type echoNode struct {
	*static.Static[string]
	self membership.Member[string]
}

func (n *echoNode) Self() membership.Member[string] { return n.self }

func (c *echoCluster) Start() (MemberNode[string], error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := c.next.Add(1)
	self := membership.Member[string]{ID: fmt.Sprintf("e%d", k), Addr: fmt.Sprintf("addr-%d", k)}
	all := []membership.Member[string]{self}
	for _, o := range c.nodes {
		all = append(all, o.self)
		o.Add(self)
		o.Remove(self.ID) // the defect: a join reported, withdrawn and reported again
		o.Add(self)
	}
	n := &echoNode{Static: static.New(all...), self: self}
	c.nodes[self.ID] = n
	return n, nil
}

func (c *echoCluster) Leave(n MemberNode[string]) error { return c.stop(n) }
func (c *echoCluster) Crash(n MemberNode[string]) error { return c.stop(n) }

func (c *echoCluster) stop(n MemberNode[string]) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	en := c.nodes[n.Self().ID]
	delete(c.nodes, en.self.ID)
	en.Close()
	for _, o := range c.nodes {
		o.Fail(en.self.ID)
	}
	return nil
}

func (c *echoCluster) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, n := range c.nodes {
		n.Close()
		delete(c.nodes, id)
	}
	return nil
}

func TestMembershipSuiteCatchesBrokenMembership(t *testing.T) {
	mk := func(t testing.TB) Cluster[string] { return &echoCluster{nodes: make(map[string]*echoNode)} }
	failed := check(membershipSubtests, func(r tT) { testMembership(r, mk, []Option{Seed(1), Watchdog(3 * time.Second)}) })
	expectFailure(t, failed, "join")
	// Crash is reported as Fail even for a graceful leave.
	expectFailure(t, failed, "leave")
}

// ---- the suite's own rules ----

func TestSkipNeedsAKnownNameAndAReason(t *testing.T) {
	bn := &brokenNet{d: correct, release: make(chan struct{})}
	defer close(bn.release)
	var opts []Option
	for _, st := range transportSubtests {
		opts = append(opts, Skip(st.Name, "not under test here"))
	}
	failed := check(transportSubtests, func(r tT) {
		testTransport(r, bn.make, append(opts, Skip("stream/no-such-rule", "x"), Skip("stream/order", "")))
	})
	if len(failed) == 0 {
		t.Errorf("a Skip with an unknown name and one without a reason did not fail the suite")
	}
}

// batchCluster is a cluster of nodes that batch their events: a batch is
// applied in order 20ms after its first event, and its events reported. The
// defects: departures are reported first within a batch (batchReorders), or
// Members returns the node's own slice (batchSharesMembers).
type batchCluster struct {
	d     batchDefect
	mu    sync.Mutex
	next  int
	nodes map[string]*batchNode
}

type batchDefect int

const (
	batchCorrect batchDefect = iota
	batchReorders
	batchSharesMembers
)

type batchNode struct {
	d      batchDefect
	self   membership.Member[string]
	events chan membership.Event[string]

	mu      sync.Mutex
	members []membership.Member[string]
	pending []membership.Event[string]
	timer   *time.Timer
	closed  bool
}

func (n *batchNode) Self() membership.Member[string]         { return n.self }
func (n *batchNode) Events() <-chan membership.Event[string] { return n.events }

func (n *batchNode) Members() []membership.Member[string] {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.d == batchSharesMembers {
		return n.members
	}
	return slices.Clone(n.members)
}

func (n *batchNode) post(ev membership.Event[string]) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	n.pending = append(n.pending, ev)
	if n.timer == nil {
		n.timer = time.AfterFunc(20*time.Millisecond, n.flush)
	}
}

func (n *batchNode) flush() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.timer = nil
	if n.closed {
		return
	}
	batch := n.pending
	n.pending = nil
	for _, ev := range batch {
		if ev.Kind == membership.Join {
			n.members = append(n.members, ev.Member)
		} else {
			n.members = slices.DeleteFunc(n.members, func(m membership.Member[string]) bool { return m.ID == ev.Member.ID })
		}
	}
	if n.d == batchReorders {
		// The defect: departures first.
		slices.SortStableFunc(batch, func(a, b membership.Event[string]) int {
			return cmpBool(a.Kind == membership.Join, b.Kind == membership.Join)
		})
	}
	for _, ev := range batch {
		n.events <- ev
	}
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

func (n *batchNode) close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.closed {
		n.closed = true
		if n.timer != nil {
			n.timer.Stop()
		}
		close(n.events)
	}
}

func (c *batchCluster) Start() (MemberNode[string], error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.next++
	self := membership.Member[string]{ID: fmt.Sprintf("b%d", c.next), Addr: fmt.Sprintf("addr-%d", c.next)}
	n := &batchNode{d: c.d, self: self, events: make(chan membership.Event[string], 1024), members: []membership.Member[string]{self}}
	for _, o := range c.nodes {
		n.members = append(n.members, o.self)
		o.post(membership.Event[string]{Kind: membership.Join, Member: self})
	}
	c.nodes[self.ID] = n
	return n, nil
}

func (c *batchCluster) Leave(n MemberNode[string]) error { return c.stop(n, membership.Leave) }
func (c *batchCluster) Crash(n MemberNode[string]) error { return c.stop(n, membership.Fail) }

func (c *batchCluster) stop(n MemberNode[string], kind membership.EventKind) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	bn := c.nodes[n.Self().ID]
	delete(c.nodes, bn.self.ID)
	bn.close()
	for _, o := range c.nodes {
		o.post(membership.Event[string]{Kind: kind, Member: bn.self})
	}
	return nil
}

func (c *batchCluster) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, n := range c.nodes {
		n.close()
		delete(c.nodes, id)
	}
	return nil
}

func TestMembershipSuiteCatchesBatchingDefects(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    batchDefect
		want string
	}{
		{"reports a departure before its join", batchReorders, "order"},
		{"returns its own slice from Members", batchSharesMembers, "members-snapshot"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mk := func(t testing.TB) Cluster[string] { return &batchCluster{d: tc.d, nodes: make(map[string]*batchNode)} }
			opts := []Option{Seed(1), Watchdog(3 * time.Second)}
			for _, st := range membershipSubtests {
				if st.Name != tc.want {
					opts = append(opts, Skip(st.Name, "this test looks at the rule the defect breaks"))
				}
			}
			expectOnly(t, check(membershipSubtests, func(r tT) { testMembership(r, mk, opts) }), tc.want)
		})
	}
	t.Run("correct", func(t *testing.T) {
		mk := func(t testing.TB) Cluster[string] { return &batchCluster{nodes: make(map[string]*batchNode)} }
		expectPass(t, check(membershipSubtests, func(r tT) { testMembership(r, mk, []Option{Seed(1), Watchdog(10 * time.Second)}) }))
	})
}
