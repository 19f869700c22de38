package gossip

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/plumtree-go/plumtree/codec"
	"github.com/plumtree-go/plumtree/compressor"
	"github.com/plumtree-go/plumtree/gossip/internal/wire"
	"github.com/plumtree-go/plumtree/membership"
	"github.com/plumtree-go/plumtree/transport"
)

// Options wire a node to the world. ID, Transport, Membership and Codec are
// required.
type Options[ID comparable, M any] struct {
	// ID is this node's identity; Membership must list it under the same ID.
	ID ID
	// Transport implements transport.Datagram, transport.Stream or both.
	// With one path, every frame takes it. The node does not close it.
	Transport transport.Transport
	// Membership reports the cluster. The node does not close it.
	Membership membership.Membership[ID]
	// Codec encodes the application's messages.
	Codec codec.Codec[M]
	// IDCodec encodes node identities on the wire. nil means the built-in
	// codec for string and integer types (codec.ForID).
	IDCodec codec.Codec[ID]
	// Compressor, if set, is the compressor this node broadcasts with;
	// Config.Compression.MinSize applies. It is required when
	// Config.Compression names an algorithm (package gossip builds none by
	// name: builtin.Resolve(Algorithm, Level) in package compressor/builtin
	// does, and package stack does it for you), and takes the place of the
	// one named. It must be in Compressors when those are given.
	Compressor compressor.Compressor
	// Compressors are the compressors this node can read, by the wire ID a
	// frame names; a payload naming another is refused (an
	// UnknownCompressorError: logged, counted in Stats.DecodeErrors,
	// neither delivered nor forwarded). nil means identity and Compressor
	// only: give the registry builtin.Resolve returns (package
	// compressor/builtin; package stack does) to read the zstd and lz4 that
	// other nodes of this module may send.
	Compressors *compressor.Registry
	// OnDeliver, if set, is called for each delivered message, one at a
	// time, on a goroutine of its own. If nil, read Deliveries instead. It
	// may call Broadcast, Stats and Peers, but not Close: Close waits for
	// this goroutine.
	OnDeliver func(Delivery[ID, M])
	// Validate, if set, is called before a message is delivered or
	// forwarded; an error rejects it (it is neither delivered nor forwarded).
	// It runs on the protocol loop: keep it quick, and call no method of the
	// node from it (they wait for the loop).
	Validate func(from ID, m M) error
	// Authenticate, if set, checks every frame: sender is the node ID the
	// frame names, identity is what the transport authenticated for the
	// connection it came on (transport.Message.Identity: the name in the
	// peer's verified certificate with TLS, empty otherwise; it is read only
	// from a transport that says it authenticates, transport.Authenticator,
	// and taken as empty from any other). An
	// error refuses the frame: it is dropped, counted in Stats.DecodeErrors
	// and reported as an EventDecodeError. MatchIdentity is the usual check.
	// Only the neighbour that sent a frame is authenticated this way, not
	// the origin of a payload it relays. With Authenticate set, a node sends
	// every frame on the stream path when it has one, since datagrams over
	// UDP carry no identity: set it on every node of the cluster.
	Authenticate func(sender ID, identity string) error
	// Tracer, if set, carries a trace of each broadcast across the cluster
	// (observe.Tracer does it with OpenTelemetry). It runs on the protocol
	// loop for each traced delivery: keep it quick.
	Tracer Tracer
	// Clock defaults to the system clock.
	Clock Clock
	// Observer, if set, receives events. It may be called from several
	// goroutines at once, some of them the protocol loop: it must not call
	// any method of the node.
	Observer Observer
	// Logger defaults to a logger that discards everything.
	Logger *slog.Logger
	// Seed, if not 0, makes peer sampling reproducible (mixed with the
	// node's ID so that nodes differ); 0 draws one from crypto/rand.
	// Message IDs never depend on it: each start draws a new incarnation
	// from crypto/rand, so a node restarted with the same Seed and ID never
	// repeats an ID (see MessageID).
	Seed uint64
}

// Delivery is a message delivered to the application.
type Delivery[ID comparable, M any] struct {
	ID        MessageID // the broadcast's ID, the same at every node
	Origin    ID        // the node that broadcast it
	From      ID        // the neighbour it arrived from
	Hops      uint32    // hops from the origin
	Timestamp time.Time // the origin's clock when it broadcast
	Value     M         // the message, decoded
	// Lagged is how many deliveries were dropped, because the delivery
	// buffer was full, since the delivery before this one: the application
	// missed that many messages (also counted in Stats.DeliveriesDropped
	// and reported as EventDeliveryDropped). 0 when nothing was missed.
	Lagged uint64
	// Skipped, with Config.Ordered, is how many messages of Origin just
	// before this one were given up: not recovered within
	// Config.OrderGapTimeout (or pushed out by Config.OrderMaxHeld). The
	// application never gets them. 0 when nothing was skipped.
	Skipped uint64
}

