package topic

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/plumtree-go/plumtree/codec"
	"github.com/plumtree-go/plumtree/compressor"
	"github.com/plumtree-go/plumtree/gossip"
	"github.com/plumtree-go/plumtree/transport"
)

// Options are a topic's own settings; the host supplies the node ID,
// transport, membership, ID codec, clock and logger. Codec is required.
// The fields mean what they mean in gossip.Options.
type Options[ID comparable, M any] struct {
	// Codec encodes the topic's messages.
	Codec codec.Codec[M]
	// OnDeliver, if set, is called for each delivered message; otherwise
	// read Deliveries.
	OnDeliver func(gossip.Delivery[ID, M])
	// Backfill asks for what the topic's other subscribers still cache
	// from before this node subscribed: their periodic exchange
	// (gossip.Config.ExchangeInterval, ExchangeWindow) offers it, and the
	// node recovers it by grafts. Without Backfill those messages are
	// recovered all the same (the node then relays them) but not delivered:
	// a delivery whose origin timestamp is before the subscription is
	// dropped and counted (Topic.Skipped). The line is drawn with the
	// origin's clock against this node's, so clock skew blurs it.
	Backfill bool
	// Validate, if set, is called before a message is delivered or
	// forwarded.
	Validate func(from ID, m M) error
	// Authenticate, if set, checks the sender of every frame of the topic.
	Authenticate func(sender ID, identity string) error
	// Compressor and Compressors: as in gossip.Options.
	Compressor  compressor.Compressor
	Compressors *compressor.Registry
	// Observer receives the topic's events. For metrics with the topic as
	// an attribute, give each topic its own observe.Observer made with
	// observe.WithTopic(name).
	Observer gossip.Observer
	// Tracer carries a trace of each broadcast.
	Tracer gossip.Tracer
}

// Topic is a subscription: a gossip.Plumtree of its own among the members
// that subscribe to the same name. Broadcast, TryBroadcast, Deliveries,
// Stats and Peers are the Plumtree's; Close unsubscribes.
type Topic[ID comparable, M any] struct {
	*gossip.Plumtree[ID, M]
	name  string
	tag   uint64
	host  *Host[ID]
	entry *entry[ID]
	once  sync.Once

	deliveries chan gossip.Delivery[ID, M] // nil with Options.OnDeliver
	done       chan struct{}               // closed by Close, before the Plumtree stops
	skipped    atomic.Uint64
}

// Subscribe joins the topic name on h: it starts a Plumtree for the topic,
// with its own message type, codec and cfg, and announces the subscription
// to the cluster. The topic's tree spans the members that subscribe to the
// same name; the others carry nothing of it. It fails if h already
// subscribes to name, or to another name with the same tag.
func Subscribe[ID comparable, M any](h *Host[ID], name string, cfg gossip.Config, o Options[ID, M]) (*Topic[ID, M], error) {
	if o.Codec == nil {
		return nil, fmt.Errorf("topic %q: Options.Codec is nil", name)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("topic %q: %w", name, err)
	}
	e, err := h.register(name)
	if err != nil {
		return nil, err
	}
	tag := Tag(name)
	t := &Topic[ID, M]{name: name, tag: tag, host: h, entry: e, done: make(chan struct{})}
	since := h.clock.Now()
	onDeliver := o.OnDeliver
	if onDeliver == nil {
		// Unbuffered: the Plumtree's own buffer (Config.DeliveryBuffer)
		// holds what the application has not read yet.
		t.deliveries = make(chan gossip.Delivery[ID, M])
		onDeliver = func(d gossip.Delivery[ID, M]) {
			select {
			case t.deliveries <- d:
			case <-t.done:
			}
		}
	}
	deliver := onDeliver
	if !o.Backfill {
		deliver = func(d gossip.Delivery[ID, M]) {
			if d.Timestamp.Before(since) {
				t.skipped.Add(1)
				return
			}
			onDeliver(d)
		}
	}
	p, err := gossip.New(cfg, gossip.Options[ID, M]{
		ID: h.o.ID, Transport: e.vt.asTransport(), Membership: e.view, Codec: o.Codec, IDCodec: h.idc,
		Compressor: o.Compressor, Compressors: o.Compressors, OnDeliver: deliver, Validate: o.Validate,
		Authenticate: o.Authenticate, Tracer: o.Tracer, Clock: h.clock, Observer: o.Observer,
		Logger: h.log.With("topic", name), Seed: h.seed ^ tag,
	})
	if err != nil {
		h.unregister(tag, e)
		return nil, fmt.Errorf("topic %q: %w", name, err)
	}
	t.Plumtree = p
	h.mu.Lock()
	closed := h.closed
	e.close = t.Close
	h.mu.Unlock()
	if closed { // Host.Close ran meanwhile and could not close this one
		t.Close()
		return nil, ErrHostClosed
	}
	return t, nil
}

// Name is the topic's name.
func (t *Topic[ID, M]) Name() string { return t.name }

// Tag is the topic's tag on the wire.
func (t *Topic[ID, M]) Tag() uint64 { return t.tag }

// Transport is the topic's view of the host's transport, for its counters
// (transport.StatsReporter: the topic's frames only, the host prefix
// included in the bytes), as observe.WatchTransport takes it.
func (t *Topic[ID, M]) Transport() transport.StatsReporter { return t.entry.vt }

// Deliveries returns the channel of delivered messages (nil when
// Options.OnDeliver is set). It is closed by Close.
func (t *Topic[ID, M]) Deliveries() <-chan gossip.Delivery[ID, M] { return t.deliveries }

// Skipped counts the deliveries dropped because the message was broadcast
// before this node subscribed (see Options.Backfill).
func (t *Topic[ID, M]) Skipped() uint64 { return t.skipped.Load() }

// Close unsubscribes: it stops the topic's Plumtree and waits for it, and
// announces the change. Frames of the topic that still arrive are refused
// and counted (HostStats.RefusedUnknownTopic). It is idempotent.
func (t *Topic[ID, M]) Close() error {
	t.once.Do(func() {
		close(t.done)
		t.Plumtree.Close()
		if t.deliveries != nil {
			close(t.deliveries)
		}
		t.host.unregister(t.tag, t.entry)
	})
	return nil
}
