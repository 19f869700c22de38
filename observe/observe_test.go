package observe

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"

	"github.com/plumtree-go/plumtree/gossip"
	"github.com/plumtree-go/plumtree/transport"
)

// The SDK-backed tests (counts, names, the trace tree) live in the examples
// module, so that the library does not require the SDK:
// examples/metrics and examples/tracing.

func TestSpanContextRoundTrip(t *testing.T) {
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		SpanID:     trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8},
		TraceFlags: trace.FlagsSampled,
	})
	b := encodeSpanContext(sc)
	if len(b) != traceLen || len(b) > gossip.MaxTraceSize {
		t.Fatalf("encoded length %d", len(b))
	}
	got, ok := decodeSpanContext(b)
	if !ok || got.TraceID() != sc.TraceID() || got.SpanID() != sc.SpanID() || !got.IsSampled() || !got.IsRemote() {
		t.Fatalf("round trip gave %v, %v", got, ok)
	}
}

func TestSpanContextNotSampledIsNotSent(t *testing.T) {
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}})
	if b := encodeSpanContext(sc); b != nil {
		t.Errorf("an unsampled span context encodes to %x; want nothing", b)
	}
	if b := encodeSpanContext(trace.SpanContext{}); b != nil {
		t.Errorf("an invalid span context encodes to %x", b)
	}
}

// Trace bytes come from the network: anything malformed is ignored.
func TestSpanContextMalformed(t *testing.T) {
	good := encodeSpanContext(trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled}))
	cases := map[string][]byte{
		"empty":       nil,
		"short":       good[:traceLen-1],
		"long":        append(bytes.Clone(good), 0),
		"version 1":   append([]byte{1}, good[1:]...),
		"zero trace":  append(append([]byte{0}, make([]byte, 16)...), good[17:]...),
		"not sampled": append(bytes.Clone(good[:traceLen-1]), 0),
	}
	for name, b := range cases {
		if _, ok := decodeSpanContext(b); ok {
			t.Errorf("%s: accepted %x", name, b)
		}
	}
	tr := NewTracer()
	if out := tr.Deliver(gossip.TraceDelivery{Trace: []byte{0xff}}); out != nil {
		t.Errorf("Deliver of a malformed context forwards %x", out)
	}
}

func FuzzDecodeSpanContext(f *testing.F) {
	f.Add(encodeSpanContext(trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled})))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		sc, ok := decodeSpanContext(b)
		if ok && !bytes.Equal(encodeSpanContext(sc), b) {
			t.Errorf("accepted %x but encodes back to %x", b, encodeSpanContext(sc))
		}
	})
}

// recorder is a meter provider that records what each instrument is
// given: "name value attr=v ..." per call.
type recorder struct {
	noop.MeterProvider
	mu  sync.Mutex
	got []string
}

func (r *recorder) Meter(string, ...metric.MeterOption) metric.Meter { return recMeter{r: r} }

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	g := r.got
	r.got = nil
	return g
}

func (r *recorder) rec(name string, v float64, set attribute.Set) {
	line := fmt.Sprintf("%s %v", name, v)
	for _, kv := range set.ToSlice() {
		line += fmt.Sprintf(" %s=%s", kv.Key, kv.Value.Emit())
	}
	r.mu.Lock()
	r.got = append(r.got, line)
	r.mu.Unlock()
}

type recMeter struct {
	noop.Meter
	r *recorder
}

func (m recMeter) Int64Counter(name string, _ ...metric.Int64CounterOption) (metric.Int64Counter, error) {
	return recCounter{name: name, r: m.r}, nil
}

func (m recMeter) Int64Histogram(name string, _ ...metric.Int64HistogramOption) (metric.Int64Histogram, error) {
	return recIntHist{name: name, r: m.r}, nil
}

func (m recMeter) Float64Histogram(name string, _ ...metric.Float64HistogramOption) (metric.Float64Histogram, error) {
	return recFloatHist{name: name, r: m.r}, nil
}

type recCounter struct {
	noop.Int64Counter
	name string
	r    *recorder
}

func (c recCounter) Add(_ context.Context, v int64, opts ...metric.AddOption) {
	c.r.rec(c.name, float64(v), metric.NewAddConfig(opts).Attributes())
}

type recIntHist struct {
	noop.Int64Histogram
	name string
	r    *recorder
}

func (h recIntHist) Record(_ context.Context, v int64, opts ...metric.RecordOption) {
	h.r.rec(h.name, float64(v), metric.NewRecordConfig(opts).Attributes())
}

type recFloatHist struct {
	noop.Float64Histogram
	name string
	r    *recorder
}

func (h recFloatHist) Record(_ context.Context, v float64, opts ...metric.RecordOption) {
	h.r.rec(h.name, v, metric.NewRecordConfig(opts).Attributes())
}