// Stats is a snapshot of a node.
type Stats struct {
	EngineStats
	DeliveriesDropped uint64 // deliveries lost to a full delivery buffer
	DecodeErrors      uint64 // frames from the network that could not be read
	SendErrors        uint64 // frames the transport refused or a full send queue dropped
	// StuckDeadlines counts ticks after which the engine still wanted to be
	// woken at once (an engine bug, logged and reported as
	// EventStuckDeadline): the runner then waits stuckBackoff instead of
	// spinning on a deadline in the past.
	StuckDeadlines uint64
}

// Plumtree is a node: it runs the protocol engine on a Transport and a
// Membership. Make one with New; stop it with Close.
type Plumtree[ID comparable, M any] struct {
	o        Options[ID, M]
	cfg      Config
	eng      *Engine[ID]
	dg       transport.Datagram
	st       transport.Stream
	clock    Clock
	log      *slog.Logger
	comps    *compressor.Registry
	comp     compressor.Compressor // what Broadcast compresses with; nil for none
	selfWire []byte
	limits   wire.Limits
	// authenticated: the transport vouches for Message.Identity
	// (transport.Authenticator); otherwise an identity is ignored.
	authenticated bool

	bcast      chan *broadcastReq
	queries    chan func()
	deliveries chan Delivery[ID, M]
	stop       chan struct{}
	ctx        context.Context
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	senders    sync.WaitGroup
	closeOnce  sync.Once

	// sendersLive and sendersStarted count stream sender goroutines
	// running and ever started (read by tests).
	sendersLive, sendersStarted atomic.Int64

	// Owned by the loop.
	peers      map[ID]*peer
	byWire     map[string]ID // members by the wire form of their ID
	frame      wire.Frame
	lastFrame  *frameBuf // the last Gossip encoded, for lastKey
	lastKey    gossipKey
	decodeBuf  []byte
	warnedComp [256]bool // compressor IDs already logged as unknown
	lagged     uint64    // deliveries dropped since the last one delivered
	flow       flow

	// held, with Config.Ordered: accepted messages the engine has not
	// released yet (EngineOptions.Release), at most MaxOrigins times
	// OrderMaxHeld.
	held map[MessageID]Delivery[ID, M]

	dropped, decodeErrs, sendErrs, stuck atomic.Uint64
}

type peer struct {
	addr   string
	idWire []byte
	queue  chan *frameBuf // stream frames waiting for the sender goroutine
	queued *atomic.Int64  // bytes in queue, shared with the sender goroutine
	sent   *atomic.Uint64 // frames the sender goroutine has taken off queue and sent
	queues uint64         // frames put on queue (owned by the loop)
	gone   bool           // dropped: its queue is closed (owned by the loop)

	// running is true while a sender goroutine drains queue; it exits when
	// the queue is empty, and the next frame queued starts another.
	running *atomic.Bool
}

type gossipKey struct {
	id    MessageID
	round uint32
	rec   bool
	ok    bool
}

type broadcastReq struct {
	payload Payload
	ctx     context.Context // for the Tracer: the broadcast's span is its child
	wait    bool            // wait for room (Broadcast), or refuse (TryBroadcast)
	state   atomic.Int32    // reqPending, then reqTaken by the loop or reqWithdrawn
	reply   chan broadcastResp
}

type broadcastResp struct {
	id  MessageID
	err error
}

