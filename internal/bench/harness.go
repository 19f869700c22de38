package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Workload is what a run broadcasts.
type Workload struct {
	// Nodes is the cluster size (at least 2).
	Nodes int
	// Size is the payload size in bytes (at least 8): an 8-byte sequence
	// number, then seeded random (incompressible) filler.
	Size int
	// Rate is the target publications per second.
	Rate float64
	// Count is how many messages the measured run publishes.
	Count int
	// Seed makes origins (with RandomOrigins) and the drivers repeatable.
	Seed int64
	// RandomOrigins picks each message's origin at random (seeded);
	// otherwise origins go round-robin over the nodes.
	RandomOrigins bool
	// Drain bounds the wait, after the last publication, for the deliveries
	// still expected. 0 means 10 seconds.
	Drain time.Duration
	// Cold skips the warm-up: the measured window starts with the first
	// broadcast the freshly started nodes see (membership has converged,
	// but no connection is open and no tree has formed), so it includes
	// what the warm-up otherwise hides.
	Cold bool
	// CPUProfile, if set, receives a CPU profile of the measured window.
	CPUProfile io.Writer
	// HeapProfile, if set, receives a heap profile taken at the end of the
	// measured window, after a GC, with the cluster still running.
	HeapProfile io.Writer
	// Loopback, if set, reads the loopback interface's counters (bytes,
	// packets); the harness reports their delta over the measured window.
	Loopback func() (bytes, packets uint64, err error)
}

func (w Workload) check() error {
	switch {
	case w.Nodes < 2:
		return fmt.Errorf("bench: need at least 2 nodes, got %d", w.Nodes)
	case w.Size < seqBytes:
		return fmt.Errorf("bench: payload size %d is below the %d-byte sequence number", w.Size, seqBytes)
	case !(w.Rate > 0):
		return fmt.Errorf("bench: rate must be positive, got %v", w.Rate)
	case w.Count < 1:
		return fmt.Errorf("bench: count must be at least 1, got %d", w.Count)
	}
	return nil
}

func (w Workload) drain() time.Duration {
	if w.Drain > 0 {
		return w.Drain
	}
	return 10 * time.Second
}

// Result is what one measured run of one system gives. Latencies are in
// milliseconds, CPU in milliseconds, memory in bytes.
type Result struct {
	System string  `json:"system"`
	Nodes  int     `json:"nodes"`
	Size   int     `json:"size_bytes"`
	Rate   float64 `json:"rate_target_per_s"`
	// AchievedRate is the publication rate the pacer reached; below Rate
	// when publishing could not keep up.
	AchievedRate float64 `json:"rate_achieved_per_s"`
	Count        int     `json:"broadcasts"`
	// Start is "cold" when the measured window began right after the
	// nodes started (Workload.Cold), "warm" after a warm-up.
	Start string `json:"start"`
	// WarmupMissing counts the warm-up deliveries that had not arrived
	// 30 s after their broadcast: the run goes on, and says so, since a
	// system that loses messages (memberlist's queue) still has numbers.
	WarmupMissing int `json:"warmup_missing,omitempty"`

	Deliveries    int     `json:"deliveries"`
	Expected      int     `json:"deliveries_expected"`
	DeliveryRatio float64 `json:"delivery_ratio"`
	Duplicates    int     `json:"duplicate_deliveries"`
	// RMR is the relative message redundancy over the measured window:
	// payloads received twice or more over payloads received first
	// (PayloadCounter systems only, else -1); Grafts the grafts sent then.
	RMR    float64 `json:"rmr"`
	Grafts uint64  `json:"grafts,omitempty"`

	LatencyP50 float64 `json:"latency_p50_ms"`
	LatencyP99 float64 `json:"latency_p99_ms"`
	LatencyMax float64 `json:"latency_max_ms"`
	LastP50    float64 `json:"last_delivery_p50_ms"`
	LastP99    float64 `json:"last_delivery_p99_ms"`

	// WireBytes and WirePackets are the delta of Cluster.Wire over the
	// measured window: the systems' own counters, without IP/UDP/TCP
	// headers.
	WireBytes           uint64  `json:"wire_bytes"`
	WirePackets         uint64  `json:"wire_packets"`
	WirePerIdealByte    float64 `json:"wire_per_ideal_payload_byte"`
	PacketsPerBroadcast float64 `json:"packets_per_broadcast"`
	// Loopback is the loopback interface's count over the same window, when
	// the run has a network namespace of its own.
	Loopback *LoopbackCount `json:"loopback,omitempty"`

	// CPUPerBroadcast is the process's user plus system CPU time
	// (getrusage) over the measured window divided by the broadcasts: all
	// nodes together, plus the harness's own cost (pacing, recording,
	// sampling), which is the same for every system.
	CPUPerBroadcast float64 `json:"cpu_per_broadcast_ms"`
	CPUTotal        float64 `json:"cpu_total_ms"`
	Goroutines      int     `json:"goroutines"`
	HeapPeak        uint64  `json:"heap_peak_bytes"`
	HeapAfterGC     uint64  `json:"heap_after_gc_bytes"`
	Seconds         float64 `json:"seconds"`
	// Load is the machine's one-minute load average as the measured window
	// began (Linux; 0 elsewhere): on a shared machine, how busy it was.
	Load float64 `json:"load_average_1m"`

	// Err is why the system could not be measured, if it could not.
	Err string `json:"error,omitempty"`
}