// Every event kind the core names is recorded on its instrument, with its
// value (1, or the event's Count, Hops, Latency), and nothing else; a kind
// the core does not name (a newer core) records nothing; an unknown frame
// type or path is recorded under type=unknown, path=unknown, a bounded set.
func TestObserveEveryKind(t *testing.T) {
	r := &recorder{}
	o, err := New(WithMeterProvider(r))
	if err != nil {
		t.Fatal(err)
	}
	want := map[gossip.EventKind][]string{
		gossip.EventSent:             {"plumtree.messages.sent 1 path=datagram type=ihave", "plumtree.sent 10 path=datagram type=ihave"},
		gossip.EventReceived:         {"plumtree.messages.received 1 path=datagram type=ihave", "plumtree.received 10 path=datagram type=ihave"},
		gossip.EventDelivered:        {"plumtree.messages.delivered 1", "plumtree.delivery.hops 4", "plumtree.delivery.latency 0.25"},
		gossip.EventDuplicate:        {"plumtree.messages.duplicate 1"},
		gossip.EventRejected:         {"plumtree.messages.rejected 1"},
		gossip.EventDeliveryDropped:  {"plumtree.deliveries.dropped 1"},
		gossip.EventGraftSent:        {"plumtree.grafts.sent 1"},
		gossip.EventGraftAnswered:    {"plumtree.grafts.answered 1"},
		gossip.EventGraftMiss:        {"plumtree.grafts.missed 1"},
		gossip.EventGraftRateLimited: {"plumtree.requests.rate_limited 1 request=graft"},
		gossip.EventGraftFailed:      {"plumtree.grafts.failed 1"},
		gossip.EventRecovered:        {"plumtree.messages.recovered 1", "plumtree.graft.latency 0.25"},
		gossip.EventPruneSent:        {"plumtree.prunes.sent 1"},
		gossip.EventPruneReceived:    {"plumtree.prunes.received 1"},
		gossip.EventPromoted:         {"plumtree.peers.promoted 1"},
		gossip.EventDemoted:          {"plumtree.peers.demoted 1"},
		gossip.EventOptimized:        {"plumtree.tree.optimizations 1"},
		gossip.EventIHaveSent:        {"plumtree.ihave.batch.size 3"},
		gossip.EventIHaveDropped:     {"plumtree.requests.rate_limited 3 request=ihave"},
		gossip.EventExchangeSent:     {"plumtree.exchange.ids 3"},
		gossip.EventCacheEvicted:     {"plumtree.cache.evictions 3"},
		gossip.EventSeenEvicted:      {"plumtree.seen.evictions 3"},
		gossip.EventDecodeError:      {"plumtree.errors.decode 1"},
		gossip.EventSendError:        {"plumtree.errors.send 1"},
		gossip.EventUnknownPeer:      {"plumtree.errors.unknown_peer 1"},
		gossip.EventStuckDeadline:    {"plumtree.errors.stuck_deadline 1"},
		gossip.EventShuffled:         {"plumtree.overlay.shuffles 1"},
		gossip.EventNackSent:         {"plumtree.grafts.nacks 1 direction=sent"},
		gossip.EventNackReceived:     {"plumtree.grafts.nacks 1 direction=received"},
		gossip.EventOriginEvicted:    {"plumtree.origins.evicted 3"},
		gossip.EventOrderSkipped:     {"plumtree.order.skipped 3"},
		gossip.EventOrderStale:       {"plumtree.order.stale 1"},
	}
	for k := gossip.EventKind(0); k < 64; k++ {
		o.Observe(gossip.Event{Kind: k, Type: gossip.KindIHave, Path: transport.PathDatagram, Count: 3, Bytes: 10, Hops: 4, Latency: 250 * time.Millisecond})
		got := r.take()
		named := !strings.HasPrefix(k.String(), "event(")
		if w, ok := want[k]; ok {
			if !slices.Equal(got, w) {
				t.Errorf("%v recorded %q, want %q", k, got, w)
			}
		} else if named {
			t.Errorf("%v: the core names this kind but the test does not say what it records (got %q)", k, got)
		} else if len(got) != 0 {
			t.Errorf("%v, unknown to the core, recorded %q", k, got)
		}
	}
	// An unknown type and path are bounded.
	o.Observe(gossip.Event{Kind: gossip.EventSent, Type: gossip.Kind(200), Path: transport.Path(9), Bytes: 10})
	if got, w := r.take(), []string{"plumtree.messages.sent 1 path=unknown type=unknown", "plumtree.sent 10 path=unknown type=unknown"}; !slices.Equal(got, w) {
		t.Errorf("unknown type and path recorded %q, want %q", got, w)
	}
	stop, err := o.WatchNode(func() (gossip.Stats, error) { return gossip.Stats{}, gossip.ErrClosed })
	if err != nil {
		t.Fatal(err)
	}
	stop()
}

// WithTopic puts the topic on every measurement of the observer.
func TestWithTopic(t *testing.T) {
	r := &recorder{}
	o, err := New(WithMeterProvider(r), WithTopic("orders"))
	if err != nil {
		t.Fatal(err)
	}
	o.Observe(gossip.Event{Kind: gossip.EventSent, Type: gossip.KindGossip, Path: transport.PathStream, Bytes: 10})
	o.Observe(gossip.Event{Kind: gossip.EventDuplicate})
	got := r.take()
	want := []string{
		"plumtree.messages.sent 1 path=stream plumtree.topic=orders type=gossip",
		"plumtree.sent 10 path=stream plumtree.topic=orders type=gossip",
		"plumtree.messages.duplicate 1 plumtree.topic=orders",
	}
	if !slices.Equal(got, want) {
		t.Errorf("recorded %q, want %q", got, want)
	}
}