// New starts a node.
func New[ID comparable, M any](cfg Config, o Options[ID, M]) (*Plumtree[ID, M], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if o.Transport == nil {
		return nil, errors.New("gossip: Options.Transport is nil")
	}
	if o.Membership == nil {
		return nil, errors.New("gossip: Options.Membership is nil")
	}
	if o.Codec == nil {
		return nil, errors.New("gossip: Options.Codec is nil")
	}
	// A membership that knows which member is this node (memberlist's
	// does) must agree with Options.ID: with another ID the others would
	// address this node by one name and it would answer by another, and
	// broadcasts would reach some peers and not others, silently.
	if s, ok := o.Membership.(interface{ Self() membership.Member[ID] }); ok && s.Self().ID != o.ID {
		return nil, fmt.Errorf("gossip: Options.ID %v is not this node in the membership, which lists it as %v: leave the ID to the membership (with membership/memberlist, its node name)", o.ID, s.Self().ID)
	}
	p := &Plumtree[ID, M]{o: o, cfg: cfg, clock: o.Clock, log: o.Logger, comps: o.Compressors}
	p.dg, _ = o.Transport.(transport.Datagram)
	p.st, _ = o.Transport.(transport.Stream)
	p.authenticated = transport.Authenticates(o.Transport)
	if p.dg == nil && p.st == nil {
		return nil, fmt.Errorf("gossip: Options.Transport (%T) implements neither transport.Datagram nor transport.Stream", o.Transport)
	}
	if p.o.IDCodec == nil {
		c, err := codec.ForID[ID]()
		if err != nil {
			return nil, fmt.Errorf("gossip: Options.IDCodec: %w", err)
		}
		p.o.IDCodec = c
	}
	if p.clock == nil {
		p.clock = SystemClock{}
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if err := p.setupCompression(); err != nil {
		return nil, err
	}
	self, err := p.o.IDCodec.Append(nil, o.ID)
	if err != nil {
		return nil, fmt.Errorf("gossip: encoding Options.ID: %w", err)
	}
	if len(self) > wire.DefaultLimits.MaxIDLen {
		return nil, fmt.Errorf("gossip: Options.ID encodes to %d bytes, limit %d", len(self), wire.DefaultLimits.MaxIDLen)
	}
	p.selfWire = self
	p.limits = wire.DefaultLimits
	p.limits.MaxPayload = cfg.MaxMessageSize
	seed := o.Seed
	if seed == 0 {
		var b [8]byte
		if _, err := crand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("gossip: drawing a seed: %w", err)
		}
		seed = binary.LittleEndian.Uint64(b[:])
	}
	seed ^= xxhash.Sum64(self)
	eo := EngineOptions[ID]{Self: o.ID, Config: cfg, Seed: seed, Deliver: p.deliver, Observer: o.Observer}
	if o.Tracer != nil {
		eo.Retrace = p.retrace
	}
	if cfg.Ordered {
		p.held = make(map[MessageID]Delivery[ID, M])
		eo.Release = p.release
	}
	p.eng, err = newEngine(eo) // cfg validated above
	if err != nil {
		return nil, err
	}
	p.bcast = make(chan *broadcastReq)
	p.flow.init()
	p.queries = make(chan func())
	p.deliveries = make(chan Delivery[ID, M], cfg.DeliveryBuffer)
	p.stop = make(chan struct{})
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.peers = make(map[ID]*peer)
	p.byWire = make(map[string]ID)

	now := p.clock.Now()
	p.reconcile(now)
	p.wg.Add(1)
	go p.loop()
	if o.OnDeliver != nil {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for d := range p.deliveries {
				o.OnDeliver(d)
			}
		}()
	}
	return p, nil
}

// Deliveries returns the channel of delivered messages. It is closed by
// Close. When OnDeliver is set, the node reads it itself.
func (p *Plumtree[ID, M]) Deliveries() <-chan Delivery[ID, M] { return p.deliveries }

// Broadcast sends m to the whole cluster and returns its ID. It fails with a
// *MessageTooLargeError for a message over Config.MaxMessageSize. The local
// node does not deliver its own message.
//
// While the node's send queues hold more than the publishers' share
// (Config.PublishQueueBytes per peer, PublishPendingBytes in all), Broadcast
// waits for room, first come first served, until ctx is done; TryBroadcast
// refuses instead. A ctx that is done when Broadcast is called, or becomes
// done before the message was taken, means the message is never sent and
// Broadcast returns ctx.Err().
func (p *Plumtree[ID, M]) Broadcast(ctx context.Context, m M) (MessageID, error) {
	return p.publish(ctx, m, true)
}

// Stats returns a snapshot of the node. After Close it returns ErrClosed.
func (p *Plumtree[ID, M]) Stats() (Stats, error) {
	var s Stats
	err := p.query(func() { s.EngineStats = p.eng.Stats() })
	s.DeliveriesDropped, s.DecodeErrors, s.SendErrors = p.dropped.Load(), p.decodeErrs.Load(), p.sendErrs.Load()
	s.StuckDeadlines = p.stuck.Load()
	return s, err
}

// Peers returns copies of the eager and lazy sets.
func (p *Plumtree[ID, M]) Peers() (eager, lazy []ID, err error) {
	err = p.query(func() { eager, lazy = p.eng.EagerPeers(), p.eng.LazyPeers() })
	return eager, lazy, err
}

// checkInvariants runs the engine's invariant check on the loop.
func (p *Plumtree[ID, M]) checkInvariants() (err error) {
	if qerr := p.query(func() { err = p.eng.checkInvariants() }); qerr != nil {
		return qerr
	}
	return err
}

func (p *Plumtree[ID, M]) query(fn func()) error {
	done := make(chan struct{})
	select {
	case p.queries <- func() { fn(); close(done) }:
		<-done
		return nil
	case <-p.stop:
		return ErrClosed
	}
}

// Close stops the node and waits for every goroutine it started, then
// closes Deliveries. It does not close the Transport or the Membership.
func (p *Plumtree[ID, M]) Close() error {
	p.closeOnce.Do(func() {
		close(p.stop)
		p.cancel()
		p.wg.Wait()
	})
	return nil
}

