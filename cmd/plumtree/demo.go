package main

import (
	"context"
	"crypto/tls"
	"encoding/json"

	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plumtree-go/plumtree/codec"
	"github.com/plumtree-go/plumtree/gossip"
	"github.com/plumtree-go/plumtree/internal/cli"
	"github.com/plumtree-go/plumtree/membership"
	"github.com/plumtree-go/plumtree/membership/static"
	"github.com/plumtree-go/plumtree/stack"
	"github.com/plumtree-go/plumtree/transport"
	"github.com/plumtree-go/plumtree/transport/devcert"
	"github.com/plumtree-go/plumtree/transport/mem"
)

// demoOptions are the demo's flags.
type demoOptions struct {
	nodes, count, size int
	rate, loss         float64
	transport, preset  string
	compressor         string
	seed               uint64
	json               bool
	cpuProfile         string // profiling aid: a CPU profile of the measured phase
	topics, subscribe  int    // -topics: topics in the cluster; -subscribe: topics per node (demotopics.go)
}

// report is what the demo measured.
type report struct {
	Nodes          int     `json:"nodes"`
	Transport      string  `json:"transport"`
	Membership     string  `json:"membership"`
	Preset         string  `json:"preset"`
	Compressor     string  `json:"compressor"`
	Broadcasts     int     `json:"broadcasts"`
	Size           int     `json:"size_bytes"`
	Deliveries     int     `json:"deliveries"`
	Expected       int     `json:"deliveries_expected"`
	Reliability    float64 `json:"reliability"`
	RMR            float64 `json:"rmr"`
	LDH            uint32  `json:"last_delivery_hop"`
	LatencyP50     float64 `json:"latency_p50_ms"`
	LatencyP99     float64 `json:"latency_p99_ms"`
	LatencyMax     float64 `json:"latency_max_ms"`
	PayloadBytes   int64   `json:"payload_bytes"`
	WireBytes      uint64  `json:"wire_bytes"`
	WirePerPayload float64 `json:"wire_per_ideal_payload_byte"`
	PerSecond      float64 `json:"broadcasts_per_second"`
	Grafts         int     `json:"grafts"`
	Prunes         int     `json:"prunes"`
	Seconds        float64 `json:"seconds"`
	// With -topics (demotopics.go).
	Topics        int     `json:"topics,omitempty"`
	TopicsPerNode int     `json:"topics_per_node,omitempty"`
	MaxTopicRMR   float64 `json:"max_topic_rmr,omitempty"`
	RefusedFrames uint64  `json:"refused_frames,omitempty"`
}

