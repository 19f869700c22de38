package bench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
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
	seed              int64
	random            bool
	drain             time.Duration
	json              bool
	sweep             bool
	sizes, rates      string
	bound             time.Duration
	stepSeconds       float64
	netns, cpuprofile string
	memprofile        string
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
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	drivers := append(Builtin(), extra...)
	var names []string
	for _, d := range drivers {
		names = append(names, d.Name())
	}
	fs.StringVar(&o.systems, "systems", strings.Join(names, ","), "comma-separated systems to run, in this order")
	fs.IntVar(&o.n, "n", 20, "nodes per system")
	fs.IntVar(&o.size, "size", 1024, "payload bytes (at least 8: an 8-byte sequence number, then filler)")
	fs.Float64Var(&o.rate, "rate", 100, "broadcasts per second")
	fs.IntVar(&o.count, "count", 1000, "broadcasts measured (with -sweep: the least per step)")
	fs.Int64Var(&o.seed, "seed", 1, "random seed (origins with -random-origins, the drivers' randomness)")
	fs.BoolVar(&o.random, "random-origins", false, "pick each broadcast's origin at random (seeded) instead of round-robin")
	fs.DurationVar(&o.drain, "drain", 10*time.Second, "longest wait after the last broadcast for missing deliveries")
	fs.BoolVar(&o.json, "json", false, "write the report as JSON")
	fs.BoolVar(&o.sweep, "sweep", false, "step the rate up until a system fails, for each size of -sizes")
	fs.StringVar(&o.sizes, "sizes", "64,1024,16384", "payload sizes of the sweep")
	fs.StringVar(&o.rates, "rates", "100,200,500,1000,2000,4000,8000,16000,32000", "rates of the sweep, increasing")
	fs.DurationVar(&o.bound, "bound", 50*time.Millisecond, "sweep: the last-delivery p99 a sustained rate must stay within")
	fs.Float64Var(&o.stepSeconds, "step", 1, "sweep: each step publishes for at least this many seconds")
	fs.StringVar(&o.netns, "netns", "auto", "run in a network namespace of its own to count loopback traffic: auto (when root), on, off")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the measured window to this file (one system only, not with -sweep)")
	fs.StringVar(&o.memprofile, "memprofile", "", "write a heap profile, taken at the end of the measured window, to this file (one system only, not with -sweep)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: plumtree bench [flags]\n\nRuns the same paced broadcast workload over each system in turn, on loopback, and\nreports what each costs. Systems: %s.\n\n", strings.Join(names, ", "))
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench: unexpected arguments %q", fs.Args())
	}
	selected, err := selectDrivers(drivers, o.systems)
	if err != nil {
		return err
	}
	w := Workload{Nodes: o.n, Size: o.size, Rate: o.rate, Count: o.count, Seed: o.seed, RandomOrigins: o.random, Drain: o.drain}
	if err := w.check(); err != nil {
		return err
	}
	var sizes []int
	var rates []float64
	if o.sweep {
		if sizes, err = parseInts(o.sizes); err != nil {
			return fmt.Errorf("bench: -sizes: %w", err)
		}
		if rates, err = parseRates(o.rates); err != nil {
			return fmt.Errorf("bench: -rates: %w", err)
		}
		if slices.Min(sizes) < seqBytes {
			return fmt.Errorf("bench: -sizes: a payload needs at least %d bytes", seqBytes)
		}
	}
	if (o.cpuprofile != "" || o.memprofile != "") && (len(selected) != 1 || o.sweep) {
		return fmt.Errorf("bench: -cpuprofile and -memprofile profile one system: name exactly one with -systems, without -sweep")
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
		return fmt.Errorf("bench: -netns must be auto, on or off, not %q", o.netns)
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
			r, err := Run(ctx, d, dw)
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
				r.System, r.Err = d.Name(), err.Error()
				if !errors.Is(err, ErrUnsupported) {
					failed = append(failed, d.Name())
				}
			}
			rep.Results = append(rep.Results, r)
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
	fmt.Fprintf(out, "%d nodes, %d-byte payloads, %g/s, %d broadcasts from %s origins, after a warm-up; seed %d\n",
		w.Nodes, w.Size, w.Rate, w.Count, origins, w.Seed)
	fmt.Fprintf(out, "%s\n\n", rep.Wire)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	lo := rep.Wire == wireNetns
	hdr := "system\tdelivered\tdup\trmr\tgrafts\tp50 ms\tp99 ms\tmax ms\tlast p50\tlast p99\twire/B\tpkts/bc"
	if lo {
		hdr += "\tlo/B\tlo pkts/bc"
	}
	hdr += "\tcpu ms/bc\tgoroutines\theap peak MB\theap gc MB\tgc MB/node\trate/s\tload\t"
	fmt.Fprintln(tw, hdr)
	for _, r := range rep.Results {
		if r.Err != "" {
			fmt.Fprintf(tw, "%s\tfailed (below)%s\t\n", r.System, strings.Repeat("\t-", strings.Count(hdr, "\t")-2))
			continue
		}
		rmr := "-"
		if r.RMR >= 0 {
			rmr = fmt.Sprintf("%.4f", r.RMR)
		}
		row := fmt.Sprintf("%s\t%.4f\t%d\t%s\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.3f\t%.1f",
			r.System, r.DeliveryRatio, r.Duplicates, rmr, r.Grafts, r.LatencyP50, r.LatencyP99, r.LatencyMax, r.LastP50, r.LastP99,
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
	fmt.Fprintln(out, "\ndelivered: share of (broadcasts x (nodes-1)) deliveries; dup: deliveries of a message a node already had;")
	fmt.Fprintln(out, "rmr: payloads a node received again / payloads received first, in the window (0 is a tree); grafts: sent then;")
	fmt.Fprintln(out, "p50/p99/max: publish to each delivery; last p50/p99: publish to the last node's delivery, over messages;")
	fmt.Fprintln(out, "wire/B: bytes sent / (broadcasts x (nodes-1) x size); pkts/bc: datagrams and frames sent per broadcast;")
	fmt.Fprintln(out, "cpu ms/bc: process CPU (user+sys, all nodes and the harness) per broadcast; goroutines: peak above the")
	fmt.Fprintln(out, "count before the system started; heap: peak HeapInuse during the run, and after a GC at its end")
	fmt.Fprintln(out, "(all nodes and the harness; gc MB/node divides it by the nodes, as one node per process would see it);")
	fmt.Fprintln(out, "rate/s: the publication rate achieved; load: the machine's 1-minute load average as the run began.")
}
