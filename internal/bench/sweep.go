package bench

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// SweepResult is a system's sustainable rate at one payload size.
type SweepResult struct {
	System string `json:"system"`
	Nodes  int    `json:"nodes"`
	Size   int    `json:"size_bytes"`
	// Sustainable is the highest rate of the sweep at which every delivery
	// arrived, the last-delivery p99 stayed within the bound and publishing
	// kept up (at least 90% of the rate); 0 if none did.
	Sustainable float64 `json:"sustainable_per_s"`
	// Stop says why the sweep stopped.
	Stop string `json:"stopped_because"`
	// Steps are the measured runs, one per rate tried.
	Steps []Result `json:"steps"`
	Err   string   `json:"error,omitempty"`
}

// sustained returns "" if r sustained its rate, and otherwise why not.
func sustained(r Result, bound time.Duration) string {
	switch {
	case r.DeliveryRatio < 1:
		return fmt.Sprintf("delivery %.4f at %g/s", r.DeliveryRatio, r.Rate)
	case r.LastP99 > float64(bound)/float64(time.Millisecond):
		return fmt.Sprintf("last-delivery p99 %.1f ms > %v at %g/s", r.LastP99, bound, r.Rate)
	case r.AchievedRate < 0.9*r.Rate:
		return fmt.Sprintf("publishing reached %.0f/s of %g/s", r.AchievedRate, r.Rate)
	}
	return ""
}

// Sweep starts d once with payloads of w.Size, warms it up, then runs the
// workload at each of rates in turn (each step at least w.Count broadcasts
// and at least step long) until one is not sustained (see SweepResult).
// Each step's summary goes to progress.
func Sweep(ctx context.Context, d Driver, w Workload, rates []float64, bound, step time.Duration, progress io.Writer) (SweepResult, error) {
	sr := SweepResult{System: d.Name(), Nodes: w.Nodes, Size: w.Size, Stop: "the top of the rates"}
	if err := w.check(); err != nil {
		return sr, err
	}
	fmt.Fprintf(progress, "%s, %d bytes: starting %d nodes...\n", d.Name(), w.Size, w.Nodes)
	s, err := startSystem(ctx, d, w, w.Size)
	if err != nil {
		return sr, err
	}
	defer s.close()
	for _, rate := range rates {
		sw := w
		sw.Rate = rate
		sw.Count = max(w.Count, int(rate*step.Seconds()))
		r, err := s.measure(ctx, sw)
		if err != nil {
			return sr, err
		}
		sr.Steps = append(sr.Steps, r)
		why := sustained(r, bound)
		fmt.Fprintf(progress, "  %g/s: achieved %.0f/s, delivered %.4f, last p99 %.2f ms, cpu %.3f ms/bc, wire %.3f/B  %s\n",
			rate, r.AchievedRate, r.DeliveryRatio, r.LastP99, r.CPUPerBroadcast, r.WirePerIdealByte, why)
		if why != "" {
			sr.Stop = why
			break
		}
		sr.Sustainable = rate
	}
	return sr, nil
}

// printSweep writes each system's sustainable rate per size, then the steps.
func printSweep(out io.Writer, rep Report, w Workload, rates []float64, bound time.Duration) {
	fmt.Fprintf(out, "sweep: %d nodes, rates %v/s stepped up until delivery < 100%%, last-delivery p99 > %v, or publishing < 90%% of the rate\n", w.Nodes, rates, bound)
	fmt.Fprintf(out, "%s\n\n", rep.Wire)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "system\tsize B\tsustainable/s\t stopped because\t")
	for _, r := range rep.Sweep {
		why := r.Stop
		if r.Err != "" {
			why = "failed: " + strings.Join(strings.Fields(r.Err), " ")
		}
		fmt.Fprintf(tw, "%s\t%d\t%g\t %s\t\n", r.System, r.Size, r.Sustainable, why)
	}
	tw.Flush()
	fmt.Fprintln(out)
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "system\tsize B\trate/s\tachieved/s\tdelivered\tp99 ms\tlast p99\twire/B\tpkts/bc\tcpu ms/bc\theap peak MB\tload\t")
	for _, r := range rep.Sweep {
		for _, st := range r.Steps {
			fmt.Fprintf(tw, "%s\t%d\t%g\t%.0f\t%.4f\t%.2f\t%.2f\t%.3f\t%.1f\t%.3f\t%.1f\t%.1f\t\n", st.System, st.Size, st.Rate, st.AchievedRate,
				st.DeliveryRatio, st.LatencyP99, st.LastP99, st.WirePerIdealByte, st.PacketsPerBroadcast, st.CPUPerBroadcast, float64(st.HeapPeak)/(1<<20), st.Load)
		}
	}
	tw.Flush()
}