// LoopbackCount is the traffic on the loopback interface of the run's own
// network namespace: every packet of the process once, IP and UDP/TCP
// headers included, memberlist's and any other traffic too.
type LoopbackCount struct {
	Bytes               uint64  `json:"bytes"`
	Packets             uint64  `json:"packets"`
	PerIdealByte        float64 `json:"per_ideal_payload_byte"`
	PacketsPerBroadcast float64 `json:"packets_per_broadcast"`
}

// system is a started cluster with its warm-up done, ready for measured
// runs.
type system struct {
	name     string
	cluster  Cluster
	n        int
	current  atomic.Pointer[recorder]
	gen      uint64
	baseline int // goroutines before the cluster started
	missing  int // warm-up deliveries that never arrived
}

// startSystem starts d with n nodes, then, unless w.Cold, warms it up (see
// warmUp).
func startSystem(ctx context.Context, d Driver, w Workload, maxPayload int) (*system, error) {
	runtime.GC()
	s := &system{name: d.Name(), n: w.Nodes, baseline: runtime.NumGoroutine()}
	deliver := func(node int, payload []byte) {
		if r := s.current.Load(); r != nil {
			r.deliver(node, payload)
		}
	}
	// Starting and connecting n nodes (gossipsub: n(n-1)/2 TLS
	// connections) takes longer with more nodes.
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute+time.Duration(w.Nodes)*3*time.Second)
	defer cancel()
	c, err := d.Start(sctx, StartConfig{Nodes: w.Nodes, MaxPayload: maxPayload, Seed: w.Seed}, deliver)
	if err != nil {
		return nil, fmt.Errorf("%s: start: %w", s.name, err)
	}
	s.cluster = c
	if w.Cold {
		return s, nil
	}
	if err := s.warmUp(ctx, w.Size); err != nil {
		c.Close()
		return nil, fmt.Errorf("%s: warm-up: %w", s.name, err)
	}
	return s, nil
}

// warmUp makes one broadcast from each node in turn, each awaited at every
// node, so that connections are open and the tree formed before anything
// is measured; then it waits for the transports to go quiet (100 ms
// without a byte, at most 2 s).
func (s *system) warmUp(ctx context.Context, size int) error {
	buf := filler(size, 0)
	for i := range s.n {
		s.gen++
		r := newRecorder(s.gen, s.n, []int{i})
		s.current.Store(r)
		r.payload(buf, 0)
		r.publishing(0)
		if err := s.cluster.Publish(ctx, i, buf); err != nil {
			return err
		}
		if err := wait(ctx, r.done, 30*time.Second); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			got := r.delivered.Load()
			if got == 0 {
				return fmt.Errorf("broadcast from node %d: 0 of %d deliveries: %w", i, r.expected, err)
			}
			// Some lost, not late: note it and go on (the measured run
			// shows what the system delivers).
			s.missing += int(r.expected - got)
		}
	}
	// Settle: the last repairs and announcements of the warm-up end.
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	deadline := time.Now().Add(2 * time.Second)
	last, quietSince := s.cluster.Wire(), time.Now()
	for time.Now().Before(deadline) && time.Since(quietSince) < 100*time.Millisecond {
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
		if now := s.cluster.Wire(); now != last {
			last, quietSince = now, time.Now()
		}
	}
	return nil
}

