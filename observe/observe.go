// Package observe reports what a gossip node does to OpenTelemetry: metrics
// through a metric.MeterProvider and broadcast traces through a
// trace.TracerProvider. It uses the OpenTelemetry APIs only; the SDK, the
// exporters and their configuration stay with the application.
//
// Metrics: make one Observer per node (or share one among the nodes of a
// process; the counts add up) and pass it as gossip.Options.Observer; for
// the gauges (peers, cache and seen-set sizes, queued announcements, pending
// grafts) register the node with WatchNode, and its transport with
// WatchTransport.
//
//	obs, err := observe.New(observe.WithMeterProvider(mp))
//	node, err := gossip.New(cfg, gossip.Options[string, []byte]{..., Observer: obs})
//	stop, err := obs.WatchNode(node.Stats)
//
// Names follow the OpenTelemetry conventions (dotted, with units) and become
// the names of the tuning guide once exported to Prometheus:
// plumtree.cache.size is plumtree_cache_size,
// plumtree.messages.duplicate is plumtree_messages_duplicate_total,
// plumtree.graft.latency (seconds) is plumtree_graft_latency_seconds. The
// package's README section lists them all. Attributes are few and bounded:
// the message type, the path, the peer set; never message or peer IDs.
//
// Traces: see Tracer.
package observe

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/plumtree-go/plumtree/gossip"
	"github.com/plumtree-go/plumtree/transport"
)

// ScopeName is the instrumentation scope of the meter and tracer.
const ScopeName = "github.com/plumtree-go/plumtree"

// Option configures an Observer.
type Option func(*config)

type config struct {
	mp    metric.MeterProvider
	tp    trace.TracerProvider
	attrs []attribute.KeyValue
}

// WithMeterProvider sets the meter provider; the default is the global one
// (otel.GetMeterProvider).
func WithMeterProvider(mp metric.MeterProvider) Option { return func(c *config) { c.mp = mp } }

// WithTracerProvider sets the tracer provider for NewTracer; the default is
// the global one (otel.GetTracerProvider).
func WithTracerProvider(tp trace.TracerProvider) Option { return func(c *config) { c.tp = tp } }

// WithAttributes adds attributes to every measurement, such as a cluster
// name. Keep them few and of bounded cardinality.
func WithAttributes(attrs ...attribute.KeyValue) Option {
	return func(c *config) { c.attrs = append(c.attrs, attrs...) }
}

// TopicAttribute is the attribute WithTopic adds.
const TopicAttribute = "plumtree.topic"

// WithTopic adds the attribute plumtree.topic=name to every measurement:
// make one Observer per topic (package topic) and pass it as the topic's
// Options.Observer. Topic names are the application's own, so the
// attribute stays bounded; never make one from data off the network.
func WithTopic(name string) Option {
	return WithAttributes(attribute.String(TopicAttribute, name))
}

func newConfig(opts []Option) config {
	var c config
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	if c.mp == nil {
		c.mp = otel.GetMeterProvider()
	}
	if c.tp == nil {
		c.tp = otel.GetTracerProvider()
	}
	return c
}