func (p *Plumtree[ID, M]) loop() {
	defer p.wg.Done()
	defer func() {
		for id := range p.peers {
			p.dropPeer(id)
		}
		p.senders.Wait()
		close(p.deliveries)
	}()

	var dgCh, stCh <-chan transport.Message
	if p.dg != nil {
		dgCh = p.dg.Datagrams()
	}
	if p.st != nil {
		stCh = p.st.Frames()
	}
	memCh := p.o.Membership.Events()
	timer := p.clock.NewTimer(time.Hour)
	defer timer.Stop()
	armed := true
	var holdUntil time.Time // after a stuck deadline: no tick before this
	reconcile := p.clock.NewTimer(p.cfg.ReconcileInterval)
	defer reconcile.Stop()

	for {
		p.flushOutbox()
		// Re-arm the single engine timer for the next deadline.
		if armed && !timer.Stop() {
			select {
			case <-timer.C():
			default:
			}
		}
		armed = false
		tick := timer.C()
		if d := p.eng.NextDeadline(); !d.IsZero() {
			if d.Before(holdUntil) {
				d = holdUntil
			}
			if wait := d.Sub(p.clock.Now()); wait > 0 {
				timer.Reset(wait)
				armed = true
			} else {
				// Already due: never Reset a timer to zero or less. Inside a
				// synctest bubble the runtime then fires the timer inline on
				// this goroutine's thread, sharing the bubble's single race
				// context with other threads, which corrupts ThreadSanitizer
				// under -race (golang/go#78156).
				tick = dueNow
			}
		}
		select {
		case <-p.stop:
			return
		case req := <-p.bcast:
			p.onBroadcast(req)
		case <-p.flow.room:
			p.onRoom(p.clock.Now())
		case m, ok := <-dgCh:
			if !ok {
				dgCh = nil
				continue
			}
			p.streamsFirst(stCh)
			p.receive(m)
		case m, ok := <-stCh:
			if !ok {
				stCh = nil
				continue
			}
			p.receive(m)
		case ev, ok := <-memCh:
			if !ok {
				memCh = nil
				continue
			}
			p.onMembership(ev)
		case <-tick:
			armed = false
			now := p.clock.Now()
			p.eng.Tick(now)
			holdUntil = p.checkDeadline(now, holdUntil)
		case <-reconcile.C():
			p.reconcile(p.clock.Now())
			p.onRoom(p.clock.Now()) // held announcements past their time
			reconcile.Reset(p.cfg.ReconcileInterval)
		case fn := <-p.queries:
			fn()
		}
	}
}

// stuckBackoff is how long the runner waits before it ticks an engine
// again that kept a deadline it was just ticked for.
const stuckBackoff = 100 * time.Millisecond

// checkDeadline runs right after Tick(now). A deadline in the past is
// handled once: an engine whose next deadline is still at or before now
// would have the loop tick it again at once, forever, at full CPU (and,
// inside a synctest bubble, with the clock unable to advance). That is an
// engine bug: it is logged (once per stuck deadline), counted in
// Stats.StuckDeadlines and reported as EventStuckDeadline, and the loop
// ticks again only stuckBackoff later. It returns the time before which the
// loop must not tick (zero when the engine is well).
func (p *Plumtree[ID, M]) checkDeadline(now, hold time.Time) time.Time {
	d := p.eng.NextDeadline()
	if d.IsZero() || d.After(now) {
		return time.Time{}
	}
	p.stuck.Add(1)
	err := fmt.Errorf("gossip: engine deadline %v still due after Tick at %v (engine stats %+v)", d, now, p.eng.Stats())
	p.emit(Event{Kind: EventStuckDeadline, Err: err})
	if hold.IsZero() {
		p.log.Error("gossip: the engine keeps asking to be woken for a deadline it was ticked for; ticking it every "+stuckBackoff.String()+" instead", "err", err)
	}
	return now.Add(stuckBackoff)
}

// reconcile compares the membership's full view with the node's, so that
// a dropped event never leaves a ghost peer or a missing one.
func (p *Plumtree[ID, M]) reconcile(now time.Time) {
	members := p.o.Membership.Members()
	ids := make([]ID, 0, len(members))
	seen := make(map[ID]struct{}, len(members))
	for _, m := range members {
		if m.ID == p.o.ID {
			continue
		}
		seen[m.ID] = struct{}{}
		ids = append(ids, m.ID)
		p.setPeer(m)
	}
	for id := range p.peers {
		if _, ok := seen[id]; !ok {
			p.dropPeer(id)
		}
	}
	p.eng.SetMembers(now, ids)
}

func (p *Plumtree[ID, M]) onMembership(ev membership.Event[ID]) {
	if ev.Member.ID == p.o.ID {
		return
	}
	now := p.clock.Now()
	switch ev.Kind {
	case membership.Join, membership.Update:
		p.setPeer(ev.Member)
		p.eng.PeerUp(now, ev.Member.ID)
	case membership.Leave, membership.Fail:
		p.dropPeer(ev.Member.ID)
		p.eng.PeerDown(now, ev.Member.ID)
	}
}