// wait waits for done, for at most d.
func wait(ctx context.Context, done <-chan struct{}, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-t.C:
		return fmt.Errorf("timed out after %v", d)
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *system) close() error {
	s.current.Store(nil)
	return s.cluster.Close()
}

// filler returns a payload buffer of size bytes after the sequence number
// filled with seeded random bytes: incompressible, so that no system's
// compression makes its wire count look better than the payload.
func filler(size int, seed int64) []byte {
	buf := make([]byte, size)
	rng := rand.New(rand.NewPCG(uint64(seed), 0x66696c6c6572)) // "filler"
	for i := seqBytes; i < len(buf); i++ {
		buf[i] = byte(rng.Uint32())
	}
	return buf
}

// origins returns each message's origin.
func origins(w Workload) []int {
	o := make([]int, w.Count)
	rng := rand.New(rand.NewPCG(uint64(w.Seed), 0x6f726967696e)) // "origin"
	for i := range o {
		if w.RandomOrigins {
			o[i] = rng.IntN(w.Nodes)
		} else {
			o[i] = i % w.Nodes
		}
	}
	return o
}

// measure runs the workload once on the started system.
func (s *system) measure(ctx context.Context, w Workload) (Result, error) {
	res := Result{System: s.name, Nodes: s.n, Size: w.Size, Rate: w.Rate, Count: w.Count, WarmupMissing: s.missing, Start: "warm"}
	if w.Cold {
		res.Start = "cold"
	}
	s.gen++
	r := newRecorder(s.gen, s.n, origins(w))
	buf := filler(w.Size, w.Seed)

	res.Load = loadAverage()
	smp := startSampler(s.baseline)
	var lo0b, lo0p uint64
	if w.Loopback != nil {
		var err error
		if lo0b, lo0p, err = w.Loopback(); err != nil {
			smp.stop()
			return res, err
		}
	}
	wire0 := s.cluster.Wire()
	pc, counts := s.cluster.(PayloadCounter)
	var del0, dup0, gr0 uint64
	if counts {
		del0, dup0, gr0 = pc.Payloads()
	}
	cpu0 := cpuTime()
	if w.CPUProfile != nil {
		if err := pprof.StartCPUProfile(w.CPUProfile); err != nil {
			smp.stop()
			return res, err
		}
	}
	s.current.Store(r)
	p := newPacer(w.Rate)
	first, last, err := p.run(ctx, w.Count, func(k int) error {
		r.payload(buf, k)
		r.publishing(k)
		return s.cluster.Publish(ctx, r.origin[k], buf)
	})
	if err == nil {
		err = wait(ctx, r.done, w.drain())
		if err != nil && ctx.Err() == nil {
			err = nil // missing deliveries are a result, not a failure
		}
	}
	end := time.Now()
	if w.CPUProfile != nil {
		pprof.StopCPUProfile()
	}
	cpu := cpuTime() - cpu0
	wire1 := s.cluster.Wire()
	res.RMR = -1
	if counts {
		del1, dup1, gr1 := pc.Payloads()
		res.RMR = ratio(float64(dup1-dup0), float64(del1-del0))
		res.Grafts = gr1 - gr0
	}
	var lo1b, lo1p uint64
	if w.Loopback != nil && err == nil {
		lo1b, lo1p, err = w.Loopback()
	}
	peakHeap, peakG := smp.stop()
	if err != nil {
		return res, err
	}
	runtime.GC()
	res.HeapAfterGC = heapInuse()
	if w.HeapProfile != nil {
		if err := pprof.Lookup("heap").WriteTo(w.HeapProfile, 0); err != nil {
			return res, err
		}
	}
	lat := r.summary()

	res.AchievedRate = achievedRate(w.Count, first, last, w.Rate)
	res.Deliveries, res.Expected, res.Duplicates = lat.Deliveries, lat.Expected, lat.Duplicates
	res.DeliveryRatio = ratio(float64(lat.Deliveries), float64(lat.Expected))
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	res.LatencyP50, res.LatencyP99, res.LatencyMax = ms(lat.P50), ms(lat.P99), ms(lat.Max)
	res.LastP50, res.LastP99 = ms(lat.LastP50), ms(lat.LastP99)
	res.WireBytes, res.WirePackets = wire1.Bytes-wire0.Bytes, wire1.Packets-wire0.Packets
	res.WirePerIdealByte = wirePerIdealByte(res.WireBytes, w.Count, s.n, w.Size)
	res.PacketsPerBroadcast = ratio(float64(res.WirePackets), float64(w.Count))
	if w.Loopback != nil {
		lb := &LoopbackCount{Bytes: lo1b - lo0b, Packets: lo1p - lo0p}
		lb.PerIdealByte = wirePerIdealByte(lb.Bytes, w.Count, s.n, w.Size)
		lb.PacketsPerBroadcast = ratio(float64(lb.Packets), float64(w.Count))
		res.Loopback = lb
	}
	res.CPUTotal = ms(cpu)
	res.CPUPerBroadcast = res.CPUTotal / float64(w.Count)
	res.Goroutines = peakG
	res.HeapPeak = peakHeap
	res.Seconds = end.Sub(first).Seconds()
	return res, nil
}

