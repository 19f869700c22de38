package seal

import (
	"context"
	"errors"
	"fmt"
	"github.com/plumtree-go/plumtree/clock"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plumtree-go/plumtree/transport"
)

// DefaultWindow is the replay window Wrap uses unless WithWindow says
// otherwise.
const DefaultWindow = 2 * time.Minute

// Queue lengths of a sealed transport's receive channels. A full channel
// holds back the goroutine that opens frames, and with it the inner
// transport's own receive queue, which drops (datagrams) or pushes back on
// senders (frames) as it would without the seal.
const (
	datagramQueue = 64
	frameQueue    = 16
)

// Option configures Wrap.
type Option func(*options)

type options struct {
	window      time.Duration
	clock       clock.Clock
	bindFrom    bool
	replayCache int
}

// WithWindow sets the replay window: a frame whose send time (sealed inside
// it) is more than d before or after the receiver's clock is refused, and
// within the window each sealed frame opens at most once: a second copy is
// refused (Refused.Replay) by the replay cache (WithReplayCache), whatever
// the frame carries (data, Prune, Graft, IHave). Clocks must agree within
// less than d. The default is DefaultWindow (2 minutes). 0 turns both the
// window and the replay cache off: a captured frame then opens every time
// it is sent again, and only the gossip layer's seen set drops repeated
// data messages (not control frames), so keep the default.
func WithWindow(d time.Duration) Option {
	return func(o *options) { o.window = max(d, 0) }
}

// WithReplayCache sets how many opened frames the replay cache remembers
// (default DefaultReplayCache, 1<<20). An entry costs about 53 bytes, so
// the default holds about 55 MB when full; it grows with the traffic: a
// node that receives r frames a second holds about r × (window + clock
// difference) entries, the default fills at about 8,700 frames a second
// with the default window, and it gives most of it back once traffic drops.
// When full, the cache forgets the frames sent earliest (by granules of a
// 32nd of the window) and from then on refuses every frame sent as early
// as those that it does not remember, counted as Refused.Window: replays
// stay refused, and under such load the window shrinks to what the cache
// holds. n <= 0 turns the cache off, leaving the window check only (a
// frame replayed within the window opens again).
func WithReplayCache(n int) Option {
	return func(o *options) { o.replayCache = n }
}

// WithClock sets the clock that stamps sent frames and judges received
// ones (default clock.System, package time); for tests. Only its Now is
// read.
func WithClock(c clock.Clock) Option {
	return func(o *options) { o.clock = c }
}

// WithoutAddressBinding leaves the sender's and the destination's
// addresses out of what the tag authenticates (frames and hello proofs).
// By default a frame is bound to its sender's LocalAddr and the address it
// was sent to, and opens only where the receiving transport reports the
// first in Message.From and has the second as its LocalAddr, as the
// transport contract says it must; use this option where that is not so (a
// NAT between nodes, a node listening on a wildcard address, peers that
// send to a host name). Every node of a cluster must agree on it.
func WithoutAddressBinding() Option {
	return func(o *options) { o.bindFrom = false }
}

// Stats are a sealed transport's own counters. They keep their values
// after Close.
type Stats struct {
	// Sealed counts frames and datagrams sealed and accepted by the inner
	// transport; Opened counts received ones that opened and were queued
	// for the reader.
	Sealed, Opened uint64
	// Refused counts received frames and datagrams refused, by reason.
	Refused Refused
	// Inner is the inner transport's Stats (zero if it reports none):
	// what went over the wire, seal overhead included.
	Inner transport.Stats
}

// Refused counts refused frames and datagrams by reason (see Reason).
type Refused struct {
	Short      uint64 // shorter than Overhead
	Version    uint64 // an unknown version byte
	UnknownKey uint64 // sealed with a key not in the keyring (or not sealed at all)
	Auth       uint64 // the tag did not verify: another key with a colliding ID, changed bytes, another sender address or path
	Window     uint64 // sent further from the receiver's clock than the replay window, or too early for a full replay cache to tell (WithReplayCache)
	Replay     uint64 // a frame that already opened within the replay window
}

// Total is the sum of the counts.
func (r Refused) Total() uint64 {
	return r.Short + r.Version + r.UnknownKey + r.Auth + r.Window + r.Replay
}