func (p *Plumtree[ID, M]) setPeer(m membership.Member[ID]) {
	pr := p.peers[m.ID]
	if pr != nil && pr.addr == m.Addr {
		return
	}
	if pr != nil {
		p.dropPeer(m.ID) // the address changed: a new sender for the new one
	}
	idw, err := p.o.IDCodec.Append(nil, m.ID)
	if err != nil {
		p.log.Warn("gossip: cannot encode member ID", "id", m.ID, "err", err)
		return
	}
	p.peers[m.ID] = &peer{addr: m.Addr, idWire: idw}
	p.byWire[string(idw)] = m.ID
}

func (p *Plumtree[ID, M]) dropPeer(id ID) {
	pr := p.peers[id]
	if pr == nil {
		return
	}
	if pr.queue != nil {
		close(pr.queue)
		p.wakeSender(pr) // to drain what is queued
		p.forgetQueue(pr)
		p.flow.wantRoom.Store(true)
		select {
		case p.flow.room <- struct{}{}: // its frames no longer count
		default:
		}
	}
	pr.gone = true
	delete(p.peers, id)
	delete(p.byWire, string(pr.idWire))
}

// setupCompression picks the compressor Broadcast writes with and the
// registry the node reads with.
func (p *Plumtree[ID, M]) setupCompression() error {
	o := &p.o
	switch {
	case o.Compressor != nil:
		if o.Compressor.ID() != 0 {
			p.comp = o.Compressor
		}
	case p.cfg.Compression.enabled():
		c := p.cfg.Compression
		return &ConfigError{Field: "Compression.Algorithm", Reason: fmt.Sprintf(
			"is %q but Options.Compressor is nil: package gossip builds no compressor by name; pass Options.Compressor and Options.Compressors (builtin.Resolve(%q, %d) of package compressor/builtin gives both), or build the node with package stack, which does",
			c.Algorithm, c.Algorithm, c.Level)}
	}
	if p.comps == nil {
		var cs []compressor.Compressor
		if p.comp != nil {
			cs = append(cs, p.comp)
		}
		reg, err := compressor.NewRegistry(cs...)
		if err != nil {
			return fmt.Errorf("gossip: Options.Compressor: %w", err)
		}
		p.comps = reg
		return nil
	}
	if p.comp != nil {
		if c, ok := p.comps.ByID(p.comp.ID()); !ok || c.Name() != p.comp.Name() {
			return fmt.Errorf("gossip: compressor %q (ID %d) is not in Options.Compressors %q, so this node could not read its own messages",
				p.comp.Name(), p.comp.ID(), p.comps.Names())
		}
	}
	return nil
}

// retrace is the engine's Retrace hook: the Tracer records this node's part
// and names what to forward.
func (p *Plumtree[ID, M]) retrace(d RawDelivery[ID]) []byte {
	tc := p.o.Tracer.Deliver(TraceDelivery{ID: d.ID, Trace: d.Trace, Hops: d.Hops, Timestamp: d.Timestamp, Recovered: d.Recovered})
	if len(tc) > MaxTraceSize {
		return nil
	}
	return tc
}

// deliver is the engine's Deliver hook: decompress, decode, validate, hand
// to the application.
func (p *Plumtree[ID, M]) deliver(d RawDelivery[ID]) bool {
	raw := d.Payload.Data
	if d.Payload.Compressor != 0 {
		c, ok := p.comps.ByID(d.Payload.Compressor)
		if !ok {
			err := &UnknownCompressorError{ID: d.Payload.Compressor, Known: p.comps.Names()}
			p.decodeErrs.Add(1)
			p.emit(Event{Kind: EventDecodeError, Message: d.ID, Bytes: len(raw), Err: err})
			// Warn: a sender configured with a compressor this node cannot
			// read loses every message it sends here until fixed.
			// Once per compressor ID: a peer sending many such payloads
			// must not flood the log.
			if !p.warnedComp[d.Payload.Compressor] {
				p.warnedComp[d.Payload.Compressor] = true
				p.log.Warn("gossip: payload refused (logged once per compressor ID; all are counted)", "id", d.ID, "from", d.From, "origin", d.Origin, "err", err)
			}
			return false
		}
		var err error
		p.decodeBuf, err = c.Decompress(p.decodeBuf[:0], raw, p.cfg.MaxMessageSize)
		if err != nil {
			p.decodeErrs.Add(1)
			p.emit(Event{Kind: EventDecodeError, Message: d.ID, Bytes: len(raw), Err: err})
			p.log.Debug("gossip: payload does not decompress", "compressor", c.Name(), "from", d.From, "err", err)
			return false
		}
		raw = p.decodeBuf
	}
	m, err := p.o.Codec.Decode(raw)
	if err != nil {
		p.decodeErrs.Add(1)
		p.log.Debug("gossip: payload does not decode", "from", d.From, "err", err)
		return false
	}
	if p.o.Validate != nil {
		if err := p.o.Validate(d.From, m); err != nil {
			p.log.Debug("gossip: message rejected", "id", d.ID, "from", d.From, "err", err)
			return false
		}
	}
	dl := Delivery[ID, M]{ID: d.ID, Origin: d.Origin, From: d.From, Hops: d.Hops, Timestamp: d.Timestamp, Value: m}
	if p.held != nil {
		p.held[d.ID] = dl // until the engine releases it in order
		return true
	}
	p.handOver(dl)
	return true
}