// Observer turns a node's events into OpenTelemetry metrics. It implements
// gossip.Observer and is safe for concurrent use.
type Observer struct {
	meter metric.Meter
	base  attribute.Set
	opt   attrs // the base attributes

	sent, received           metric.Int64Counter // attrs: type, path
	sentBytes, receivedBytes metric.Int64Counter // attrs: type, path
	delivered, duplicate     metric.Int64Counter
	rejected, dropped        metric.Int64Counter
	hops                     metric.Int64Histogram
	latency                  metric.Float64Histogram
	graftSent, graftAnswered metric.Int64Counter
	graftMiss, graftFailed   metric.Int64Counter
	recovered                metric.Int64Counter
	graftLatency             metric.Float64Histogram
	rateLimited              metric.Int64Counter // attr: request
	pruneSent, pruneRecv     metric.Int64Counter
	promoted, demoted        metric.Int64Counter
	optimized                metric.Int64Counter
	ihaveBatch               metric.Int64Histogram
	exchangeSent             metric.Int64Counter
	cacheEvicted, seenEvict  metric.Int64Counter
	decodeErr, sendErr       metric.Int64Counter
	unknownPeer              metric.Int64Counter
	stuckDeadline            metric.Int64Counter
	shuffles                 metric.Int64Counter
	nacks                    metric.Int64Counter
	originsEvicted           metric.Int64Counter
	orderSkipped, orderStale metric.Int64Counter
	nackSent, nackRecv       attrs

	// Attribute options for the combinations of type and path, built once
	// so that Observe does not allocate.
	typePath                   map[typePathKey]attrs
	graftLimited, ihaveLimited attrs // the request attribute of rateLimited

	mu           sync.Mutex
	nodes        []*func() (gossip.Stats, error)
	transports   []*func() transport.Stats
	nodeReg      metric.Registration
	transportReg metric.Registration
}

type typePathKey struct {
	kind gossip.Kind
	path transport.Path
}

