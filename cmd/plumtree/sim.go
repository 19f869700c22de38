package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/plumtree-go/plumtree/gossip"
	"github.com/plumtree-go/plumtree/internal/cli"
	"github.com/plumtree-go/plumtree/sim"
	"github.com/plumtree-go/plumtree/stack"
)

// simCmd runs `plumtree sim`: the engine at scale on a simulated network
// with virtual time, Plumtree against flooding. The table (or the JSON or
// CSV written to "-") goes to stdout, progress and timings to stderr.
func simCmd(args []string, stdout, stderr io.Writer) error {
	fs := cli.FlagSet("sim", "Runs the protocol engine at scale on a simulated network with virtual time,\nPlumtree against flooding, and prints reliability, RMR and last delivery hop\n(the paper's measures) for each. The same seed gives the same output.", stderr)
	nodes := fs.Int("nodes", 1000, "cluster size")
	overlay := fs.String("overlay", "paper", "paper (a few random neighbours per node, as HyParView) or full (every member known, as memberlist)")
	degree := fs.Int("degree", 4, "neighbours per node in the paper overlay")
	scenario := fs.String("scenario", "stable", "stable, failure, churn, loss, partition, backlog or senders")
	split := fs.Float64("split", 0.5, "share of the nodes on side A (scenarios partition and backlog)")
	cutAt := fs.Int("cut-at", 0, "measured broadcast before which the cut begins (0: a fifth of -broadcasts)")
	cutFor := fs.Int("cut-for", 0, "broadcasts sent during the cut (0: a fifth of -broadcasts); -cut-at plus -cut-for equal to -broadcasts: no traffic after the heal")
	watch := fs.Duration("watch", 70*time.Second, "how long the run goes on after the heal at least (virtual)")
	senders := fs.Int("senders", 0, "how many nodes broadcast (scenario senders; 0: every node)")
	window := fs.Int("window", 0, "summarize the measured broadcasts this many at a time (0: 100 for senders, 10 for failure, a twentieth of -broadcasts but at least 10 for partition and backlog, none otherwise)")
	fail := fs.Float64("fail", 0.4, "share of nodes that fail at once (scenario failure)")
	failAt := fs.Int("fail-at", 0, "measured broadcast before which the failure happens (0: a tenth of -broadcasts)")
	churn := fs.Float64("churn", 1, "leave-and-join events per second (scenario churn)")
	loss := fs.Float64("loss", 0, "datagram loss rate on every link (scenario loss: 0.05 if 0)")
	broadcasts := fs.Int("broadcasts", 50, "measured broadcasts")
	warmup := fs.Int("warmup", 10, "warm-up broadcasts before the measured ones (0: none)")
	interval := fs.Duration("interval", 0, "time between broadcasts (virtual; 0: 1s, 20ms for scenario senders)")
	detect := fs.Duration("detect", time.Second, "failure-detection delay (virtual)")
	seed := fs.Uint64("seed", 1, "random seed: the same seed gives the same output")
	preset := fs.String("preset", "", "engine preset: default, lan, wan or large (default: default for -overlay paper, large for full)")
	latency := fs.String("latency", "10ms", "one-way link delay: 10ms, uniform:5ms-15ms, normal:10ms,3ms or lognormal:10ms,0.5")
	jitter := fs.Duration("jitter", 0, "extra uniform random delay per datagram")
	size := fs.Int("size", 64, "payload bytes")
	threshold := fs.Int("threshold", -1, "the engine's OptimizationThreshold (-1: the preset's; 0: off)")
	noFlood := fs.Bool("no-flood", false, "skip the flooding run")
	jsonOut := fs.Bool("json", false, "write the report as JSON to stdout, instead of the table")
	csvOut := fs.String("csv", "", "write one CSV row per protocol and broadcast to this file (- for stdout, instead of the table)")
	plotDir := fs.String("plot", "", "write reliability.svg, rmr.svg and ldh.svg into this directory")
	quiet := fs.Bool("q", false, "no progress on stderr")
	topics := fs.Int("topics", 0, "simulate this many topics (package topic), each node subscribed to -subscribe of them at random; -broadcasts is the total, -warmup per topic (0: 3 per subscriber); scenarios stable and loss")
	subscribe := fs.Int("subscribe", 10, "with -topics: topics per node")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	lat, err := sim.ParseLatency(*latency)
	if err != nil {
		return &cli.UsageError{Err: fmt.Errorf("-latency: %w", err)}
	}
	var eng *gossip.Config
	if *preset != "" {
		c, err := stack.Preset(*preset)
		if err != nil {
			return &cli.UsageError{Err: err}
		}
		eng = &c
	}
	if *threshold >= 0 {
		if eng == nil {
			c := gossip.DefaultConfig()
			if *overlay == string(sim.OverlayFull) {
				c = gossip.LargeClusterConfig()
			}
			eng = &c
		}
		eng.OptimizationThreshold = *threshold
	}
	if *warmup == 0 {
		*warmup = -1 // Config's zero means the default
	}
	cfg := sim.Config{
		Nodes: *nodes, Overlay: sim.Overlay(*overlay), Degree: *degree, Engine: eng,
		Scenario: sim.Scenario(*scenario), Warmup: *warmup, Broadcasts: *broadcasts, Interval: *interval,
		PayloadSize: *size, Latency: lat, Jitter: *jitter, Loss: *loss, FailFraction: *fail, FailAt: *failAt,
		DetectDelay: *detect, ChurnRate: *churn, Seed: *seed,
		Split: *split, CutAt: *cutAt, CutFor: *cutFor, Watch: *watch, Senders: *senders, Window: *window,
	}
	if *topics > 0 {
		if *warmup == -1 {
			cfg.Warmup = 0 // the per-topic default
		}
		return simTopics(sim.TopicsConfig{Config: cfg, Topics: *topics, PerNode: *subscribe}, *jsonOut, stdout)
	}
	if !*quiet {
		cfg.Progress = progressPrinter(stderr)
	}
	rep, err := sim.Compare(cfg, !*noFlood)
	if err != nil {
		return err
	}
	if !*quiet {
		endProgress(stderr)
		for _, r := range rep.Results {
			fmt.Fprintf(stderr, "%s: %d events in %v wall; heap %.1f KiB per node after setup, %.1f KiB at the end\n",
				r.Protocol, r.Totals.Events, r.Perf.Wall.Round(time.Millisecond),
				float64(r.Perf.HeapPerNodeSetup)/1024, float64(r.Perf.HeapPerNodeEnd)/1024)
		}
	}
	table := true
	for _, o := range []struct {
		path  string
		write func(io.Writer) error
	}{{map[bool]string{true: "-"}[*jsonOut], rep.WriteJSON}, {*csvOut, rep.WriteCSV}} {
		switch o.path {
		case "":
			continue
		case "-":
			table = false
			if err := o.write(stdout); err != nil {
				return err
			}
		default:
			var b bytes.Buffer
			if err := o.write(&b); err != nil {
				return err
			}
			if err := os.WriteFile(o.path, b.Bytes(), 0o644); err != nil {
				return err
			}
		}
	}
	if *plotDir != "" {
		if err := rep.WritePlots(*plotDir); err != nil {
			return err
		}
	}
	if table {
		return rep.WriteTable(stdout)
	}
	return nil
}

// simIsTerminal reports whether w is a character device (a terminal).
func simIsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

var progressTTY bool

// progressPrinter reports progress: one line rewritten in place on a
// terminal, otherwise a plain line every tenth of the run.
func progressPrinter(w io.Writer) func(sim.Progress) {
	progressTTY = simIsTerminal(w)
	return func(p sim.Progress) {
		if progressTTY {
			fmt.Fprintf(w, "\r%-8s broadcast %d/%d  virtual %v  events %d   ", p.Protocol, p.Sent, p.Total, p.Virtual, p.Events)
			return
		}
		if step := max(p.Total/10, 1); p.Sent%step == 0 || p.Sent == p.Total || p.Sent == 1 {
			fmt.Fprintf(w, "%s: broadcast %d/%d, virtual %v, %d events\n", p.Protocol, p.Sent, p.Total, p.Virtual, p.Events)
		}
	}
}

func endProgress(w io.Writer) {
	if progressTTY {
		fmt.Fprintln(w)
	}
}
