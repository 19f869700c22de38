package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/plumtree-go/plumtree/internal/cli"
)

// netnsEnv marks the child that reexecInNetns starts inside a network
// namespace of its own.
const netnsEnv = "PLUMTREE_BENCH_IN_NETNS"

// Builtin returns the drivers of this package, in report order: "floor",
// "plumtree/udp+tcp", "plumtree/tcp", "plumtree/quic".
func Builtin() []Driver {
	ds := []Driver{Floor()}
	for _, t := range PlumtreeTransports {
		ds = append(ds, Plumtree(t))
	}
	return ds
}

// options are Main's flags.
type options struct {
	systems           string
	n, size, count    int
	rate              float64
	seed              uint64
	random            bool
	drain             time.Duration
	json              bool
	sweep             bool
	sizes, rates      string
	bound             time.Duration
	stepSeconds       float64
	netns, cpuprofile string
	memprofile        string
	warmup            string
}

// Report is what Main prints with -json.
type Report struct {
	// Wire says where wire bytes come from: the transports' counters only,
	// or those and the loopback of a network namespace of the run's own.
	Wire string `json:"wire"`
	// Results of a single run, one per system.
	Results []Result `json:"results,omitempty"`
	// Sweep results, with -sweep.
	Sweep []SweepResult `json:"sweep,omitempty"`
}

const (
	wireTransports = "wire bytes from the transports' counters only (each system's own framing, without IP/UDP/TCP headers)"
	wireNetns      = "wire bytes from the transports' counters (own framing, no IP/UDP/TCP headers) and, in the lo columns, from the loopback interface of this run's own network namespace (every packet once, IP and UDP/TCP headers included, and all of the process's traffic: membership, acknowledgements)"
)