// New makes an Observer with instruments from the meter provider.
func New(opts ...Option) (*Observer, error) {
	c := newConfig(opts)
	m := c.mp.Meter(ScopeName)
	o := &Observer{meter: m, base: attribute.NewSet(c.attrs...), typePath: make(map[typePathKey]attrs)}
	o.opt = o.withAttrs()
	var errs []error
	counter := func(name, unit, desc string) metric.Int64Counter {
		ctr, err := m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return ctr
	}
	o.sent = counter("plumtree.messages.sent", "{message}", "Protocol messages sent, by type and path.")
	o.received = counter("plumtree.messages.received", "{message}", "Protocol messages received, by type and path.")
	o.sentBytes = counter("plumtree.sent", "By", "Bytes of protocol messages sent, by type and path.")
	o.receivedBytes = counter("plumtree.received", "By", "Bytes of protocol messages received, by type and path.")
	o.delivered = counter("plumtree.messages.delivered", "{message}", "Messages delivered to the application.")
	o.duplicate = counter("plumtree.messages.duplicate", "{message}", "Payloads received again after the first copy.")
	o.rejected = counter("plumtree.messages.rejected", "{message}", "Messages refused by validation or the size limit.")
	o.dropped = counter("plumtree.deliveries.dropped", "{message}", "Deliveries lost to a full delivery buffer.")
	o.graftSent = counter("plumtree.grafts.sent", "{graft}", "Grafts sent for missing messages.")
	o.graftAnswered = counter("plumtree.grafts.answered", "{graft}", "Grafts from peers answered with a payload.")
	o.graftMiss = counter("plumtree.grafts.missed", "{graft}", "Grafts from peers for messages no longer cached.")
	o.graftFailed = counter("plumtree.grafts.failed", "{message}", "Missing messages given up after every graft retry.")
	o.recovered = counter("plumtree.messages.recovered", "{message}", "Missing messages that arrived after a graft.")
	o.rateLimited = counter("plumtree.requests.rate_limited", "{request}", "Requests from peers refused by a rate or size limit, by request.")
	o.pruneSent = counter("plumtree.prunes.sent", "{prune}", "Prunes sent.")
	o.pruneRecv = counter("plumtree.prunes.received", "{prune}", "Prunes received.")
	o.promoted = counter("plumtree.peers.promoted", "{peer}", "Peers moved to the eager set.")
	o.demoted = counter("plumtree.peers.demoted", "{peer}", "Peers moved to the lazy set.")
	o.optimized = counter("plumtree.tree.optimizations", "{swap}", "Tree optimizations (a shorter path grafted).")
	o.exchangeSent = counter("plumtree.exchange.ids", "{id}", "Message IDs sent in periodic exchanges.")
	o.cacheEvicted = counter("plumtree.cache.evictions", "{message}", "Entries removed from the message cache.")
	o.seenEvict = counter("plumtree.seen.evictions", "{message}", "Entries removed from the seen set.")
	o.decodeErr = counter("plumtree.errors.decode", "{frame}", "Frames from the network that could not be read.")
	o.sendErr = counter("plumtree.errors.send", "{frame}", "Frames the transport refused or a full send queue dropped.")
	o.unknownPeer = counter("plumtree.errors.unknown_peer", "{frame}", "Frames to a peer with no known address.")
	o.stuckDeadline = counter("plumtree.errors.stuck_deadline", "{tick}", "Ticks after which the engine still asked to be woken at once (an engine bug; the runner backs off).")
	o.shuffles = counter("plumtree.overlay.shuffles", "{peer}", "Neighbours taken in by overlay maintenance (shuffle, or a returning member).")
	o.nacks = counter("plumtree.grafts.nacks", "{graft}", "Grafts that could not be answered (not cached, or refused for now), by direction.")
	o.originsEvicted = counter("plumtree.origins.evicted", "{origin}", "Origin trees forgotten: idle for MessageCacheTTL, or past MaxOrigins.")
	o.orderSkipped = counter("plumtree.order.skipped", "{message}", "Messages given up by per-origin order (Config.Ordered): not recovered within OrderGapTimeout.")
	o.orderStale = counter("plumtree.order.stale", "{message}", "Messages dropped by per-origin order (Config.Ordered): they came after a later message of their origin was delivered.")
	o.nackSent = o.withAttrs(attribute.String("direction", "sent"))
	o.nackRecv = o.withAttrs(attribute.String("direction", "received"))
	var err error
	o.hops, err = m.Int64Histogram("plumtree.delivery.hops", metric.WithUnit("{hop}"),
		metric.WithDescription("Hops from the origin of each delivered message."),
		metric.WithExplicitBucketBoundaries(1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 32))
	errs = append(errs, err)
	o.latency, err = m.Float64Histogram("plumtree.delivery.latency", metric.WithUnit("s"),
		metric.WithDescription("Time from broadcast at the origin to delivery here (clocks of two nodes)."),
		metric.WithExplicitBucketBoundaries(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
	errs = append(errs, err)
	o.graftLatency, err = m.Float64Histogram("plumtree.graft.latency", metric.WithUnit("s"),
		metric.WithDescription("Time from the first graft for a missing message to its arrival."),
		metric.WithExplicitBucketBoundaries(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30))
	errs = append(errs, err)
	o.ihaveBatch, err = m.Int64Histogram("plumtree.ihave.batch.size", metric.WithUnit("{announcement}"),
		metric.WithDescription("Announcements per IHave message sent."),
		metric.WithExplicitBucketBoundaries(1, 2, 4, 8, 16, 32, 64, 128, 256))
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("observe: creating instruments: %w", err)
	}
	for _, k := range []gossip.Kind{gossip.KindGossip, gossip.KindIHave, gossip.KindGraft, gossip.KindPrune, gossip.KindExchange} {
		for _, p := range []transport.Path{transport.PathDatagram, transport.PathStream} {
			o.typePath[typePathKey{k, p}] = o.withAttrs(attribute.String("type", kindName(k)), attribute.String("path", p.String()))
		}
	}
	o.graftLimited = o.withAttrs(attribute.String("request", "graft"))
	o.ihaveLimited = o.withAttrs(attribute.String("request", "ihave"))
	return o, nil
}

// attrs is an attribute set as ready-made option slices: passing a slice
// to Add, Record or Observe allocates nothing.
type attrs struct {
	add []metric.AddOption
	rec []metric.RecordOption
	obs []metric.ObserveOption
}

func (o *Observer) withAttrs(kv ...attribute.KeyValue) attrs {
	opt := metric.WithAttributeSet(attribute.NewSet(append(o.base.ToSlice(), kv...)...))
	return attrs{add: []metric.AddOption{opt}, rec: []metric.RecordOption{opt}, obs: []metric.ObserveOption{opt}}
}

func kindName(k gossip.Kind) string {
	switch k {
	case gossip.KindGossip:
		return "gossip"
	case gossip.KindIHave:
		return "ihave"
	case gossip.KindGraft:
		return "graft"
	case gossip.KindPrune:
		return "prune"
	case gossip.KindExchange:
		return "exchange"
	}
	return "unknown"
}

func (o *Observer) typePathOpt(k gossip.Kind, p transport.Path) attrs {
	if opt, ok := o.typePath[typePathKey{k, p}]; ok {
		return opt
	}
	// An unknown type or path (a newer core): keep it bounded.
	return o.withAttrs(attribute.String("type", "unknown"), attribute.String("path", "unknown"))
}

// Observe records one event. It implements gossip.Observer.
func (o *Observer) Observe(e gossip.Event) {
	ctx := context.Background()
	switch e.Kind {
	case gossip.EventSent:
		opt := o.typePathOpt(e.Type, e.Path)
		o.sent.Add(ctx, 1, opt.add...)
		o.sentBytes.Add(ctx, int64(e.Bytes), opt.add...)
	case gossip.EventReceived:
		opt := o.typePathOpt(e.Type, e.Path)
		o.received.Add(ctx, 1, opt.add...)
		o.receivedBytes.Add(ctx, int64(e.Bytes), opt.add...)
	case gossip.EventDelivered:
		o.delivered.Add(ctx, 1, o.opt.add...)
		o.hops.Record(ctx, int64(e.Hops), o.opt.rec...)
		if e.Latency >= 0 {
			o.latency.Record(ctx, e.Latency.Seconds(), o.opt.rec...)
		}
	case gossip.EventDuplicate:
		o.duplicate.Add(ctx, 1, o.opt.add...)
	case gossip.EventRejected:
		o.rejected.Add(ctx, 1, o.opt.add...)
	case gossip.EventDeliveryDropped:
		o.dropped.Add(ctx, 1, o.opt.add...)
	case gossip.EventGraftSent:
		o.graftSent.Add(ctx, 1, o.opt.add...)
	case gossip.EventGraftAnswered:
		o.graftAnswered.Add(ctx, 1, o.opt.add...)
	case gossip.EventGraftMiss:
		o.graftMiss.Add(ctx, 1, o.opt.add...)
	case gossip.EventGraftRateLimited:
		o.rateLimited.Add(ctx, 1, o.graftLimited.add...)
	case gossip.EventGraftFailed:
		o.graftFailed.Add(ctx, 1, o.opt.add...)
	case gossip.EventRecovered:
		o.recovered.Add(ctx, 1, o.opt.add...)
		o.graftLatency.Record(ctx, e.Latency.Seconds(), o.opt.rec...)
	case gossip.EventPruneSent:
		o.pruneSent.Add(ctx, 1, o.opt.add...)
	case gossip.EventPruneReceived:
		o.pruneRecv.Add(ctx, 1, o.opt.add...)
	case gossip.EventPromoted:
		o.promoted.Add(ctx, 1, o.opt.add...)
	case gossip.EventDemoted:
		o.demoted.Add(ctx, 1, o.opt.add...)
	case gossip.EventOptimized:
		o.optimized.Add(ctx, 1, o.opt.add...)
	case gossip.EventIHaveSent:
		o.ihaveBatch.Record(ctx, int64(e.Count), o.opt.rec...)
	case gossip.EventIHaveDropped:
		o.rateLimited.Add(ctx, int64(e.Count), o.ihaveLimited.add...)
	case gossip.EventExchangeSent:
		o.exchangeSent.Add(ctx, int64(e.Count), o.opt.add...)
	case gossip.EventCacheEvicted:
		o.cacheEvicted.Add(ctx, int64(e.Count), o.opt.add...)
	case gossip.EventSeenEvicted:
		o.seenEvict.Add(ctx, int64(e.Count), o.opt.add...)
	case gossip.EventDecodeError:
		o.decodeErr.Add(ctx, 1, o.opt.add...)
	case gossip.EventSendError:
		o.sendErr.Add(ctx, 1, o.opt.add...)
	case gossip.EventUnknownPeer:
		o.unknownPeer.Add(ctx, 1, o.opt.add...)
	case gossip.EventStuckDeadline:
		o.stuckDeadline.Add(ctx, 1, o.opt.add...)
	case gossip.EventShuffled:
		o.shuffles.Add(ctx, 1, o.opt.add...)
	case gossip.EventNackSent:
		o.nacks.Add(ctx, 1, o.nackSent.add...)
	case gossip.EventNackReceived:
		o.nacks.Add(ctx, 1, o.nackRecv.add...)
	case gossip.EventOriginEvicted:
		o.originsEvicted.Add(ctx, int64(e.Count), o.opt.add...)
	case gossip.EventOrderSkipped:
		o.orderSkipped.Add(ctx, int64(e.Count), o.opt.add...)
	case gossip.EventOrderStale:
		o.orderStale.Add(ctx, 1, o.opt.add...)
	}
}

// WatchNode reports a node's sizes as gauges, read from stats (a node's
// Stats method) each time metrics are collected: plumtree.peers (by set:
// eager, lazy, members), plumtree.cache.size, plumtree.seen.size,
// plumtree.ihave.queue.size and plumtree.grafts.pending. With several nodes
// watched by one Observer the gauges are their sums. The returned function
// stops watching this node; a closed node reports nothing.
func (o *Observer) WatchNode(stats func() (gossip.Stats, error)) (stop func(), err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.nodeReg == nil {
		if err := o.registerNodeGauges(); err != nil {
			return nil, err
		}
	}
	w := &stats
	o.nodes = append(o.nodes, w)
	return func() { unwatch(o, &o.nodes, w) }, nil
}

// WatchTransport reports a transport's own counters (transport.Stats), read
// each time metrics are collected: plumtree.transport.datagrams and
// plumtree.transport.frames (by direction: sent, received, dropped),
// plumtree.transport.io in bytes (by direction) and the gauge
// plumtree.transport.connections; sums over the transports watched.
func (o *Observer) WatchTransport(sr transport.StatsReporter) (stop func(), err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.transportReg == nil {
		if err := o.registerTransportInstruments(); err != nil {
			return nil, err
		}
	}
	f := sr.Stats
	w := &f
	o.transports = append(o.transports, w)
	return func() { unwatch(o, &o.transports, w) }, nil
}

// unwatch removes w from *list under o.mu.
func unwatch[T any](o *Observer, list *[]*T, w *T) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, x := range *list {
		if x == w {
			*list = append((*list)[:i], (*list)[i+1:]...)
			return
		}
	}
}

