package main

import (
	"context"
	"testing"
	"testing/synctest"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestOneTraceIsTheTree: one broadcast across 20 nodes leaves one trace
// whose spans form a tree covering all 20 nodes: the origin's broadcast span
// at the root, one delivery span per other node, each the child of a span
// of another node.
func TestOneTraceIsTheTree(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 20
		rec := tracetest.NewSpanRecorder()
		if err := run(context.Background(), n, rec, sdktrace.AlwaysSample()); err != nil {
			t.Fatal(err)
		}
		spans := rec.Ended()
		if len(spans) != n {
			t.Fatalf("%d spans, want %d (one per node)", len(spans), n)
		}
		byID := make(map[trace.SpanID]string) // span → node
		nodes := make(map[string]int)
		traceID := spans[0].SpanContext().TraceID()
		for _, s := range spans {
			if s.SpanContext().TraceID() != traceID {
				t.Fatalf("spans of several traces: %v and %v", traceID, s.SpanContext().TraceID())
			}
			node, ok := s.Resource().Set().Value("service.instance.id")
			if !ok {
				t.Fatalf("span %s has no node in its resource", s.Name())
			}
			byID[s.SpanContext().SpanID()] = node.AsString()
			nodes[node.AsString()]++
		}
		if len(nodes) != n {
			t.Errorf("spans on %d nodes, want %d", len(nodes), n)
		}
		for node, k := range nodes {
			if k != 1 {
				t.Errorf("node %s has %d spans, want 1", node, k)
			}
		}
		// Every span but the root has a parent among the spans, on another
		// node; walking up from any span reaches the root.
		parent := make(map[trace.SpanID]trace.SpanID)
		var root trace.SpanID
		for _, s := range spans {
			id, p := s.SpanContext().SpanID(), s.Parent()
			switch {
			case s.Name() == "plumtree.broadcast":
				if p.IsValid() {
					t.Errorf("the broadcast span has a parent")
				}
				root = id
			case !p.IsValid():
				t.Errorf("delivery span on %s has no parent", byID[id])
			default:
				if _, ok := byID[p.SpanID()]; !ok {
					t.Errorf("delivery span on %s has a parent outside the trace", byID[id])
				}
				if byID[p.SpanID()] == byID[id] {
					t.Errorf("delivery span on %s is the child of a span on the same node", byID[id])
				}
				parent[id] = p.SpanID()
			}
		}
		if !root.IsValid() {
			t.Fatalf("no broadcast span")
		}
		for id := range byID {
			cur := id
			for steps := 0; cur != root; steps++ {
				if steps > n {
					t.Fatalf("the parents of the span on %s form a cycle", byID[id])
				}
				cur = parent[cur]
			}
		}
	})
}

// TestNotSampled: when the origin's sampler drops the broadcast span, the
// message carries no trace context and no node records a span.
func TestNotSampled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := tracetest.NewSpanRecorder()
		if err := run(context.Background(), 10, rec, sdktrace.NeverSample()); err != nil {
			t.Fatal(err)
		}
		if spans := rec.Ended(); len(spans) != 0 {
			t.Errorf("%d spans recorded for a broadcast that was not sampled", len(spans))
		}
	})
}