// Main is the `plumtree bench` command: it parses args (the flags, without
// the command's name), runs the builtin drivers (Builtin) and extra ones one
// after another, and prints a report to stdout; progress goes to stderr.
// Run with -h for the flags. Names given to -systems must be those of the
// builtin or extra drivers; the default is all of them.
//
// As root, with -netns auto (the default) or on, Main runs the whole
// benchmark again in a child process inside a new network namespace, so
// that the loopback interface's counters count the benchmark's traffic and
// nothing else; the child's output is the report. Main reads os.Args for
// that, so call it from a program's main with the process's own arguments.
//
// Main returns an error when a system could not be started or measured;
// deliveries that are missing are a result, shown in the report.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer, extra ...Driver) error {
	var o options
	fs := cli.FlagSet("bench", "", stderr)
	drivers := append(Builtin(), extra...)
	var names []string
	for _, d := range drivers {
		names = append(names, d.Name())
	}
	fs.StringVar(&o.systems, "systems", strings.Join(names, ","), "comma-separated systems to run, in this order")
	fs.IntVar(&o.n, "nodes", 20, "nodes per system")
	fs.IntVar(&o.size, "size", 1024, "payload bytes (at least 8: an 8-byte sequence number, then filler)")
	fs.Float64Var(&o.rate, "rate", 100, "broadcasts per second")
	fs.IntVar(&o.count, "count", 1000, "broadcasts measured (with -sweep: the least per step)")
	fs.Uint64Var(&o.seed, "seed", 1, "random seed (origins with -random-origins, the drivers' randomness)")
	fs.BoolVar(&o.random, "random-origins", false, "pick each broadcast's origin at random (seeded) instead of round-robin")
	fs.DurationVar(&o.drain, "drain", 10*time.Second, "longest wait after the last broadcast for missing deliveries")
	fs.BoolVar(&o.json, "json", false, "write the report as JSON to stdout, instead of the table")
	fs.BoolVar(&o.sweep, "sweep", false, "step the rate up until a system fails, for each size of -sizes")
	fs.StringVar(&o.sizes, "sizes", "64,1024,16384", "payload sizes of the sweep")
	fs.StringVar(&o.rates, "rates", "100,200,500,1000,2000,4000,8000,16000,32000", "rates of the sweep, increasing")
	fs.DurationVar(&o.bound, "bound", 50*time.Millisecond, "sweep: the last-delivery p99 a sustained rate must stay within")
	fs.Float64Var(&o.stepSeconds, "step", 1, "sweep: each step publishes for at least this many seconds")
	fs.StringVar(&o.warmup, "warmup", "on", "on: measure after a warm-up (a broadcast from each node, awaited everywhere); off: measure from the first broadcast after the nodes start (cold); both: a cold row, then a warm-up and a warm row, on the same nodes")
	fs.StringVar(&o.netns, "netns", "auto", "run in a network namespace of its own to count loopback traffic: auto (when root), on, off")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the measured window to this file (one system only, not with -sweep)")
	fs.StringVar(&o.memprofile, "memprofile", "", "write a heap profile, taken at the end of the measured window, to this file (one system only, not with -sweep)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: plumtree bench [flags]\n\nRuns the same paced broadcast workload over each system in turn, on loopback, and\nreports what each costs. Systems: %s.\n\nflags:\n", strings.Join(names, ", "))
		fs.PrintDefaults()
	}
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	selected, err := selectDrivers(drivers, o.systems)
	if err != nil {
		return &cli.UsageError{Err: err}
	}
	w := Workload{Nodes: o.n, Size: o.size, Rate: o.rate, Count: o.count, Seed: int64(o.seed), RandomOrigins: o.random, Drain: o.drain}
	if err := w.check(); err != nil {
		return &cli.UsageError{Err: err}
	}
	switch o.warmup {
	case "on":
	case "off":
		w.Cold = true
	case "both":
		if o.sweep {
			return errors.New("bench: -warmup both measures one run per system; a sweep takes on or off")
		}
	default:
		return fmt.Errorf("bench: -warmup must be on, off or both, not %q", o.warmup)
	}
	var sizes []int
	var rates []float64
	if o.sweep {
		if sizes, err = parseInts(o.sizes); err != nil {
			return cli.Usagef("-sizes: %w", err)
		}
		if rates, err = parseRates(o.rates); err != nil {
			return cli.Usagef("-rates: %w", err)
		}
		if slices.Min(sizes) < seqBytes {
			return cli.Usagef("-sizes: a payload needs at least %d bytes", seqBytes)
		}
	}
	if (o.cpuprofile != "" || o.memprofile != "") && (len(selected) != 1 || o.sweep) {
		return cli.Usagef("-cpuprofile and -memprofile profile one system: name exactly one with -systems, without -sweep")
	}

	inNetns := os.Getenv(netnsEnv) != ""
	switch o.netns {
	case "off":
	case "auto", "on":
		if !inNetns {
			if netnsSupported() {
				fmt.Fprintln(stderr, "running in a network namespace of its own...")
				return reexecInNetns(ctx, stdout, stderr)
			}
			if o.netns == "on" {
				return errors.New("bench: -netns on needs root on Linux")
			}
		}
	default:
		return cli.Usagef("-netns must be auto, on or off, not %q", o.netns)
	}
	rep := Report{Wire: wireTransports}
	if inNetns && o.netns != "off" {
		if err := loopbackUp(); err != nil {
			return err
		}
		w.Loopback = loopbackCounters
		rep.Wire = wireNetns
	}

	var failed []string
	if o.sweep {
		for _, size := range sizes {
			for _, d := range selected {
				sw := w
				sw.Size = size
				r, err := Sweep(ctx, d, sw, rates, o.bound, time.Duration(o.stepSeconds*float64(time.Second)), stderr)
				if err != nil {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					fmt.Fprintf(stderr, "%s: %v\n", d.Name(), err)
					r.Err = err.Error()
					if !errors.Is(err, ErrUnsupported) {
						failed = append(failed, d.Name())
					}
				}
				rep.Sweep = append(rep.Sweep, r)
			}
		}
	} else {
		for _, d := range selected {
			fmt.Fprintf(stderr, "%s: starting %d nodes...\n", d.Name(), w.Nodes)
			dw := w
			var profs []*os.File
			for _, p := range []struct {
				name string
				w    *io.Writer
			}{{o.cpuprofile, &dw.CPUProfile}, {o.memprofile, &dw.HeapProfile}} {
				if p.name == "" {
					continue
				}
				f, err := os.Create(p.name)
				if err != nil {
					return err
				}
				profs = append(profs, f)
				*p.w = f
			}
			var rs []Result
			var err error
			if o.warmup == "both" {
				var cold, warm Result
				cold, warm, err = RunColdWarm(ctx, d, dw)
				rs = []Result{cold, warm}
			} else {
				var r Result
				r, err = Run(ctx, d, dw)
				rs = []Result{r}
			}
			for _, f := range profs {
				if cerr := f.Close(); cerr != nil && err == nil {
					err = cerr
				}
			}
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				fmt.Fprintf(stderr, "%s: %v\n", d.Name(), err)
				// The phase that failed is the first without a measured
				// window; the ones before it keep their rows.
				i := slices.IndexFunc(rs, func(r Result) bool { return r.Count == 0 || r.Seconds == 0 })
				if i < 0 {
					i = len(rs) - 1
				}
				rs = rs[:i+1]
				rs[i].System, rs[i].Err = d.Name(), err.Error()
				if !errors.Is(err, ErrUnsupported) {
					failed = append(failed, d.Name())
				}
			}
			rep.Results = append(rep.Results, rs...)
		}
	}

	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else if o.sweep {
		printSweep(stdout, rep, w, rates, o.bound)
	} else {
		printResults(stdout, rep, w)
	}
	if len(failed) > 0 {
		return fmt.Errorf("bench: %s failed", strings.Join(failed, ", "))
	}
	return nil
}

func selectDrivers(all []Driver, list string) ([]Driver, error) {
	var out []Driver
	seen := map[string]bool{}
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		i := slices.IndexFunc(all, func(d Driver) bool { return d.Name() == name })
		if i < 0 {
			var names []string
			for _, d := range all {
				names = append(names, d.Name())
			}
			return nil, fmt.Errorf("bench: unknown system %q (have %s)", name, strings.Join(names, ", "))
		}
		if !seen[name] {
			seen[name] = true
			out = append(out, all[i])
		}
	}
	if len(out) == 0 {
		return nil, errNoSystems
	}
	return out, nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func parseRates(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil {
			return nil, err
		}
		if !(v > 0) || (len(out) > 0 && v <= out[len(out)-1]) {
			return nil, fmt.Errorf("rates must be positive and increasing, got %q", s)
		}
		out = append(out, v)
	}
	return out, nil
}