func demo(ctx context.Context, args []string, out, progress io.Writer) error {
	var o demoOptions
	fs := cli.FlagSet("demo", `Starts a cluster in this process on loopback sockets (QUIC and memberlist by
default; -transport mem for an in-memory network with static membership), warms
it up, broadcasts from random origins at a steady rate, and reports what the
paper measures: reliability, RMR, last delivery hop, latency, wire bytes.`, progress)
	fs.IntVar(&o.nodes, "nodes", 20, "cluster size")
	fs.IntVar(&o.count, "count", 200, "broadcasts, from random origins")
	fs.IntVar(&o.size, "size", 256, "payload bytes")
	fs.Float64Var(&o.rate, "rate", 50, "broadcasts per second")
	fs.StringVar(&o.transport, "transport", "quic", "transport: "+strings.Join(stack.Transports, ", ")+" (loopback sockets, memberlist membership) or mem (in-memory network, static membership)")
	fs.StringVar(&o.preset, "preset", "lan", "configuration preset: default, lan, wan, large")
	fs.StringVar(&o.compressor, "compressor", "preset", "compression: preset (the preset's), none, zstd, lz4")
	fs.Float64Var(&o.loss, "loss", 0, "datagram loss rate (mem transport only)")
	fs.Uint64Var(&o.seed, "seed", 1, "random seed (origins, payloads, peer sampling)")
	fs.BoolVar(&o.json, "json", false, "write the report as JSON to stdout, instead of the table")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the measured phase (after the warm-up) to this file")
	topicFlags(fs, &o)
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if err := checkTopicFlags(o); err != nil {
		return err
	}
	if o.nodes < 2 || o.count < 1 || o.size < 1 || o.rate <= 0 {
		return cli.Usagef("need -nodes >= 2, -count >= 1, -size >= 1, -rate > 0")
	}
	if o.loss != 0 && o.transport != "mem" {
		return cli.Usagef("-loss needs -transport mem (real sockets on loopback do not lose datagrams on purpose)")
	}
	if o.transport != "mem" && !slices.Contains(stack.Transports, o.transport) {
		return cli.Usagef("-transport: unknown transport %q (want mem, %s)", o.transport, strings.Join(stack.Transports, ", "))
	}
	if _, err := stack.Preset(o.preset); err != nil {
		return &cli.UsageError{Err: fmt.Errorf("-preset: %w", err)}
	}
	if _, err := stack.WithCompressor(gossip.DefaultConfig(), o.compressor); err != nil {
		return &cli.UsageError{Err: fmt.Errorf("-compressor: %w", err)}
	}
	r, err := runDemo(ctx, o, progress)
	if err != nil {
		return err
	}
	if o.json {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return err
		}
	} else {
		printReport(out, r)
	}
	if r.Deliveries != r.Expected {
		return fmt.Errorf("%d deliveries missing", r.Expected-r.Deliveries)
	}
	return nil
}

func printReport(w io.Writer, r report) {
	if r.Topics > 0 {
		printTopicsReport(w, r)
		return
	}
	fmt.Fprintf(w, "\n%d nodes, %s, %s membership, preset %s, compression %s: %d broadcasts of %d bytes from random origins, after a warm-up\n",
		r.Nodes, r.Transport, r.Membership, r.Preset, r.Compressor, r.Broadcasts, r.Size)
	fmt.Fprintf(w, "reliability       %.4f  (%d of %d deliveries)\n", r.Reliability, r.Deliveries, r.Expected)
	fmt.Fprintf(w, "RMR               %.4f  (payloads received / deliveries - 1; 0 is a perfect tree)\n", r.RMR)
	fmt.Fprintf(w, "last delivery hop %d\n", r.LDH)
	fmt.Fprintf(w, "latency           p50 %.2fms  p99 %.2fms  max %.2fms  (from broadcast to each delivery)\n", r.LatencyP50, r.LatencyP99, r.LatencyMax)
	fmt.Fprintf(w, "bytes             %d payload delivered, %d on the wire (%.2f per ideal payload byte)\n", r.PayloadBytes, r.WireBytes, r.WirePerPayload)
	fmt.Fprintf(w, "rate              %.1f broadcasts/s over %.2fs\n", r.PerSecond, r.Seconds)
	fmt.Fprintf(w, "repairs           %d grafts, %d prunes\n", r.Grafts, r.Prunes)
}

// tally gathers what the cluster did with each broadcast.
type tally struct {
	mu       sync.Mutex
	payloads map[gossip.MessageID]int    // payload messages received
	firsts   map[gossip.MessageID]int    // deliveries
	hops     map[gossip.MessageID]uint32 // last delivery hop
	lat      []time.Duration
	grafts   int
	prunes   int
	total    int // deliveries
}

func (t *tally) Observe(e gossip.Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch e.Kind {
	case gossip.EventDelivered:
		t.payloads[e.Message]++
		t.firsts[e.Message]++
		t.hops[e.Message] = max(t.hops[e.Message], e.Hops)
		t.lat = append(t.lat, e.Latency)
		t.total++
	case gossip.EventDuplicate:
		t.payloads[e.Message]++
	case gossip.EventGraftSent:
		t.grafts++
	case gossip.EventPruneSent:
		t.prunes++
	}
}

