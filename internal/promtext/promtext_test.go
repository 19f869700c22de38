package promtext

import (
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// The exposition names and formats series as the OpenTelemetry Prometheus
// exporter does: units as suffixes, _total on counters, cumulative
// buckets with le, and gauges as their callbacks report them now.
func TestWriteText(t *testing.T) {
	p := New()
	m := p.Meter("test")
	ctx := context.Background()
	c, _ := m.Int64Counter("plumtree.sent", metric.WithUnit("By"), metric.WithDescription("Bytes sent."))
	c.Add(ctx, 3, metric.WithAttributes(attribute.String("type", "gossip")))
	c.Add(ctx, 4, metric.WithAttributes(attribute.String("type", "gossip")))
	h, _ := m.Float64Histogram("plumtree.delivery.latency", metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(0.1, 1))
	h.Record(ctx, 0.1)
	h.Record(ctx, 0.5)
	h.Record(ctx, 7)
	g, _ := m.Int64ObservableGauge("plumtree.cache.size", metric.WithUnit("{message}"))
	size := int64(5)
	reg, _ := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(g, size)
		return nil
	}, g)
	var b strings.Builder
	if err := p.WriteText(ctx, &b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"# TYPE plumtree_sent_bytes_total counter\n",
		`plumtree_sent_bytes_total{type="gossip"} 7` + "\n",
		"# TYPE plumtree_delivery_latency_seconds histogram\n",
		`plumtree_delivery_latency_seconds_bucket{le="0.1"} 1` + "\n",
		`plumtree_delivery_latency_seconds_bucket{le="1"} 2` + "\n",
		`plumtree_delivery_latency_seconds_bucket{le="+Inf"} 3` + "\n",
		"plumtree_delivery_latency_seconds_sum 7.6\n",
		"plumtree_delivery_latency_seconds_count 3\n",
		"# TYPE plumtree_cache_size gauge\nplumtree_cache_size 5\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("missing %q in:\n%s", want, b.String())
		}
	}
	reg.Unregister()
	b.Reset()
	p.WriteText(ctx, &b)
	if strings.Contains(b.String(), "plumtree_cache_size 5") {
		t.Errorf("an unregistered callback still reports:\n%s", b.String())
	}
}
