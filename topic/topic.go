package topic

import (
	"fmt"
	"sync"

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
	p, err := gossip.New(cfg, gossip.Options[ID, M]{
		ID: h.o.ID, Transport: e.vt.asTransport(), Membership: e.view, Codec: o.Codec, IDCodec: h.idc,
		Compressor: o.Compressor, Compressors: o.Compressors, OnDeliver: o.OnDeliver, Validate: o.Validate,
		Authenticate: o.Authenticate, Tracer: o.Tracer, Clock: h.clock, Observer: o.Observer,
		Logger: h.log.With("topic", name), Seed: h.seed ^ tag,
	})
	if err != nil {
		h.unregister(tag, e)
		return nil, fmt.Errorf("topic %q: %w", name, err)
	}
	t := &Topic[ID, M]{Plumtree: p, name: name, tag: tag, host: h, entry: e}
	e.close = t.Close
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

// Close unsubscribes: it stops the topic's Plumtree and waits for it, and
// announces the change. Frames of the topic that still arrive are refused
// and counted (HostStats.RefusedUnknownTopic). It is idempotent.
func (t *Topic[ID, M]) Close() error {
	t.once.Do(func() {
		t.Plumtree.Close()
		t.host.unregister(t.tag, t.entry)
	})
	return nil
}