// printResults writes one aligned row per system.
func printResults(out io.Writer, rep Report, w Workload) {
	origins := "round-robin"
	if w.RandomOrigins {
		origins = "random"
	}
	start := "after a warm-up"
	switch {
	case slices.ContainsFunc(rep.Results, func(r Result) bool { return r.Start == "cold" }) &&
		slices.ContainsFunc(rep.Results, func(r Result) bool { return r.Start == "warm" }):
		start = "cold (from the first broadcast after the start) then, on the same nodes, warm (after a warm-up)"
	case w.Cold:
		start = "cold (from the first broadcast after the start, no warm-up)"
	}
	fmt.Fprintf(out, "%d nodes, %d-byte payloads, %g/s, %d broadcasts from %s origins, %s; seed %d\n",
		w.Nodes, w.Size, w.Rate, w.Count, origins, start, w.Seed)
	fmt.Fprintf(out, "%s\n\n", rep.Wire)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	lo := rep.Wire == wireNetns
	hdr := "system\tstart\tdelivered\tdup\trmr\tgrafts\tp50 ms\tp99 ms\tmax ms\tlast p50\tlast p99\twire/B\tpkts/bc"
	if lo {
		hdr += "\tlo/B\tlo pkts/bc"
	}
	hdr += "\tcpu ms/bc\tgoroutines\theap peak MB\theap gc MB\tgc MB/node\trate/s\tload\t"
	fmt.Fprintln(tw, hdr)
	for _, r := range rep.Results {
		if r.Err != "" {
			fmt.Fprintf(tw, "%s\t%s\tfailed (below)%s\t\n", r.System, r.Start, strings.Repeat("\t-", strings.Count(hdr, "\t")-3))
			continue
		}
		rmr := "-"
		if r.RMR >= 0 {
			rmr = fmt.Sprintf("%.4f", r.RMR)
		}
		row := fmt.Sprintf("%s\t%s\t%.4f\t%d\t%s\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.3f\t%.1f",
			r.System, r.Start, r.DeliveryRatio, r.Duplicates, rmr, r.Grafts, r.LatencyP50, r.LatencyP99, r.LatencyMax, r.LastP50, r.LastP99,
			r.WirePerIdealByte, r.PacketsPerBroadcast)
		if lo {
			if r.Loopback != nil {
				row += fmt.Sprintf("\t%.3f\t%.1f", r.Loopback.PerIdealByte, r.Loopback.PacketsPerBroadcast)
			} else {
				row += "\t-\t-"
			}
		}
		row += fmt.Sprintf("\t%.3f\t%d\t%.1f\t%.1f\t%.2f\t%.0f\t%.1f\t", r.CPUPerBroadcast, r.Goroutines,
			float64(r.HeapPeak)/(1<<20), float64(r.HeapAfterGC)/(1<<20), float64(r.HeapAfterGC)/(1<<20)/float64(w.Nodes),
			r.AchievedRate, r.Load)
		fmt.Fprintln(tw, row)
	}
	tw.Flush()
	for _, r := range rep.Results {
		if r.Err != "" {
			fmt.Fprintf(out, "%s failed: %s\n", r.System, r.Err)
		}
		if r.WarmupMissing > 0 {
			fmt.Fprintf(out, "%s: %d warm-up deliveries never arrived (the run went on)\n", r.System, r.WarmupMissing)
		}
	}
	fmt.Fprintln(out, "\nstart: cold is measured from the first broadcast after the nodes started (connections and tree still to")
	fmt.Fprintln(out, "form), warm after a warm-up (one broadcast from each node, awaited everywhere, then 100 ms of quiet);")
	fmt.Fprintln(out, "delivered: share of (broadcasts x (nodes-1)) deliveries; dup: deliveries of a message a node already had;")
	fmt.Fprintln(out, "rmr: payloads a node received again / payloads received first, in the window (0 is a tree); grafts: sent then;")
	fmt.Fprintln(out, "p50/p99/max: publish to each delivery; last p50/p99: publish to the last node's delivery, over messages;")
	fmt.Fprintln(out, "wire/B: bytes sent / (broadcasts x (nodes-1) x size); pkts/bc: datagrams and frames sent per broadcast;")
	fmt.Fprintln(out, "cpu ms/bc: process CPU (user+sys, all nodes and the harness) per broadcast; goroutines: peak above the")
	fmt.Fprintln(out, "count before the system started; heap: peak HeapInuse during the run, and after a GC at its end")
	fmt.Fprintln(out, "(all nodes and the harness; gc MB/node divides it by the nodes, as one node per process would see it);")
	fmt.Fprintln(out, "rate/s: the publication rate achieved; load: the machine's 1-minute load average as the run began.")
}
