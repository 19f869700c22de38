package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plumtree-go/plumtree/transport"
)

// Wrapped is a transport wrapped by a Network. Its dynamic type also
// implements transport.Datagram, transport.Stream and
// transport.StatsReporter exactly when the inner transport does; find them by
// type assertion, as for any transport.
type Wrapped interface {
	transport.Transport
	// Faults returns the faults this transport injected into what it sent.
	Faults() Stats
	// Unwrap returns the inner transport. Sending through it bypasses chaos.
	Unwrap() transport.Transport
	// PeerIdentity forwards to the inner transport's PeerIdentity method
	// (an authenticating transport such as tcp with TLS has one); without
	// one it reports no identity.
	PeerIdentity(from string) (string, bool)
}

// Wrap returns t with the Network's faults injected into everything it
// sends. The result owns t: its Close closes t. It fails only for a nil t.
func (n *Network) Wrap(t transport.Transport) (Wrapped, error) {
	if t == nil {
		return nil, errors.New("chaos: wrap: nil transport")
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &wrapper{
		n: n, inner: t, addr: t.LocalAddr(),
		ctx: ctx, cancel: cancel, done: make(chan struct{}),
		links:  make(map[linkKey]*link),
		timers: make(map[*pending]struct{}),
	}
	w.dg, _ = t.(transport.Datagram)
	w.st, _ = t.(transport.Stream)
	_, stats := t.(transport.StatsReporter)
	b, d, s, r := base{w}, dgPart{w}, stPart{w}, statsPart{w}
	switch {
	case w.dg != nil && w.st != nil && stats:
		return bothStats{b, d, s, r}, nil
	case w.dg != nil && w.st != nil:
		return both{b, d, s}, nil
	case w.dg != nil && stats:
		return dgStats{b, d, r}, nil
	case w.dg != nil:
		return dgOnly{b, d}, nil
	case w.st != nil && stats:
		return stStats{b, s, r}, nil
	case w.st != nil:
		return stOnly{b, s}, nil
	case stats:
		return baseStats{b, r}, nil
	default:
		return b, nil
	}
}

// The shapes a wrapped transport can take: one per combination of the inner
// transport's capabilities, so that a type assertion finds exactly those.
type (
	bothStats struct {
		base
		dgPart
		stPart
		statsPart
	}
	both struct {
		base
		dgPart
		stPart
	}
	dgStats struct {
		base
		dgPart
		statsPart
	}
	dgOnly struct {
		base
		dgPart
	}
	stStats struct {
		base
		stPart
		statsPart
	}
	stOnly struct {
		base
		stPart
	}
	baseStats struct {
		base
		statsPart
	}
)

var (
	_ transport.Datagram      = bothStats{}
	_ transport.Stream        = bothStats{}
	_ transport.StatsReporter = bothStats{}
	_ Wrapped                 = bothStats{}
	_ transport.Datagram      = dgOnly{}
	_ transport.Stream        = stOnly{}
	_ transport.StatsReporter = baseStats{}
	_ Wrapped                 = base{}
)

// base has what every wrapped transport has.
type base struct{ w *wrapper }

// LocalAddr is the inner transport's address.
func (b base) LocalAddr() string { return b.w.addr }

// Close stops the delays (what they held is lost and counted as Abandoned),
// waits for the wrapper's goroutines and closes the inner transport. It is
// idempotent and returns the inner Close's error.
func (b base) Close() error { return b.w.close() }

// Faults returns the faults this transport injected.
func (b base) Faults() Stats { return b.w.c.stats() }

// Unwrap returns the inner transport.
func (b base) Unwrap() transport.Transport { return b.w.inner }

// Authenticates forwards to the inner transport (see
// transport.Authenticator).
func (b base) Authenticates() bool { return transport.Authenticates(b.w.inner) }

// PeerIdentity forwards to the inner transport's PeerIdentity, if any.
func (b base) PeerIdentity(from string) (string, bool) {
	if pi, ok := b.w.inner.(interface {
		PeerIdentity(string) (string, bool)
	}); ok {
		return pi.PeerIdentity(from)
	}
	return "", false
}

// AuthenticateHellos forwards to the inner transport, if it takes one (see
// transport.HelloAuthenticating), so that package seal, wrapped around
// chaos, still makes the connections below prove their hellos.
func (b base) AuthenticateHellos(a transport.HelloAuthenticator) {
	if h, ok := b.w.inner.(transport.HelloAuthenticating); ok {
		h.AuthenticateHellos(a)
	}
}

// dgPart is the datagram path.
type dgPart struct{ w *wrapper }

// SendDatagram sends b to addr, subject to the rules: see the package doc.
func (d dgPart) SendDatagram(ctx context.Context, addr string, b []byte) error {
	return d.w.sendDatagram(ctx, addr, b)
}

// MaxDatagramSize is the inner transport's limit.
func (d dgPart) MaxDatagramSize() int { return d.w.dg.MaxDatagramSize() }

// Datagrams is the inner transport's receive channel.
func (d dgPart) Datagrams() <-chan transport.Message { return d.w.dg.Datagrams() }

// stPart is the stream path.
type stPart struct{ w *wrapper }

// SendFrame sends b to addr, subject to the rules: see the package doc.
func (s stPart) SendFrame(ctx context.Context, addr string, b []byte) error {
	return s.w.sendFrame(ctx, addr, b)
}

// MaxFrameSize is the inner transport's limit.
func (s stPart) MaxFrameSize() int { return s.w.st.MaxFrameSize() }

// Frames is the inner transport's receive channel.
func (s stPart) Frames() <-chan transport.Message { return s.w.st.Frames() }

// statsPart passes the inner transport's counters through.
type statsPart struct{ w *wrapper }

// Stats returns the inner transport's counters, with what chaos lost of
// what SendDatagram and SendFrame accepted (dropped, partitioned, abandoned
// at Close, refused by the inner transport after a delay) added to
// DatagramsDropped and FramesDropped, so that every accepted datagram is
// still counted as sent or dropped. A duplicated datagram counts twice in
// DatagramsSent.
func (s statsPart) Stats() transport.Stats {
	st := s.w.inner.(transport.StatsReporter).Stats()
	st.DatagramsDropped += s.w.dgLost.Load()
	st.FramesDropped += s.w.frLost.Load()
	return st
}

// linkKey names a link: this transport to an address, on a path.
type linkKey struct {
	to   string
	path transport.Path
}

// link is the state of one link.
type link struct {
	rng *rand.Rand

	// Datagram path: datagrams held back for reordering.
	held []*pending

	// Stream path: the delay queue and its goroutine.
	queue   []*frameItem
	running bool          // a goroutine serves queue (and may hold a frame taken from it)
	lastDue time.Time     // due time of the last frame queued
	epoch   uint64        // increases when a drop fails the link
	err     error         // an error of the inner transport, for the next SendFrame
	slots   chan struct{} // one token per frame queued or in hand
}

// pending is a datagram waiting for its timer (delayed or held).
type pending struct {
	lk    *link
	to    string
	data  []byte
	held  bool
	timer Timer
}

// frameItem is a delayed stream frame.
type frameItem struct {
	data  []byte
	due   time.Time
	epoch uint64
}

type wrapper struct {
	n     *Network
	inner transport.Transport
	dg    transport.Datagram
	st    transport.Stream
	addr  string

	ctx    context.Context // canceled by Close: ends sends of delayed frames
	cancel context.CancelFunc
	done   chan struct{} // closed by Close

	closeOnce sync.Once
	closeErr  error
	isClosed  atomic.Bool
	wg        sync.WaitGroup // timer callbacks and link goroutines
	c         counters
	// Accepted datagrams and frames chaos lost, for Stats.
	dgLost, frLost atomic.Uint64

	mu     sync.Mutex
	closed bool
	links  map[linkKey]*link
	timers map[*pending]struct{} // datagrams whose timer has neither been stopped nor fired
}

func (w *wrapper) count(f func(*counters) *atomic.Uint64, k uint64) {
	if k == 0 {
		return
	}
	f(&w.c).Add(k)
	f(&w.n.c).Add(k)
}

func dropped(c *counters) *atomic.Uint64     { return &c.dropped }
func duplicated(c *counters) *atomic.Uint64  { return &c.duplicated }
func delayed(c *counters) *atomic.Uint64     { return &c.delayed }
func reordered(c *counters) *atomic.Uint64   { return &c.reordered }
func partitioned(c *counters) *atomic.Uint64 { return &c.partitioned }
func failed(c *counters) *atomic.Uint64      { return &c.failed }
func abandoned(c *counters) *atomic.Uint64   { return &c.abandoned }
func sendErrors(c *counters) *atomic.Uint64  { return &c.sendErrors }

func (w *wrapper) closedErr(op, addr string) error {
	return fmt.Errorf("chaos: %s %s→%s: %w", op, w.addr, addr, transport.ErrClosed)
}

// linkLocked returns the state of the link to addr on path p. w.mu must be
// held.
func (w *wrapper) linkLocked(addr string, p transport.Path) *link {
	k := linkKey{addr, p}
	lk := w.links[k]
	if lk == nil {
		lk = &link{rng: w.n.newRand(w.addr, addr, p)}
		if p == transport.PathStream {
			lk.slots = make(chan struct{}, w.n.queue)
		}
		w.links[k] = lk
	}
	return lk
}

func clone(b []byte) []byte { return append(make([]byte, 0, len(b)), b...) }

// sendDatagram decides the datagram's fate and carries it out.
func (w *wrapper) sendDatagram(ctx context.Context, addr string, b []byte) error {
	if w.isClosed.Load() {
		return w.closedErr("send datagram", addr)
	}
	if limit := w.dg.MaxDatagramSize(); len(b) > limit {
		return &transport.TooLargeError{Path: transport.PathDatagram, Size: len(b), Limit: limit}
	}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return w.closedErr("send datagram", addr)
	}
	lk := w.linkLocked(addr, transport.PathDatagram)
	p := w.n.decide(lk.rng, w.addr, addr, transport.PathDatagram)
	switch {
	case p.partitioned:
		w.mu.Unlock()
		w.count(partitioned, 1)
		w.dgLost.Add(1)
		return nil
	case p.drop:
		w.mu.Unlock()
		w.count(dropped, 1)
		w.dgLost.Add(1)
		return nil
	}
	if p.duplicate {
		w.count(duplicated, 1)
		if p.delayed {
			w.count(delayed, 1)
		}
		w.scheduleLocked(&pending{lk: lk, to: addr, data: clone(b)}, p.dupDelay)
	}
	if p.reorder {
		w.count(reordered, 1)
		hp := &pending{lk: lk, to: addr, data: clone(b), held: true}
		lk.held = append(lk.held, hp)
		w.scheduleLocked(hp, p.window)
		w.mu.Unlock()
		return nil
	}
	if p.delayed {
		w.count(delayed, 1)
		w.scheduleLocked(&pending{lk: lk, to: addr, data: clone(b)}, p.delay)
		w.mu.Unlock()
		return nil
	}
	w.mu.Unlock()
	err := w.dg.SendDatagram(ctx, addr, b)
	w.releaseHeld(lk)
	return err
}

