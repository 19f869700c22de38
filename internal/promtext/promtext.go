// Package promtext is a small OpenTelemetry metric.MeterProvider that keeps
// its measurements in memory and writes them in the Prometheus text
// exposition format (version 0.0.4), for `plumtree node -http`'s /metrics.
//
// Why not the OpenTelemetry SDK and its Prometheus exporter: the command
// lives in the library's module (so that `go run ./cmd/plumtree` works from
// the repository's root), and the library's go.mod must not carry an SDK or
// an exporter that only the command needs (see shared/DESIGN.md: a user who
// imports gossip must not find them in their module graph). The observe
// package speaks the OpenTelemetry metric API, which the library already
// requires; this provider implements the part of it that observe uses
// (counters, histograms, observable counters and gauges, callbacks; other
// instruments record nothing) and names the series as the OpenTelemetry
// Prometheus exporter does: dots become underscores, the unit "s" adds
// _seconds and "By" _bytes, counters end in _total. A program that wants
// the full SDK plugs its own MeterProvider into observe instead.
//
// This package must not be imported by the library.
package promtext

import (
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/embedded"
	"go.opentelemetry.io/otel/metric/noop"
)

// Provider is the meter provider. Its zero value is not usable: call New.
type Provider struct {
	embedded.MeterProvider
	mu        sync.Mutex
	insts     []*inst
	byName    map[string]*inst
	callbacks map[*registration]metric.Callback
}

// New returns an empty provider.
func New() *Provider {
	return &Provider{byName: map[string]*inst{}, callbacks: map[*registration]metric.Callback{}}
}

// Meter returns a meter that records into p (every scope shares it).
func (p *Provider) Meter(string, ...metric.MeterOption) metric.Meter { return &meter{p: p} }

type kind uint8

const (
	kindCounter kind = iota
	kindGauge
	kindHistogram
)

type inst struct {
	name, help string
	kind       kind
	observable bool
	bounds     []float64
	series     map[attribute.Distinct]*series
}

type series struct {
	attrs  attribute.Set
	value  float64
	counts []uint64 // histogram: per bucket (not cumulative), then +Inf
	sum    float64
	count  uint64
}

func (p *Provider) instrument(name, unit, desc string, k kind, observable bool, bounds []float64) *inst {
	n := promName(name, unit, k)
	p.mu.Lock()
	defer p.mu.Unlock()
	if in, ok := p.byName[n]; ok {
		return in
	}
	in := &inst{name: n, help: desc, kind: k, observable: observable, bounds: bounds, series: map[attribute.Distinct]*series{}}
	p.byName[n] = in
	p.insts = append(p.insts, in)
	return in
}