func newTally() *tally {
	return &tally{payloads: map[gossip.MessageID]int{}, firsts: map[gossip.MessageID]int{}, hops: map[gossip.MessageID]uint32{}}
}

// waitDeliveries waits until t has counted want deliveries, for at most d.
func waitDeliveries(ctx context.Context, t *tally, want int, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		t.mu.Lock()
		got := t.total
		t.mu.Unlock()
		if got >= want {
			return nil
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("%d of %d deliveries after %v", got, want, d)
		}
		select {
		case <-time.After(5 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// wireBytes is what the nodes' transports have sent.
func wireBytes(nodes []*demoNode) uint64 {
	var wire uint64
	for _, n := range nodes {
		if sr, ok := n.tr.(transport.StatsReporter); ok {
			wire += sr.Stats().BytesSent
		}
	}
	return wire
}

// demoNode is one node of the demo and what it runs on.
type demoNode struct {
	tr   transport.Transport
	mem  membership.Membership[string]
	stop func() // closes the membership (gracefully)
	pt   *gossip.Plumtree[string, []byte]
}

// startCluster starts o.nodes nodes and waits until every node's membership
// knows every other.
func startCluster(ctx context.Context, o demoOptions, cfg gossip.Config, obs gossip.Observer, progress io.Writer) (nodes []*demoNode, membershipName string, err error) {
	defer func() {
		if err != nil {
			stopCluster(nodes)
		}
	}()
	name := func(i int) string { return fmt.Sprintf("node-%02d", i) }
	if o.transport == "mem" {
		net := mem.NewNetwork(mem.Config{Seed: o.seed, Latency: time.Millisecond, DropRate: o.loss})
		var members []membership.Member[string]
		for i := range o.nodes {
			tr, err := net.Listen(name(i))
			if err != nil {
				return nodes, "", err
			}
			nodes = append(nodes, &demoNode{tr: tr})
			members = append(members, membership.Member[string]{ID: name(i), Addr: tr.LocalAddr()})
		}
		for _, n := range nodes {
			s := static.New(members...)
			n.mem, n.stop = s, s.Close
		}
		membershipName = "static"
	} else {
		var ca *devcert.UnsafeCA
		if o.transport == "quic" {
			if ca, err = devcert.NewUnsafeCA(); err != nil {
				return nodes, "", err
			}
		}
		fmt.Fprintf(progress, "starting %d nodes on 127.0.0.1 (%s, memberlist)...\n", o.nodes, o.transport)
		var seeds []string
		for i := range o.nodes {
			var tlsConf *tls.Config
			if ca != nil {
				if tlsConf, err = ca.UnsafeMutualTLS(name(i), "127.0.0.1"); err != nil {
					return nodes, "", err
				}
			}
			s, err := stack.New(stack.Config{Name: name(i), Listen: "127.0.0.1:0", Join: seeds, Transport: o.transport,
				Gossip: &cfg, TLS: tlsConf, Observer: obs, Seed: o.seed, OnDeliver: func(gossip.Delivery[string, []byte]) {}})
			if err != nil {
				return nodes, "", fmt.Errorf("%s: %w", name(i), err)
			}
			nodes = append(nodes, &demoNode{tr: s.Transport, mem: s.Membership, pt: s.Node, stop: func() { s.Close() }})
			if i == 0 {
				seeds = []string{s.ClusterAddr()}
			}
		}
		if err := converge(ctx, nodes); err != nil {
			return nodes, "", err
		}
		return nodes, "memberlist", nil
	}
	comp, comps, err := stack.Compressors(cfg.Compression)
	if err != nil {
		return nodes, "", err
	}
	for i, n := range nodes {
		n.pt, err = gossip.New(cfg, gossip.Options[string, []byte]{
			ID: name(i), Transport: n.tr, Membership: n.mem, Codec: codec.Bytes(), Observer: obs,
			Compressor: comp, Compressors: comps,
			Seed: o.seed, OnDeliver: func(gossip.Delivery[string, []byte]) {},
		})
		if err != nil {
			return nodes, "", err
		}
	}
	return nodes, membershipName, nil
}

// converge waits until every membership lists every node.
func converge(ctx context.Context, nodes []*demoNode) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		done := true
		for _, n := range nodes {
			if len(n.mem.Members()) < len(nodes) {
				done = false
				break
			}
		}
		if done {
			return nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("memberlist did not converge: %w", ctx.Err())
		}
	}
}

func stopCluster(nodes []*demoNode) {
	var wg sync.WaitGroup
	for _, n := range nodes {
		if n.pt != nil {
			n.pt.Close()
		}
		wg.Add(1)
		go func() { // leaving memberlist waits for acknowledgements: in parallel
			defer wg.Done()
			if n.stop != nil {
				n.stop()
			}
		}()
	}
	wg.Wait()
	for _, n := range nodes {
		if n.tr != nil {
			n.tr.Close()
		}
	}
}

// percentiles returns the q-quantile of lat in milliseconds (0 for none).
func percentiles(lat []time.Duration) func(q float64) float64 {
	lat = slices.Clone(lat)
	slices.Sort(lat)
	return func(q float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))]) / float64(time.Millisecond)
	}
}