// Transport is what Wrap returns. The value also implements
// transport.Datagram if the inner transport does, and transport.Stream if the
// inner transport does: find them by type assertion as with any transport.
type Transport interface {
	transport.Transport
	// Stats counts the traffic at the sealed level: payload bytes, frames
	// and datagrams as the user sent and received them (refused ones are
	// not received), with the inner transport's drops and Connections.
	transport.StatsReporter
	// SealStats returns the counters of sealing and refusals, with the
	// inner transport's Stats.
	SealStats() Stats
	// Keyring is the keyring the transport seals and opens with.
	Keyring() *Keyring
	// Unwrap returns the inner transport (for its own methods; do not send
	// on it or read from it).
	Unwrap() transport.Transport
	// PeerIdentity forwards to the inner transport's PeerIdentity, if it
	// has one; otherwise it reports none.
	PeerIdentity(from string) (string, bool)
}

// Wrap seals everything t sends and opens everything it receives with the
// keys of kr. It takes ownership of t (Close closes it) and starts one
// goroutine per path that opens received frames. Every node must wrap its
// transport with a keyring that shares a key with the others' (see Keyring
// for rotation) and the same options, except the window and the clock.
//
//	kr, err := seal.NewKeyring(key) // 16, 24 or 32 random bytes
//	tr, err := seal.Wrap(inner, kr)
//	// use tr wherever inner would go, e.g. gossip.Options.Transport
func Wrap(t transport.Transport, kr *Keyring, opts ...Option) (Transport, error) {
	if t == nil || kr == nil {
		return nil, errors.New("seal: Wrap needs a transport and a keyring")
	}
	o := options{window: DefaultWindow, clock: clock.System{}, bindFrom: true, replayCache: DefaultReplayCache}
	for _, opt := range opts {
		opt(&o)
	}
	var replay *replayFilter
	if o.window > 0 && o.replayCache > 0 {
		replay = newReplayFilter(int64(o.window), o.replayCache)
	}
	dg, _ := t.(transport.Datagram)
	st, _ := t.(transport.Stream)
	if dg == nil && st == nil {
		return nil, fmt.Errorf("seal: %T implements neither transport.Datagram nor transport.Stream", t)
	}
	if dg != nil && dg.MaxDatagramSize() <= Overhead {
		return nil, fmt.Errorf("seal: the inner datagram limit of %d bytes leaves no room for the %d bytes of the seal", dg.MaxDatagramSize(), Overhead)
	}
	if st != nil && st.MaxFrameSize() <= Overhead {
		return nil, fmt.Errorf("seal: the inner frame limit of %d bytes leaves no room for the %d bytes of the seal", st.MaxFrameSize(), Overhead)
	}
	if h, ok := t.(transport.HelloAuthenticating); ok {
		// Connections must prove they hold a key before they are served.
		h.AuthenticateHellos(helloAuth{kr: kr, bindAddrs: o.bindFrom})
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &core{inner: t, dg: dg, st: st, kr: kr, o: o, replay: replay, local: t.LocalAddr(), ctx: ctx, cancel: cancel}
	if dg != nil {
		c.dgrams = make(chan transport.Message, datagramQueue)
		c.wg.Add(1)
		go c.receive(dg.Datagrams(), c.dgrams, transport.PathDatagram)
	}
	if st != nil {
		c.frames = make(chan transport.Message, frameQueue)
		c.wg.Add(1)
		go c.receive(st.Frames(), c.frames, transport.PathStream)
	}
	switch {
	case dg != nil && st != nil:
		return &both{core: c, dgPart: dgPart{c}, stPart: stPart{c}}, nil
	case dg != nil:
		return &datagramOnly{core: c, dgPart: dgPart{c}}, nil
	default:
		return &streamOnly{core: c, stPart: stPart{c}}, nil
	}
}

// The three shapes of a sealed transport, so that type assertions find the
// paths the inner transport has and no other.
type (
	both struct {
		*core
		dgPart
		stPart
	}
	datagramOnly struct {
		*core
		dgPart
	}
	streamOnly struct {
		*core
		stPart
	}
)

var (
	_ transport.Datagram = (*both)(nil)
	_ transport.Stream   = (*both)(nil)
	_ Transport          = (*both)(nil)
	_ transport.Datagram = (*datagramOnly)(nil)
	_ Transport          = (*datagramOnly)(nil)
	_ transport.Stream   = (*streamOnly)(nil)
	_ Transport          = (*streamOnly)(nil)
)

// counters of one path.
type counters struct {
	sent, recvd, bytesOut, bytesIn atomic.Uint64
}

// core is what the shapes share.
type core struct {
	inner  transport.Transport
	dg     transport.Datagram
	st     transport.Stream
	kr     *Keyring
	o      options
	replay *replayFilter // nil with window 0 or no replay cache
	local  string
	dgrams chan transport.Message
	frames chan transport.Message
	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
	err    error
	closed atomic.Bool

	dgCount, frCount counters
	sealed, opened   atomic.Uint64
	refused          [ReasonReplay + 1]atomic.Uint64
}

// LocalAddr is the inner transport's address.
func (c *core) LocalAddr() string { return c.local }

// Keyring is the keyring the transport seals and opens with.
func (c *core) Keyring() *Keyring { return c.kr }

// Unwrap returns the inner transport.
func (c *core) Unwrap() transport.Transport { return c.inner }

// Authenticates forwards to the inner transport (see
// transport.Authenticator): the seal authenticates the cluster's key, not
// a peer's identity.
func (c *core) Authenticates() bool { return transport.Authenticates(c.inner) }

// PeerIdentity forwards to the inner transport's PeerIdentity, if it has
// one (an authenticating transport such as TCP with TLS).
func (c *core) PeerIdentity(from string) (string, bool) {
	if pi, ok := c.inner.(interface {
		PeerIdentity(string) (string, bool)
	}); ok {
		return pi.PeerIdentity(from)
	}
	return "", false
}

func (c *core) innerStats() transport.Stats {
	if r, ok := c.inner.(transport.StatsReporter); ok {
		return r.Stats()
	}
	return transport.Stats{}
}

// Stats counts the payloads sealed and opened; drops and Connections are
// the inner transport's.
func (c *core) Stats() transport.Stats {
	in := c.innerStats()
	return transport.Stats{
		DatagramsSent:     c.dgCount.sent.Load(),
		DatagramsReceived: c.dgCount.recvd.Load(),
		DatagramsDropped:  in.DatagramsDropped,
		FramesSent:        c.frCount.sent.Load(),
		FramesReceived:    c.frCount.recvd.Load(),
		FramesDropped:     in.FramesDropped,
		BytesSent:         c.dgCount.bytesOut.Load() + c.frCount.bytesOut.Load(),
		BytesReceived:     c.dgCount.bytesIn.Load() + c.frCount.bytesIn.Load(),
		Connections:       in.Connections,

		ConnectionsRefused: in.ConnectionsRefused,
	}
}

// SealStats returns the sealing and refusal counters.
func (c *core) SealStats() Stats {
	return Stats{
		Sealed: c.sealed.Load(),
		Opened: c.opened.Load(),
		Refused: Refused{
			Short:      c.refused[ReasonShort].Load(),
			Version:    c.refused[ReasonVersion].Load(),
			UnknownKey: c.refused[ReasonKey].Load(),
			Auth:       c.refused[ReasonAuth].Load(),
			Window:     c.refused[ReasonWindow].Load(),
			Replay:     c.refused[ReasonReplay].Load(),
		},
		Inner: c.innerStats(),
	}
}

// Close closes the inner transport, waits for the goroutines that open
// received frames and closes Datagrams and Frames. It is idempotent and
// returns the inner Close's error the first time.
func (c *core) Close() error {
	c.once.Do(func() {
		c.closed.Store(true)
		c.cancel()
		c.err = c.inner.Close()
		c.wg.Wait()
		if c.dgrams != nil {
			close(c.dgrams)
		}
		if c.frames != nil {
			close(c.frames)
		}
	})
	return c.err
}

// receive opens what arrives on in and queues it on out. Refused frames are
// counted, never logged: a flood of them must not flood the logs.
func (c *core) receive(in <-chan transport.Message, out chan<- transport.Message, path transport.Path) {
	defer c.wg.Done()
	count := &c.dgCount
	if path == transport.PathStream {
		count = &c.frCount
	}
	ad := make([]byte, 0, 64)
	for m := range in {
		var (
			sent int64
			why  Reason
		)
		frame := m.Data
		m.Data, sent, why, ad = c.kr.open(frame, ad, path, m.From, c.local, c.o.bindFrom)
		if why == reasonNone {
			why = c.admit(frame, sent)
		}
		if why != reasonNone {
			c.refused[why].Add(1)
			continue
		}
		m.Path = path
		c.opened.Add(1)
		count.recvd.Add(1)
		count.bytesIn.Add(uint64(len(m.Data)))
		select {
		case out <- m:
		case <-c.ctx.Done():
			return
		}
	}
}

// admit judges a frame that opened (its header is intact) by its send
// time: outside the window, or a replay, it is refused. Called only after
// the tag verified, so that only key holders' frames fill the replay cache.
func (c *core) admit(frame []byte, sent int64) Reason {
	now := c.o.clock.Now()
	if !inWindow(sent, now, c.o.window) {
		return ReasonWindow
	}
	if c.replay != nil {
		return c.replay.check(frame, sent, now.UnixNano())
	}
	return reasonNone
}

// sendBuf is a pooled buffer for sealing; the inner transport does not keep
// what it is given, so the buffer is reused once its send returns.
type sendBuf struct{ frame, ad []byte }

var sendBufs = sync.Pool{New: func() any { return new(sendBuf) }}

// maxPooled is the largest buffer put back in the pool: bigger ones are
// left to the garbage collector rather than held.
const maxPooled = 64 << 10

// send seals b and hands it to the inner transport's send for path.
func (c *core) send(ctx context.Context, addr string, b []byte, path transport.Path, limit int,
	inner func(context.Context, string, []byte) error) error {
	if len(b) > limit {
		return &transport.TooLargeError{Path: path, Size: len(b), Limit: limit}
	}
	if c.closed.Load() {
		return fmt.Errorf("seal: send %s to %s: %w", path, addr, transport.ErrClosed)
	}
	count := &c.dgCount
	if path == transport.PathStream {
		count = &c.frCount
	}
	buf := sendBufs.Get().(*sendBuf)
	buf.frame, buf.ad = c.kr.seal(buf.frame[:0], buf.ad, b, path, c.local, addr, c.o.bindFrom, c.o.clock.Now())
	// Counted before the send: the frame may arrive, and the caller read
	// Stats, before the inner send returns. A failed send takes it back.
	count.sent.Add(1)
	count.bytesOut.Add(uint64(len(b)))
	c.sealed.Add(1)
	err := inner(ctx, addr, buf.frame)
	if cap(buf.frame) <= maxPooled {
		sendBufs.Put(buf)
	}
	if err != nil {
		count.sent.Add(^uint64(0))
		count.bytesOut.Add(-uint64(len(b)))
		c.sealed.Add(^uint64(0))
		var tl *transport.TooLargeError
		if errors.As(err, &tl) {
			// The inner limit shrank since the check above.
			return &transport.TooLargeError{Path: path, Size: len(b), Limit: max(tl.Limit-Overhead, 0)}
		}
		return err
	}
	return nil
}

// dgPart is the datagram path of a sealed transport.
type dgPart struct{ c *core }

// SendDatagram seals b and sends it on the inner datagram path. b may be at
// most MaxDatagramSize bytes (a *transport.TooLargeError otherwise).
func (p dgPart) SendDatagram(ctx context.Context, addr string, b []byte) error {
	return p.c.send(ctx, addr, b, transport.PathDatagram, p.MaxDatagramSize(), p.c.dg.SendDatagram)
}

// MaxDatagramSize is the inner limit less Overhead.
func (p dgPart) MaxDatagramSize() int { return max(p.c.dg.MaxDatagramSize()-Overhead, 0) }

// Datagrams delivers the received datagrams that opened, their payload
// only. It is closed by Close.
func (p dgPart) Datagrams() <-chan transport.Message { return p.c.dgrams }

// stPart is the stream path of a sealed transport.
type stPart struct{ c *core }

// SendFrame seals b and sends it on the inner stream path, blocking as the
// inner SendFrame does. b may be at most MaxFrameSize bytes (a
// *transport.TooLargeError otherwise).
func (p stPart) SendFrame(ctx context.Context, addr string, b []byte) error {
	return p.c.send(ctx, addr, b, transport.PathStream, p.MaxFrameSize(), p.c.st.SendFrame)
}

// MaxFrameSize is the inner limit less Overhead.
func (p stPart) MaxFrameSize() int { return max(p.c.st.MaxFrameSize()-Overhead, 0) }

// Frames delivers the received frames that opened, their payload only. It
// is closed by Close.
func (p stPart) Frames() <-chan transport.Message { return p.c.frames }