// scheduleLocked hands pd to the inner transport after d. w.mu must be held
// and w open.
func (w *wrapper) scheduleLocked(pd *pending, d time.Duration) {
	w.timers[pd] = struct{}{}
	w.wg.Add(1)
	pd.timer = w.n.clock.AfterFunc(d, func() {
		defer w.wg.Done()
		w.mu.Lock()
		if _, ok := w.timers[pd]; !ok { // closed, or released by an overtaking datagram
			w.mu.Unlock()
			return
		}
		delete(w.timers, pd)
		if pd.held {
			for i, h := range pd.lk.held {
				if h == pd {
					pd.lk.held = append(pd.lk.held[:i], pd.lk.held[i+1:]...)
					break
				}
			}
		}
		w.mu.Unlock()
		w.handOver(pd)
	})
}

// handOver gives a delayed or held datagram to the inner transport, unless
// a partition now separates the ends; a datagram that is not itself held
// back then lets the held ones of its link go after it.
func (w *wrapper) handOver(pd *pending) {
	if !w.n.reachable(w.addr, pd.to) {
		w.count(partitioned, 1)
		w.dgLost.Add(1)
	} else if err := w.dg.SendDatagram(w.ctx, pd.to, pd.data); err != nil {
		w.count(sendErrors, 1)
		w.dgLost.Add(1)
	}
	if !pd.held {
		w.releaseHeld(pd.lk)
	}
}