// demoConfig is the preset o names with its compressor, and the
// compression as the report names it.
func demoConfig(o demoOptions) (gossip.Config, string, error) {
	cfg, err := stack.Preset(o.preset)
	if err != nil {
		return cfg, "", err
	}
	if cfg, err = stack.WithCompressor(cfg, o.compressor); err != nil {
		return cfg, "", err
	}
	compression := "none"
	if cfg.Compression.Algorithm != "" {
		compression = fmt.Sprintf("%s from %d bytes", cfg.Compression.Algorithm, cfg.Compression.MinSize)
	}
	return cfg, compression, nil
}

func runDemo(ctx context.Context, o demoOptions, progress io.Writer) (report, error) {
	if o.topics > 0 {
		return runTopicsDemo(ctx, o, progress)
	}
	cfg, compression, err := demoConfig(o)
	if err != nil {
		return report{}, err
	}
	var current atomic.Pointer[tally]
	current.Store(newTally())
	obs := gossip.ObserverFunc(func(e gossip.Event) { current.Load().Observe(e) })
	nodes, membershipName, err := startCluster(ctx, o, cfg, obs, progress)
	if err != nil {
		return report{}, err
	}
	defer stopCluster(nodes)

	// Warm-up: one broadcast from each node, so that connections are open
	// (a TLS handshake costs milliseconds of CPU; hundreds at once, far
	// more) and the tree has formed before anything is measured.
	// They go one by one: broadcasts from many origins at once make the
	// single shared tree flap (see the README's known limits).
	fmt.Fprintf(progress, "warming up: one broadcast from each node...\n")
	for i, n := range nodes {
		if _, err := n.pt.Broadcast(ctx, fmt.Appendf(nil, "warm-up %d", i)); err != nil {
			return report{}, err
		}
		if err := waitDeliveries(ctx, current.Load(), (i+1)*(len(nodes)-1), 30*time.Second); err != nil {
			return report{}, fmt.Errorf("warm-up: %w", err)
		}
	}
	// Let the last grafts and prunes of the warm-up finish.
	select {
	case <-time.After(cfg.IHaveInterval + cfg.GraftTimeout):
	case <-ctx.Done():
		return report{}, ctx.Err()
	}
	wireBefore := wireBytes(nodes)
	t := newTally()
	current.Store(t)

	expected := o.count * (o.nodes - 1)
	p := newProgress(progress, o.count, expected)
	stopProgress := p.run(func() int {
		t.mu.Lock()
		defer t.mu.Unlock()
		return t.total
	})
	rng := rand.New(rand.NewPCG(o.seed, 2))
	payload := make([]byte, o.size)
	for i := range payload {
		payload[i] = "plumtree epidemic broadcast "[i%28] // compressible, like text
	}
	gap := time.Duration(float64(time.Second) / o.rate)
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			stopProgress()
			return report{}, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			stopProgress()
			return report{}, err
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	var sent []gossip.MessageID
	for i := range o.count {
		copy(payload, fmt.Sprintf("message %d ", i))
		id, err := nodes[rng.IntN(len(nodes))].pt.Broadcast(ctx, payload)
		if err != nil {
			stopProgress()
			return report{}, err
		}
		sent = append(sent, id)
		p.sent.Store(int64(i + 1))
		select {
		case <-time.After(time.Until(start.Add(time.Duration(i+1) * gap))):
		case <-ctx.Done():
			stopProgress()
			return report{}, ctx.Err()
		}
	}
	// Let recoveries finish: at most a graft horizon.
	horizon := cfg.IHaveInterval + cfg.GraftTimeout*time.Duration(2+cfg.GraftMaxRetries)
	err = waitDeliveries(ctx, t, expected, horizon)
	elapsed := time.Since(start)
	stopProgress()
	if ctx.Err() != nil {
		return report{}, ctx.Err()
	}
	wire := wireBytes(nodes) - wireBefore
	t.mu.Lock()
	defer t.mu.Unlock()
	received, delivered := 0, 0
	var ldh uint32
	for _, id := range sent {
		received += t.payloads[id]
		delivered += t.firsts[id]
		ldh = max(ldh, t.hops[id])
	}
	pct := percentiles(t.lat)
	ideal := int64(expected) * int64(o.size)
	return report{
		Nodes: o.nodes, Transport: o.transport, Membership: membershipName, Preset: o.preset, Compressor: compression,
		Broadcasts: len(sent), Size: o.size, Deliveries: delivered, Expected: expected,
		Reliability: float64(delivered) / float64(expected),
		RMR:         float64(received)/float64(max(delivered, 1)) - 1,
		LDH:         ldh,
		LatencyP50:  pct(0.50), LatencyP99: pct(0.99), LatencyMax: pct(1),
		PayloadBytes: int64(delivered) * int64(o.size), WireBytes: wire,
		WirePerPayload: float64(wire) / float64(max(ideal, 1)),
		PerSecond:      float64(len(sent)) / elapsed.Seconds(),
		Grafts:         t.grafts, Prunes: t.prunes, Seconds: elapsed.Seconds(),
	}, nil
}

