package observe

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/plumtree-go/plumtree/gossip"
)

// traceVersion is the first byte of a trace context on the wire.
const traceVersion = 0

// traceLen is the length of a trace context on the wire: a version byte,
// then W3C trace context's trace ID (16 bytes), parent span ID (8) and
// flags (1), without the text encoding of the traceparent header.
const traceLen = 1 + 16 + 8 + 1

// Tracer draws each broadcast as one trace: a span at the origin, then at
// every node that delivers the message a span whose parent is the span of
// the node it received the payload from, so the trace is the dissemination
// tree. It implements gossip.Tracer; pass it as gossip.Options.Tracer.
//
// The trace context rides in the message's frame in a compact binary form
// (26 bytes). Sampling is the provider's: a broadcast whose span is not
// sampled carries no context, and its deliveries record nothing.
type Tracer struct {
	tracer trace.Tracer
}

// NewTracer makes a Tracer on the tracer provider of WithTracerProvider (by
// default the global one). A node's spans carry the attributes of
// WithAttributes; name the node in the provider's resource (for instance
// service.instance.id), not here, to keep span attributes small.
func NewTracer(opts ...Option) *Tracer {
	c := newConfig(opts)
	return &Tracer{tracer: c.tp.Tracer(ScopeName)}
}

var _ gossip.Tracer = (*Tracer)(nil)

// Broadcast starts and ends the origin's span, a child of any span in ctx,
// and returns its context for the frame (nil when not sampled).
func (t *Tracer) Broadcast(ctx context.Context) []byte {
	_, span := t.tracer.Start(ctx, "plumtree.broadcast", trace.WithSpanKind(trace.SpanKindProducer))
	defer span.End()
	return encodeSpanContext(span.SpanContext())
}

// Deliver records the delivery span of a message that arrived with the
// trace context tc, and returns this span's context for the copies this
// node forwards.
func (t *Tracer) Deliver(d gossip.TraceDelivery) []byte {
	parent, ok := decodeSpanContext(d.Trace)
	if !ok {
		return nil
	}
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), parent)
	_, span := t.tracer.Start(ctx, "plumtree.deliver",
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.Int("plumtree.hops", int(d.Hops)),
			attribute.Bool("plumtree.recovered", d.Recovered),
		))
	defer span.End()
	return encodeSpanContext(span.SpanContext())
}

// encodeSpanContext returns sc in wire form, or nil when it is not valid or
// not sampled.
func encodeSpanContext(sc trace.SpanContext) []byte {
	if !sc.IsValid() || !sc.IsSampled() {
		return nil
	}
	b := make([]byte, 0, traceLen)
	b = append(b, traceVersion)
	tid, sid := sc.TraceID(), sc.SpanID()
	b = append(b, tid[:]...)
	b = append(b, sid[:]...)
	return append(b, byte(sc.TraceFlags()))
}

// decodeSpanContext reads a wire trace context. Anything malformed, of
// another version or not sampled gives false: the delivery is not traced.
func decodeSpanContext(b []byte) (trace.SpanContext, bool) {
	if len(b) != traceLen || b[0] != traceVersion {
		return trace.SpanContext{}, false
	}
	var tid trace.TraceID
	var sid trace.SpanID
	copy(tid[:], b[1:17])
	copy(sid[:], b[17:25])
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    tid,
		SpanID:     sid,
		TraceFlags: trace.TraceFlags(b[25]),
		Remote:     true,
	})
	if !sc.IsValid() || !sc.IsSampled() {
		return trace.SpanContext{}, false
	}
	return sc, true
}