// releaseHeld hands the datagrams held on lk to the inner transport, in the
// order they were held.
func (w *wrapper) releaseHeld(lk *link) {
	w.mu.Lock()
	if len(lk.held) == 0 {
		w.mu.Unlock()
		return
	}
	held := lk.held
	lk.held = nil
	var out []*pending
	for _, pd := range held {
		if _, ok := w.timers[pd]; !ok {
			continue // its timer has fired; it goes by itself
		}
		delete(w.timers, pd)
		if pd.timer.Stop() {
			w.wg.Done() // its callback will never run
		}
		out = append(out, pd)
	}
	w.mu.Unlock()
	for _, pd := range out {
		w.handOver(pd)
	}
}

// sendFrame decides the frame's fate and carries it out.
func (w *wrapper) sendFrame(ctx context.Context, addr string, b []byte) error {
	if w.isClosed.Load() {
		return w.closedErr("send frame", addr)
	}
	if limit := w.st.MaxFrameSize(); len(b) > limit {
		return &transport.TooLargeError{Path: transport.PathStream, Size: len(b), Limit: limit}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("chaos: send frame %s→%s: %w", w.addr, addr, err)
	}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return w.closedErr("send frame", addr)
	}
	lk := w.linkLocked(addr, transport.PathStream)
	if err := lk.err; err != nil {
		lk.err = nil
		w.mu.Unlock()
		return fmt.Errorf("chaos: send frame %s→%s: an earlier delayed frame failed: %w", w.addr, addr, err)
	}
	p := w.n.decide(lk.rng, w.addr, addr, transport.PathStream)
	switch {
	case p.partitioned:
		w.mu.Unlock()
		w.count(partitioned, 1)
		if w.n.streamMode() == PartitionSilent {
			w.frLost.Add(1)
			return nil
		}
		w.count(failed, 1)
		return fmt.Errorf("chaos: send frame %s→%s: %w (%w, %w)", w.addr, addr, transport.ErrUnreachable, ErrPartitioned, ErrInjected)
	case p.drop:
		// The connection fails: this frame and those waiting behind the
		// delay are lost. The one a goroutine holds sees the new epoch.
		lost := len(lk.queue)
		for range lost {
			<-lk.slots
		}
		lk.queue = nil
		lk.epoch++
		w.mu.Unlock()
		w.count(dropped, uint64(1+lost))
		w.count(failed, 1)
		w.frLost.Add(uint64(lost)) // accepted earlier; this one was refused
		return fmt.Errorf("chaos: send frame %s→%s: connection failed, %d queued frames lost: %w", w.addr, addr, lost, ErrInjected)
	case !p.delayed && !lk.running:
		w.mu.Unlock()
		return w.st.SendFrame(ctx, addr, b)
	}
	w.mu.Unlock()

	// Delayed, or behind delayed frames: through the link's queue.
	select {
	case lk.slots <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("chaos: send frame %s→%s: %w", w.addr, addr, ctx.Err())
	case <-w.done:
		return w.closedErr("send frame", addr)
	}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return w.closedErr("send frame", addr)
	}
	due := w.n.clock.Now().Add(p.delay)
	if due.Before(lk.lastDue) {
		due = lk.lastDue
	}
	lk.lastDue = due
	lk.queue = append(lk.queue, &frameItem{data: clone(b), due: due, epoch: lk.epoch})
	if p.delayed {
		w.count(delayed, 1)
	}
	if !lk.running {
		lk.running = true
		w.wg.Add(1)
		go w.serveLink(addr, lk)
	}
	w.mu.Unlock()
	return nil
}

