package gossip

// API and lifecycle: the options, New, the public methods and Close.

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
	// UDP carry no identity, unless the transport's datagrams carry a
	// verified one too (transport.DatagramAuthenticator: QUIC's do): set it
	// on every node of the cluster.
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
	// dgAuthenticated: the transport vouches for Message.Identity on
	// datagrams too (transport.DatagramAuthenticator, QUIC's), so that
	// Authenticate leaves the datagram path open.
	dgAuthenticated bool
	// sendDg is the datagram path frames may be sent on: dg, unless
	// Authenticate is set, the transport does not vouch for its datagrams'
	// identity and there is a stream path (then nil: every frame goes by
	// stream). Decided once, so that each frame is sized for the path it
	// takes.
	sendDg transport.Datagram

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
	p.dgAuthenticated = transport.AuthenticatesDatagrams(o.Transport)
	if p.dg != nil && (o.Authenticate == nil || p.st == nil || p.dgAuthenticated) {
		p.sendDg = p.dg
	}
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