// release is the engine's Release hook (Config.Ordered): a held message's
// turn has come, or it came too late for it.
func (p *Plumtree[ID, M]) release(r Release[ID]) {
	dl, ok := p.held[r.ID]
	if !ok {
		return
	}
	delete(p.held, r.ID)
	if r.Stale {
		return
	}
	dl.Skipped = r.Skipped
	p.handOver(dl)
}

// handOver gives a delivery to the application, or drops it if the
// application is behind.
func (p *Plumtree[ID, M]) handOver(dl Delivery[ID, M]) {
	dl.Lagged = p.lagged
	select {
	case p.deliveries <- dl:
		p.lagged = 0
	default:
		// Never block the protocol on a slow application: count, report,
		// and tell it with the next delivery it gets (Delivery.Lagged).
		p.lagged++
		p.dropped.Add(1)
		p.emit(Event{Kind: EventDeliveryDropped, Message: dl.ID})
		// Checked first: the arguments would allocate even for a logger
		// that discards, on a path taken once per message under overload.
		if p.log.Enabled(p.ctx, slog.LevelWarn) {
			p.log.Warn("gossip: delivery buffer full, message dropped for the application", "id", dl.ID)
		}
	}
}

func (p *Plumtree[ID, M]) emit(e Event) {
	if p.o.Observer != nil {
		p.o.Observer.Observe(e)
	}
}

// receive decodes a frame from the network and feeds it to the engine.
func (p *Plumtree[ID, M]) receive(tm transport.Message) {
	f := &p.frame
	if err := wire.Decode(tm.Data, f, p.limits); err != nil {
		p.decodeError(tm, err)
		return
	}
	from, err := p.decodeID(f.Sender)
	if err != nil {
		p.decodeError(tm, fmt.Errorf("sender ID: %w", err))
		return
	}
	if from == p.o.ID {
		return
	}
	if p.o.Authenticate != nil {
		identity := tm.Identity
		if !p.authenticated {
			identity = "" // nothing verified it
		}
		if err := p.o.Authenticate(from, identity); err != nil {
			p.decodeError(tm, &AuthError{Sender: fmt.Sprint(from), Identity: identity, Err: err})
			return
		}
	}
	p.emit(Event{Kind: EventReceived, Type: Kind(f.Type), Path: tm.Path, Bytes: len(tm.Data)})
	m := Msg[ID]{Kind: Kind(f.Type), ID: f.ID, Round: f.Round}
	switch f.Type {
	case wire.TypeGossip:
		if m.Origin, err = p.decodeID(f.Origin); err != nil {
			p.decodeError(tm, fmt.Errorf("origin ID: %w", err))
			return
		}
		m.Timestamp, m.Trace = f.Timestamp, f.Trace
		m.Payload = Payload{Compressor: f.Compressor, Data: f.Payload}
		m.Recovered = f.Recovered
		if !m.Recovered {
			p.noteLateness(f.Origin, f.Timestamp)
		}
	case wire.TypeIHave:
		m.Announcements = f.Announcements
	case wire.TypeExchange:
		m.Ranges = f.Ranges
	case wire.TypeGraft:
		m.WantPayload = f.WantPayload
	case wire.TypePrune:
		if len(f.Origin) == 0 {
			m.Shared = true
		} else if m.Origin, err = p.decodeID(f.Origin); err != nil {
			p.decodeError(tm, fmt.Errorf("origin ID: %w", err))
			return
		}
	case wire.TypeNack:
		m.Retry = time.Duration(min(f.Retry, uint64(time.Hour/time.Millisecond))) * time.Millisecond
	}
	p.eng.Receive(p.clock.Now(), from, &m)
}

// idWire is id's wire form: a member's or this node's as already encoded,
// any other encoded now.
func (p *Plumtree[ID, M]) idWire(id ID) ([]byte, error) {
	if pr := p.peers[id]; pr != nil {
		return pr.idWire, nil
	}
	if id == p.o.ID {
		return p.selfWire, nil
	}
	return p.o.IDCodec.Append(nil, id)
}

// decodeID decodes a node ID from the wire. A member's is looked up, which
// does not allocate; the codec decodes any other.
func (p *Plumtree[ID, M]) decodeID(b []byte) (ID, error) {
	if id, ok := p.byWire[string(b)]; ok {
		return id, nil
	}
	if string(b) == string(p.selfWire) {
		return p.o.ID, nil
	}
	return p.o.IDCodec.Decode(b)
}