// serveLink hands the frames of lk's delay queue to the inner transport
// when they are due, in order. It returns when the queue is empty or the
// wrapper closes.
func (w *wrapper) serveLink(addr string, lk *link) {
	defer w.wg.Done()
	for {
		w.mu.Lock()
		if w.closed || len(lk.queue) == 0 {
			lk.running = false
			w.mu.Unlock()
			return
		}
		it := lk.queue[0]
		lk.queue[0] = nil
		lk.queue = lk.queue[1:]
		w.mu.Unlock()

		if !w.waitUntil(it.due) {
			w.count(abandoned, 1)
			w.frLost.Add(1)
			<-lk.slots
			continue // closed: the loop ends
		}
		w.mu.Lock()
		stale := it.epoch != lk.epoch
		w.mu.Unlock()
		switch {
		case stale:
			w.count(dropped, 1) // lost with the connection that failed while it waited
			w.frLost.Add(1)
		case !w.n.reachable(w.addr, addr):
			w.count(partitioned, 1)
			w.frLost.Add(1)
		default:
			if err := w.st.SendFrame(w.ctx, addr, it.data); err != nil {
				w.frLost.Add(1)
				if w.ctx.Err() != nil {
					w.count(abandoned, 1)
				} else {
					w.count(sendErrors, 1)
					w.mu.Lock()
					lk.err = err
					w.mu.Unlock()
				}
			}
		}
		<-lk.slots
	}
}

// waitUntil waits until the clock reaches due; false means the wrapper
// closed first.
func (w *wrapper) waitUntil(due time.Time) bool {
	d := due.Sub(w.n.clock.Now())
	if d <= 0 {
		select {
		case <-w.done:
			return false
		default:
			return true
		}
	}
	ch := make(chan struct{})
	t := w.n.clock.AfterFunc(d, func() { close(ch) })
	select {
	case <-ch:
		return true
	case <-w.done:
		t.Stop()
		return false
	}
}

func (w *wrapper) close() error {
	w.closeOnce.Do(func() {
		w.mu.Lock()
		w.closed = true
		w.isClosed.Store(true)
		close(w.done)
		w.cancel()
		timers := w.timers
		w.timers = nil
		var frames uint64
		for _, lk := range w.links {
			frames += uint64(len(lk.queue))
			lk.queue, lk.held = nil, nil
		}
		w.mu.Unlock()

		for pd := range timers {
			if pd.timer.Stop() {
				w.wg.Done() // its callback will never run
			}
		}
		w.count(abandoned, frames+uint64(len(timers)))
		w.frLost.Add(frames)
		w.dgLost.Add(uint64(len(timers)))
		w.wg.Wait()
		w.closeErr = w.inner.Close()
	})
	return w.closeErr
}