// promName is the Prometheus name of an OpenTelemetry instrument.
func promName(name, unit string, k kind) string {
	var b strings.Builder
	for _, r := range name {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == ':' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	n := b.String()
	suffix := map[string]string{"s": "seconds", "ms": "milliseconds", "By": "bytes"}[unit]
	if suffix != "" && !strings.HasSuffix(n, "_"+suffix) {
		n += "_" + suffix
	}
	if k == kindCounter && !strings.HasSuffix(n, "_total") {
		n += "_total"
	}
	return n
}

func (p *Provider) record(in *inst, v float64, set attribute.Set, add bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := in.series[set.Equivalent()]
	if !ok {
		s = &series{attrs: set}
		if in.kind == kindHistogram {
			s.counts = make([]uint64, len(in.bounds)+1)
		}
		in.series[set.Equivalent()] = s
	}
	switch {
	case in.kind == kindHistogram:
		i, _ := slices.BinarySearch(in.bounds, v) // le: a value on a bound counts in it
		s.counts[i]++
		s.sum += v
		s.count++
	case add:
		s.value += v
	default:
		s.value = v
	}
}

// WriteText runs the callbacks and writes every series to w in the
// Prometheus text format.
func (p *Provider) WriteText(ctx context.Context, w io.Writer) error {
	p.mu.Lock()
	for _, in := range p.insts {
		if in.observable {
			clear(in.series) // what the callbacks report now, and nothing older
		}
	}
	cbs := make([]metric.Callback, 0, len(p.callbacks))
	for _, cb := range p.callbacks {
		cbs = append(cbs, cb)
	}
	p.mu.Unlock()
	for _, cb := range cbs {
		if err := cb(ctx, observer{p: p}); err != nil {
			return err
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, in := range p.insts {
		typ := map[kind]string{kindCounter: "counter", kindGauge: "gauge", kindHistogram: "histogram"}[in.kind]
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", in.name, escape(in.help, false), in.name, typ)
		keys := make([]string, 0, len(in.series))
		byKey := map[string]*series{}
		for _, s := range in.series {
			k := labels(s.attrs, "")
			keys = append(keys, k)
			byKey[k] = s
		}
		slices.Sort(keys)
		for _, k := range keys {
			s := byKey[k]
			if in.kind != kindHistogram {
				fmt.Fprintf(&b, "%s%s %s\n", in.name, k, num(s.value))
				continue
			}
			var cum uint64
			for i, c := range s.counts {
				cum += c
				le := "+Inf"
				if i < len(in.bounds) {
					le = num(in.bounds[i])
				}
				fmt.Fprintf(&b, "%s_bucket%s %d\n", in.name, labels(s.attrs, le), cum)
			}
			fmt.Fprintf(&b, "%s_sum%s %s\n%s_count%s %d\n", in.name, k, num(s.sum), in.name, k, s.count)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func num(v float64) string {
	if math.IsInf(v, 1) {
		return "+Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// labels formats an attribute set (and le, if not empty) as {k="v",...}.
func labels(set attribute.Set, le string) string {
	var parts []string
	for _, kv := range set.ToSlice() {
		parts = append(parts, promName(string(kv.Key), "", kindGauge)+`="`+escape(kv.Value.Emit(), true)+`"`)
	}
	if le != "" {
		parts = append(parts, `le="`+le+`"`)
	}
	if len(parts) == 0 {
		return ""
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func escape(s string, quote bool) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, "\n", `\n`)
	if quote {
		s = strings.ReplaceAll(s, `"`, `\"`)
	}
	return s
}

type meter struct {
	noop.Meter
	p *Provider
}

func (m *meter) Int64Counter(name string, opts ...metric.Int64CounterOption) (metric.Int64Counter, error) {
	c := metric.NewInt64CounterConfig(opts...)
	return &int64Counter{p: m.p, in: m.p.instrument(name, c.Unit(), c.Description(), kindCounter, false, nil)}, nil
}

func (m *meter) Int64Histogram(name string, opts ...metric.Int64HistogramOption) (metric.Int64Histogram, error) {
	c := metric.NewInt64HistogramConfig(opts...)
	return &int64Histogram{p: m.p, in: m.p.instrument(name, c.Unit(), c.Description(), kindHistogram, false, bounds(c.ExplicitBucketBoundaries()))}, nil
}

func (m *meter) Float64Histogram(name string, opts ...metric.Float64HistogramOption) (metric.Float64Histogram, error) {
	c := metric.NewFloat64HistogramConfig(opts...)
	return &float64Histogram{p: m.p, in: m.p.instrument(name, c.Unit(), c.Description(), kindHistogram, false, bounds(c.ExplicitBucketBoundaries()))}, nil
}

func (m *meter) Int64ObservableCounter(name string, opts ...metric.Int64ObservableCounterOption) (metric.Int64ObservableCounter, error) {
	c := metric.NewInt64ObservableCounterConfig(opts...)
	in := m.p.instrument(name, c.Unit(), c.Description(), kindCounter, true, nil)
	m.p.register(c.Callbacks(), in)
	return &int64ObservableCounter{in: in}, nil
}

func (m *meter) Int64ObservableGauge(name string, opts ...metric.Int64ObservableGaugeOption) (metric.Int64ObservableGauge, error) {
	c := metric.NewInt64ObservableGaugeConfig(opts...)
	in := m.p.instrument(name, c.Unit(), c.Description(), kindGauge, true, nil)
	m.p.register(c.Callbacks(), in)
	return &int64ObservableGauge{in: in}, nil
}

// register adds an instrument's own callbacks.
func (p *Provider) register(cbs []metric.Int64Callback, in *inst) {
	for _, cb := range cbs {
		p.mu.Lock()
		p.callbacks[&registration{p: p}] = func(ctx context.Context, o metric.Observer) error {
			return cb(ctx, int64Observer{o: o, in: in})
		}
		p.mu.Unlock()
	}
}

func (m *meter) RegisterCallback(f metric.Callback, _ ...metric.Observable) (metric.Registration, error) {
	r := &registration{p: m.p}
	m.p.mu.Lock()
	m.p.callbacks[r] = f
	m.p.mu.Unlock()
	return r, nil
}

// bounds is the histogram's boundaries, or the SDK's default ones.
func bounds(b []float64) []float64 {
	if len(b) == 0 {
		return []float64{0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000}
	}
	return slices.Sorted(slices.Values(b))
}

type registration struct {
	embedded.Registration
	p *Provider
}

func (r *registration) Unregister() error {
	r.p.mu.Lock()
	delete(r.p.callbacks, r)
	r.p.mu.Unlock()
	return nil
}

type promInst interface{ inst() *inst }

type observer struct {
	embedded.Observer
	p *Provider
}

func (o observer) ObserveInt64(obs metric.Int64Observable, v int64, opts ...metric.ObserveOption) {
	if i, ok := obs.(promInst); ok {
		o.p.record(i.inst(), float64(v), metric.NewObserveConfig(opts).Attributes(), false)
	}
}

func (o observer) ObserveFloat64(obs metric.Float64Observable, v float64, opts ...metric.ObserveOption) {
	if i, ok := obs.(promInst); ok {
		o.p.record(i.inst(), v, metric.NewObserveConfig(opts).Attributes(), false)
	}
}

type int64Observer struct {
	embedded.Int64Observer
	o  metric.Observer
	in *inst
}

func (o int64Observer) Observe(v int64, opts ...metric.ObserveOption) {
	if ob, ok := o.o.(observer); ok {
		ob.p.record(o.in, float64(v), metric.NewObserveConfig(opts).Attributes(), false)
	}
}

type int64Counter struct {
	noop.Int64Counter
	p  *Provider
	in *inst
}

func (c *int64Counter) Add(_ context.Context, v int64, opts ...metric.AddOption) {
	c.p.record(c.in, float64(v), metric.NewAddConfig(opts).Attributes(), true)
}
func (c *int64Counter) Enabled(context.Context) bool { return true }

type int64Histogram struct {
	noop.Int64Histogram
	p  *Provider
	in *inst
}

func (h *int64Histogram) Record(_ context.Context, v int64, opts ...metric.RecordOption) {
	h.p.record(h.in, float64(v), metric.NewRecordConfig(opts).Attributes(), false)
}
func (h *int64Histogram) Enabled(context.Context) bool { return true }

type float64Histogram struct {
	noop.Float64Histogram
	p  *Provider
	in *inst
}

func (h *float64Histogram) Record(_ context.Context, v float64, opts ...metric.RecordOption) {
	h.p.record(h.in, v, metric.NewRecordConfig(opts).Attributes(), false)
}
func (h *float64Histogram) Enabled(context.Context) bool { return true }

type int64ObservableCounter struct {
	noop.Int64ObservableCounter
	in *inst
}

func (c *int64ObservableCounter) inst() *inst { return c.in }

type int64ObservableGauge struct {
	noop.Int64ObservableGauge
	in *inst
}

func (g *int64ObservableGauge) inst() *inst { return g.in }