func (p *Plumtree[ID, M]) decodeError(tm transport.Message, err error) {
	p.decodeErrs.Add(1)
	p.emit(Event{Kind: EventDecodeError, Path: tm.Path, Bytes: len(tm.Data), Err: err})
	p.log.Debug("gossip: dropping unreadable frame", "from", tm.From, "path", tm.Path, "err", err)
}

// flushOutbox encodes and sends what the engine produced.
func (p *Plumtree[ID, M]) flushOutbox() {
	for _, s := range p.eng.Outbox() {
		pr := p.peers[s.To]
		if pr == nil {
			p.emit(Event{Kind: EventUnknownPeer, Type: s.Msg.Kind})
			continue
		}
		switch s.Msg.Kind {
		case KindIHave:
			if p.holdAnnouncements(pr, &s.Msg) {
				p.sendAnnouncements(pr, &s.Msg)
			}
		case KindExchange:
			p.trimExchange(&s.Msg)
			p.sendAnnouncements(pr, &s.Msg)
		default:
			p.sendOne(pr, &s.Msg)
		}
	}
}

// encode encodes m into a pooled buffer holding one reference, the
// caller's.
func (p *Plumtree[ID, M]) encode(m *Msg[ID]) (*frameBuf, error) {
	f := wire.Frame{Type: wire.Type(m.Kind), Sender: p.selfWire, ID: m.ID, Round: m.Round,
		Announcements: m.Announcements, Ranges: m.Ranges, WantPayload: m.WantPayload}
	if m.Kind == KindNack {
		// Rounded up: a wait of less than a millisecond is still a wait.
		f.Retry = uint64((m.Retry + time.Millisecond - 1) / time.Millisecond)
	}
	if m.Kind == KindGossip || (m.Kind == KindPrune && !m.Shared) {
		var err error
		if f.Origin, err = p.idWire(m.Origin); err != nil {
			return nil, err
		}
	}
	if m.Kind == KindGossip {
		f.Timestamp, f.Trace = m.Timestamp, m.Trace
		f.Compressor, f.Payload = m.Payload.Compressor, m.Payload.Data
		f.Recovered = m.Recovered
	}
	fb := getFrame(wire.Size(&f))
	var err error
	if fb.b, err = wire.Append(fb.b, &f); err != nil {
		fb.release()
		return nil, err
	}
	return fb, nil
}

func (p *Plumtree[ID, M]) sendOne(pr *peer, m *Msg[ID]) {
	var fb *frameBuf
	key := gossipKey{id: m.ID, round: m.Round, rec: m.Recovered, ok: m.Kind == KindGossip}
	if key.ok && key == p.lastKey {
		fb = p.lastFrame // the same push to the next eager peer: encode once
	} else {
		var err error
		if fb, err = p.encode(m); err != nil {
			p.sendError(m.Kind, err)
			return
		}
		if key.ok {
			// The loop keeps its reference while the frame is the last
			// push, and gives up the one to the push before.
			if p.lastFrame != nil {
				p.lastFrame.release()
			}
			p.lastKey, p.lastFrame = key, fb
		} else {
			defer fb.release()
		}
	}
	path := transport.PathStream
	if m.Kind == KindGossip && p.dg != nil && len(fb.b) <= min(p.cfg.GossipDatagramMaxSize, p.dg.MaxDatagramSize()) {
		path = transport.PathDatagram
	}
	p.transmit(pr, m, path, fb)
}

// sendAnnouncements sends IHave by datagram and exchanges by stream (either
// falls back to the other path), split into frames that fit.
func (p *Plumtree[ID, M]) sendAnnouncements(pr *peer, m *Msg[ID]) {
	path := transport.PathDatagram
	if m.Kind == KindExchange || p.dg == nil {
		path = transport.PathStream
	}
	if p.st == nil {
		path = transport.PathDatagram
	}
	limit := p.cfg.MaxMessageSize
	if path == transport.PathDatagram {
		limit = p.dg.MaxDatagramSize()
	} else {
		limit = min(limit, p.st.MaxFrameSize())
	}
	room := limit - wire.AnnouncementsHeaderSize(len(p.selfWire))
	// A range at most; announcements are sized exactly (wire.FitAnnouncements
	// counts the prefix once per run of one incarnation).
	per := room / (wire.PrefixSize + 2*binary.MaxVarintLen64)
	if per < 1 {
		p.sendError(m.Kind, fmt.Errorf("a %s frame does not fit in %d bytes", m.Kind, limit))
		return
	}
	anns, ranges := m.Announcements, m.Ranges
	// At least one frame: an empty IHave is a greeting (see Engine.fill).
	for first := true; first || len(anns) > 0 || len(ranges) > 0; first = false {
		part := *m
		n := wire.FitAnnouncements(anns, room)
		if n == 0 && len(anns) > 0 {
			p.sendError(m.Kind, fmt.Errorf("a %s frame does not fit in %d bytes", m.Kind, limit))
			return
		}
		part.Announcements = anns[:n]
		anns = anns[n:]
		n = min(per, len(ranges))
		part.Ranges = ranges[:n]
		ranges = ranges[n:]
		fb, err := p.encode(&part)
		if err != nil {
			p.sendError(m.Kind, err)
			return
		}
		p.transmit(pr, &part, path, fb)
		fb.release()
	}
}