func (o *Observer) registerNodeGauges() error {
	m := o.meter
	peers, err1 := m.Int64ObservableGauge("plumtree.peers", metric.WithUnit("{peer}"), metric.WithDescription("Peers in each set: eager, lazy, and all members."))
	cache, err2 := m.Int64ObservableGauge("plumtree.cache.size", metric.WithUnit("{message}"), metric.WithDescription("Messages in the cache, ready to answer grafts."))
	seen, err3 := m.Int64ObservableGauge("plumtree.seen.size", metric.WithUnit("{message}"), metric.WithDescription("Message IDs in the seen set."))
	queue, err4 := m.Int64ObservableGauge("plumtree.ihave.queue.size", metric.WithUnit("{announcement}"), metric.WithDescription("Announcements waiting to be sent."))
	pending, err5 := m.Int64ObservableGauge("plumtree.grafts.pending", metric.WithUnit("{message}"), metric.WithDescription("Announced messages not yet received (graft timers running)."))
	if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
		return fmt.Errorf("observe: creating gauges: %w", err)
	}
	eager, lazy, members := o.withAttrs(attribute.String("set", "eager")), o.withAttrs(attribute.String("set", "lazy")), o.withAttrs(attribute.String("set", "members"))
	reg, err := m.RegisterCallback(func(_ context.Context, ob metric.Observer) error {
		o.mu.Lock()
		nodes := append([]*func() (gossip.Stats, error)(nil), o.nodes...)
		o.mu.Unlock()
		var sum gossip.Stats
		for _, f := range nodes {
			s, err := (*f)()
			if err != nil {
				continue // closed
			}
			sum.Eager += s.Eager
			sum.Lazy += s.Lazy
			sum.Members += s.Members
			sum.CacheSize += s.CacheSize
			sum.SeenSize += s.SeenSize
			sum.LazyQueued += s.LazyQueued
			sum.Missing += s.Missing
		}
		ob.ObserveInt64(peers, int64(sum.Eager), eager.obs...)
		ob.ObserveInt64(peers, int64(sum.Lazy), lazy.obs...)
		ob.ObserveInt64(peers, int64(sum.Members), members.obs...)
		ob.ObserveInt64(cache, int64(sum.CacheSize), o.opt.obs...)
		ob.ObserveInt64(seen, int64(sum.SeenSize), o.opt.obs...)
		ob.ObserveInt64(queue, int64(sum.LazyQueued), o.opt.obs...)
		ob.ObserveInt64(pending, int64(sum.Missing), o.opt.obs...)
		return nil
	}, peers, cache, seen, queue, pending)
	if err != nil {
		return fmt.Errorf("observe: registering the node callback: %w", err)
	}
	o.nodeReg = reg
	return nil
}

