package observe

import (
	"bytes"
	"testing"

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

// Every event kind is accepted with a no-op provider, and unknown types
// and paths stay within a bounded set.
func TestObserveEveryKind(t *testing.T) {
	o, err := New(WithMeterProvider(noop.NewMeterProvider()))
	if err != nil {
		t.Fatal(err)
	}
	for k := gossip.EventKind(0); k < 64; k++ {
		o.Observe(gossip.Event{Kind: k, Type: gossip.Kind(200), Path: transport.Path(9), Count: 3, Bytes: 10})
	}
	stop, err := o.WatchNode(func() (gossip.Stats, error) { return gossip.Stats{}, gossip.ErrClosed })
	if err != nil {
		t.Fatal(err)
	}
	stop()
}