// RunColdWarm starts d and measures the workload twice on the same nodes:
// first cold, from the first broadcast after the start, then, after a
// warm-up, warm. It closes d at the end. w.Cold is ignored.
func RunColdWarm(ctx context.Context, d Driver, w Workload) (cold, warm Result, err error) {
	if err := w.check(); err != nil {
		return Result{}, Result{}, err
	}
	w.Cold = true
	s, err := startSystem(ctx, d, w, w.Size)
	if err != nil {
		return Result{System: d.Name(), Start: "cold"}, Result{System: d.Name(), Start: "warm"}, err
	}
	defer func() {
		if cerr := s.close(); cerr != nil && err == nil {
			err = fmt.Errorf("%s: close: %w", d.Name(), cerr)
		}
	}()
	// The cold window's broadcasts must not count as the warm one's: a
	// CPU profile covers the warm window only.
	cw := w
	cw.CPUProfile, cw.HeapProfile = nil, nil
	if cold, err = s.measure(ctx, cw); err != nil {
		return cold, Result{System: d.Name(), Start: "warm"}, err
	}
	if err := s.warmUp(ctx, w.Size); err != nil {
		return cold, Result{System: d.Name(), Start: "warm"}, fmt.Errorf("%s: warm-up: %w", d.Name(), err)
	}
	w.Cold = false
	warm, err = s.measure(ctx, w)
	return cold, warm, err
}

// Run starts d, warms it up unless w.Cold, runs the workload once and
// closes it.
func Run(ctx context.Context, d Driver, w Workload) (Result, error) {
	if err := w.check(); err != nil {
		return Result{}, err
	}
	s, err := startSystem(ctx, d, w, w.Size)
	if err != nil {
		return Result{System: d.Name()}, err
	}
	res, err := s.measure(ctx, w)
	if cerr := s.close(); cerr != nil && err == nil {
		err = fmt.Errorf("%s: close: %w", d.Name(), cerr)
	}
	return res, err
}

// sampler watches the heap and the goroutines while a run lasts.
type sampler struct {
	done     chan struct{}
	finished chan struct{}
	heap     uint64
	g        int
	baseline int
	once     sync.Once
}

func startSampler(baseline int) *sampler {
	s := &sampler{done: make(chan struct{}), finished: make(chan struct{}), baseline: baseline}
	s.sample()
	go func() {
		defer close(s.finished)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-s.done:
				return
			case <-t.C:
				s.sample()
			}
		}
	}()
	return s
}

func (s *sampler) sample() {
	s.heap = max(s.heap, heapInuse())
	// The sampler's own goroutine is not the system's.
	s.g = max(s.g, runtime.NumGoroutine()-s.baseline-1)
}

// stop ends the sampling and returns the peak heap in use and the peak
// goroutines above the baseline.
func (s *sampler) stop() (heap uint64, goroutines int) {
	s.once.Do(func() { close(s.done) })
	<-s.finished
	s.sample()
	return s.heap, max(s.g, 0)
}

// heapInuse is runtime.MemStats.HeapInuse, read without stopping the world.
func heapInuse() uint64 {
	ss := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
	}
	metrics.Read(ss)
	var sum uint64
	for _, s := range ss {
		if s.Value.Kind() == metrics.KindUint64 {
			sum += s.Value.Uint64()
		}
	}
	return sum
}

var errNoSystems = errors.New("bench: no systems to run")

// loadAverage is the one-minute load average from /proc/loadavg, 0 where
// there is none.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}