// progressLine shows how far the demo is: a line redrawn in place on a
// terminal, plain lines at each tenth otherwise.
type progressLine struct {
	w                 io.Writer
	tty               bool
	count, deliveries int
	sent              atomic.Int64
}

func newProgress(w io.Writer, count, deliveries int) *progressLine {
	return &progressLine{w: w, tty: isTerminal(w), count: count, deliveries: deliveries}
}

// run draws the progress every 100ms until the returned function is called.
func (p *progressLine) run(delivered func() int) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		lastTenth := -1
		for {
			select {
			case <-done:
				if p.tty {
					p.draw(delivered())
					fmt.Fprintln(p.w)
				}
				return
			case <-tick.C:
				if p.tty {
					p.draw(delivered())
				} else if tenth := int(p.sent.Load()) * 10 / p.count; tenth != lastTenth && tenth > 0 {
					lastTenth = tenth
					fmt.Fprintf(p.w, "  %d/%d broadcast, %d/%d delivered\n", p.sent.Load(), p.count, delivered(), p.deliveries)
				}
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			<-finished
		})
	}
}

func (p *progressLine) draw(delivered int) {
	const width = 30
	filled := width * delivered / max(p.deliveries, 1)
	fmt.Fprintf(p.w, "\r  [%s%s] %d/%d broadcast, %d/%d delivered ", strings.Repeat("#", filled), strings.Repeat(".", width-filled),
		p.sent.Load(), p.count, delivered, p.deliveries)
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