// transmit sends fb to pr. The caller keeps its reference; a frame queued
// for the stream sender takes one of its own.
func (p *Plumtree[ID, M]) transmit(pr *peer, m *Msg[ID], path transport.Path, fb *frameBuf) {
	kind, b := m.Kind, fb.b
	if path == transport.PathDatagram && (p.dg == nil || p.o.Authenticate != nil && p.st != nil) {
		path = transport.PathStream
	}
	if path == transport.PathStream && p.st == nil {
		path = transport.PathDatagram
	}
	if path == transport.PathDatagram {
		if err := p.dg.SendDatagram(p.ctx, pr.addr, b); err != nil {
			p.sendError(kind, err)
			return
		}
	} else {
		p.queueOf(pr)
		if pr.queued.Load()+int64(len(b)) > int64(p.cfg.SendQueueBytes) {
			p.sendError(kind, fmt.Errorf("send queue to %s holds %d bytes, limit %d", pr.addr, pr.queued.Load(), p.cfg.SendQueueBytes))
			return
		}
		pr.queued.Add(int64(len(b)))
		p.flow.pending.Add(int64(len(b)))
		fb.retain()
		select {
		case pr.queue <- fb:
			p.wakeSender(pr)
			pr.queues++
			if kind == KindGossip {
				p.notePush(m.ID, pr, pr.queues)
			}
		default:
			fb.release()
			pr.queued.Add(-int64(len(b)))
			p.flow.pending.Add(-int64(len(b)))
			p.sendError(kind, fmt.Errorf("send queue to %s is full", pr.addr))
			return
		}
	}
	p.emit(Event{Kind: EventSent, Type: kind, Path: path, Bytes: len(b), Message: m.ID, GraftReply: m.GraftReply})
}

// wakeSender starts pr's stream sender unless one is running. The loop
// calls it after queueing a frame (or closing the queue).
func (p *Plumtree[ID, M]) wakeSender(pr *peer) {
	if pr.running.CompareAndSwap(false, true) {
		p.senders.Add(1)
		p.sendersLive.Add(1)
		p.sendersStarted.Add(1)
		go p.streamSender(pr.addr, pr.queue, pr.queued, pr.sent, pr.running)
	}
}

// streamSender writes one peer's stream frames in order, so that a slow
// peer's backpressure never blocks the protocol loop. It exits once the
// queue is empty (or closed and drained): with payloads up to
// GossipDatagramMaxSize going by datagram, a peer's stream carries a graft,
// a prune or an exchange now and then, and a goroutine per peer waiting
// for them was most of a node's goroutines.
func (p *Plumtree[ID, M]) streamSender(addr string, q <-chan *frameBuf, queued *atomic.Int64, sent *atomic.Uint64, running *atomic.Bool) {
	defer p.senders.Done()
	defer p.sendersLive.Add(-1)
	for {
		select {
		case fb, ok := <-q:
			if !ok {
				return
			}
			p.sendFrame(addr, fb, queued)
			sent.Add(1)
			p.flow.signalRoom()
		default:
			// Idle. A frame queued before the store below finds running
			// set and relies on this goroutine: look again. One queued
			// after it starts a sender of its own (wakeSender).
			running.Store(false)
			if len(q) == 0 || !running.CompareAndSwap(false, true) {
				return
			}
		}
	}
}

// sendFrame sends one queued frame and gives up the queue's reference to it.
// The frame counts as queued until the transport has taken it.
func (p *Plumtree[ID, M]) sendFrame(addr string, fb *frameBuf, queued *atomic.Int64) {
	defer fb.release()
	b := fb.b
	defer func() {
		queued.Add(-int64(len(b)))
		p.flow.pending.Add(-int64(len(b)))
	}()
	if p.ctx.Err() != nil {
		return // closing: drain without sending
	}
	if err := p.st.SendFrame(p.ctx, addr, b); err != nil && p.ctx.Err() == nil {
		p.sendErrs.Add(1)
		p.emit(Event{Kind: EventSendError, Path: transport.PathStream, Bytes: len(b), Err: err})
		p.log.Debug("gossip: stream send failed", "to", addr, "err", err)
	}
}

func (p *Plumtree[ID, M]) sendError(kind Kind, err error) {
	p.sendErrs.Add(1)
	p.emit(Event{Kind: EventSendError, Type: kind, Err: err})
	p.log.Debug("gossip: send failed", "type", kind, "err", err)
}

// dueNow is a closed channel: receiving from it never blocks. The loop
// selects on it instead of the engine timer when a deadline is already due.
var dueNow = func() <-chan time.Time {
	c := make(chan time.Time)
	close(c)
	return c
}()