func (o *Observer) registerTransportInstruments() error {
	m := o.meter
	dg, err1 := m.Int64ObservableCounter("plumtree.transport.datagrams", metric.WithUnit("{datagram}"), metric.WithDescription("Datagrams, by direction."))
	fr, err2 := m.Int64ObservableCounter("plumtree.transport.frames", metric.WithUnit("{frame}"), metric.WithDescription("Stream frames, by direction."))
	by, err3 := m.Int64ObservableCounter("plumtree.transport.io", metric.WithUnit("By"), metric.WithDescription("Payload bytes, by direction."))
	conns, err4 := m.Int64ObservableGauge("plumtree.transport.connections", metric.WithUnit("{connection}"), metric.WithDescription("Open connections to peers."))
	refused, err5 := m.Int64ObservableCounter("plumtree.transport.connections.refused", metric.WithUnit("{connection}"), metric.WithDescription("Inbound connections refused before they carried anything: failed handshakes (a certificate that does not verify, a hello without a valid proof) and connections over the inbound cap."))
	if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
		return fmt.Errorf("observe: creating transport instruments: %w", err)
	}
	sent, recv, drop := o.withAttrs(attribute.String("direction", "sent")), o.withAttrs(attribute.String("direction", "received")), o.withAttrs(attribute.String("direction", "dropped"))
	reg, err := m.RegisterCallback(func(_ context.Context, ob metric.Observer) error {
		o.mu.Lock()
		trs := append([]*func() transport.Stats(nil), o.transports...)
		o.mu.Unlock()
		var s transport.Stats
		for _, f := range trs {
			s = s.Add((*f)())
		}
		ob.ObserveInt64(dg, int64(s.DatagramsSent), sent.obs...)
		ob.ObserveInt64(dg, int64(s.DatagramsReceived), recv.obs...)
		ob.ObserveInt64(dg, int64(s.DatagramsDropped), drop.obs...)
		ob.ObserveInt64(fr, int64(s.FramesSent), sent.obs...)
		ob.ObserveInt64(fr, int64(s.FramesReceived), recv.obs...)
		ob.ObserveInt64(fr, int64(s.FramesDropped), drop.obs...)
		ob.ObserveInt64(by, int64(s.BytesSent), sent.obs...)
		ob.ObserveInt64(by, int64(s.BytesReceived), recv.obs...)
		ob.ObserveInt64(conns, int64(s.Connections), o.opt.obs...)
		ob.ObserveInt64(refused, int64(s.ConnectionsRefused), o.opt.obs...)
		return nil
	}, dg, fr, by, conns, refused)
	if err != nil {
		return fmt.Errorf("observe: registering the transport callback: %w", err)
	}
	o.transportReg = reg
	return nil
}

var _ gossip.Observer = (*Observer)(nil)
