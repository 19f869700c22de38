package sim

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// RunInfo describes a run's configuration in the report.
type RunInfo struct {
	Nodes        int      `json:"nodes"`
	Overlay      Overlay  `json:"overlay"`
	Degree       int      `json:"degree,omitempty"`
	EagerFanout  int      `json:"eager_fanout"`
	LazyFanout   int      `json:"lazy_fanout"`
	Threshold    int      `json:"optimization_threshold"`
	Scenario     Scenario `json:"scenario"`
	Warmup       int      `json:"warmup"`
	Broadcasts   int      `json:"broadcasts"`
	IntervalMS   float64  `json:"interval_ms"`
	SettleMS     float64  `json:"settle_ms"`
	PayloadSize  int      `json:"payload_size"`
	Latency      string   `json:"latency"`
	JitterMS     float64  `json:"jitter_ms"`
	Loss         float64  `json:"loss"`
	FailFraction float64  `json:"fail_fraction,omitempty"`
	FailAt       int      `json:"fail_at,omitempty"`
	DetectMS     float64  `json:"detect_ms"`
	ChurnRate    float64  `json:"churn_rate,omitempty"`
	Split        float64  `json:"split,omitempty"`
	CutAt        int      `json:"cut_at,omitempty"`
	CutFor       int      `json:"cut_for,omitempty"`
	WatchMS      float64  `json:"watch_ms,omitempty"`
	Senders      int      `json:"senders,omitempty"`
	Window       int      `json:"window,omitempty"`
	Seed         uint64   `json:"seed"`
}

// Report is a comparison: the same scenario, seed and network under
// Plumtree and (unless left out) under flooding.
type Report struct {
	Config  RunInfo   `json:"config"`  // the run's parameters, defaults filled in
	Results []*Result `json:"results"` // Plumtree first, then flooding if run
}

// Compare runs cfg under Plumtree and, if flood is true, under Flood with
// the same seed: the same overlay, origins, failures, joins and link
// delays.
func Compare(cfg Config, flood bool) (*Report, error) {
	cfg = cfg.WithDefaults()
	cfg.Protocol = Plumtree
	p, err := Run(cfg)
	if err != nil {
		return nil, err
	}
	rep := &Report{Config: info(cfg), Results: []*Result{p}}
	if flood {
		cfg.Protocol = Flood
		f, err := Run(cfg)
		if err != nil {
			return nil, err
		}
		rep.Results = append(rep.Results, f)
	}
	return rep, nil
}

func info(c Config) RunInfo {
	e := c.engineConfig()
	ri := RunInfo{Nodes: c.Nodes, Overlay: c.Overlay, EagerFanout: e.EagerFanout, LazyFanout: e.LazyFanout, Threshold: e.OptimizationThreshold,
		Scenario: c.Scenario, Warmup: c.Warmup, Broadcasts: c.Broadcasts, IntervalMS: ms(int64(c.Interval)),
		SettleMS: ms(int64(c.Settle)), PayloadSize: c.PayloadSize, Latency: c.Latency.String(),
		JitterMS: ms(int64(c.Jitter)), Loss: c.Loss, DetectMS: ms(int64(c.DetectDelay)), Seed: c.Seed}
	if c.Overlay == OverlayPaper {
		ri.Degree = c.Degree
	}
	switch c.Scenario {
	case Failure:
		ri.FailFraction, ri.FailAt = c.FailFraction, c.FailAt
	case Churn:
		ri.ChurnRate = c.ChurnRate
	case Partition, Backlog:
		ri.Split, ri.CutAt, ri.CutFor, ri.WatchMS = c.Split, c.CutAt, c.CutFor, ms(int64(c.Watch))
	case Senders:
		ri.Senders = c.Senders
	}
	ri.Window = c.Window
	return ri
}

// WriteJSON writes the report as indented JSON. It is byte-identical for
// the same Config.
func (r *Report) WriteJSON(w io.Writer) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// WriteCSV writes one row per protocol and broadcast.
func (r *Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"protocol", "index", "warmup", "origin", "sent_at_ms", "correct", "delivered",
		"reliability", "prompt", "rmr", "ldh", "payloads", "control", "ihave", "graft", "prune", "exchange", "last_delivery_ms"})
	for _, res := range r.Results {
		for _, b := range res.Broadcasts {
			cw.Write([]string{string(res.Protocol), strconv.Itoa(b.Index), strconv.FormatBool(b.Warmup),
				strconv.Itoa(int(b.Origin)), ff(b.SentAtMS, 3), strconv.Itoa(b.Correct), strconv.Itoa(b.Delivered),
				ff(b.Reliability, 6), ff(b.Prompt, 6), ff(b.RMR, 6), strconv.Itoa(b.LDH), i64(b.Payloads), i64(b.Control),
				i64(b.IHave), i64(b.Graft), i64(b.Prune), i64(b.Exchange), ff(b.LastDeliveryMS, 3)})
		}
	}
	cw.Flush()
	return cw.Error()
}

func msOrNever(x float64) string {
	if x < 0 {
		return "never"
	}
	return time.Duration(x * 1e6).Round(time.Millisecond).String()
}

func ff(x float64, prec int) string { return strconv.FormatFloat(x, 'f', prec, 64) }
func i64(x int64) string            { return strconv.FormatInt(x, 10) }

// WriteTable writes a per-broadcast table and the summaries for a terminal.
func (r *Report) WriteTable(w io.Writer) error {
	c := r.Config
	var b strings.Builder
	fmt.Fprintf(&b, "plumtree sim: %d nodes, %s overlay", c.Nodes, c.Overlay)
	if c.Degree > 0 {
		fmt.Fprintf(&b, " (degree %d)", c.Degree)
	}
	if c.Threshold > 0 {
		fmt.Fprintf(&b, ", optimization threshold %d", c.Threshold)
	}
	fmt.Fprintf(&b, ", eager/lazy fanout %d/%d, scenario %s, %d warm-up + %d broadcasts every %v, latency %s, loss %.1f%%, seed %d\n",
		c.EagerFanout, c.LazyFanout, c.Scenario, c.Warmup, c.Broadcasts, time.Duration(c.IntervalMS*1e6), c.Latency, c.Loss*100, c.Seed)
	switch c.Scenario {
	case Failure:
		fmt.Fprintf(&b, "failure: %.0f%% of the nodes fail at once before measured broadcast %d; detection after %v\n",
			c.FailFraction*100, c.FailAt, time.Duration(c.DetectMS*1e6))
	case Churn:
		fmt.Fprintf(&b, "churn: %g leave-and-join events per second after the warm-up; detection after %v\n",
			c.ChurnRate, time.Duration(c.DetectMS*1e6))
	case Partition, Backlog:
		aware := "the membership reports the other side failed, then back, after"
		if c.Scenario == Backlog {
			aware = "the membership unaware; detection delay unused:"
		}
		fmt.Fprintf(&b, "%s: %.0f%% of the nodes on side A, cut before measured broadcast %d for %d broadcasts, run watched %v after the heal; %s %v\n",
			c.Scenario, c.Split*100, c.CutAt, c.CutFor, time.Duration(c.WatchMS*1e6), aware, time.Duration(c.DetectMS*1e6))
	case Senders:
		n := "every node"
		if c.Senders > 0 {
			n = fmt.Sprintf("%d nodes", c.Senders)
		}
		fmt.Fprintf(&b, "senders: origins drawn from %s, jitter %v\n", n, time.Duration(c.JitterMS*1e6))
	}
	b.WriteString("\n")
	b.WriteString("    #  origin |")
	for _, res := range r.Results {
		fmt.Fprintf(&b, " %-8s  reliab.  prompt     RMR  LDH  payloads  control  last ms |", res.Protocol)
	}
	b.WriteString("\n")
	n := 0
	if len(r.Results) > 0 {
		n = len(r.Results[0].Broadcasts)
	}
	for k := range n {
		b0 := r.Results[0].Broadcasts[k]
		mark := " "
		if b0.Warmup {
			mark = "w"
		}
		fmt.Fprintf(&b, "%s%4d  %6d |", mark, b0.Index, b0.Origin)
		for _, res := range r.Results {
			x := res.Broadcasts[k]
			fmt.Fprintf(&b, " %8s  %7.4f %7.4f %7.4f %4d %9d %8d %8.1f |", "", x.Reliability, x.Prompt, x.RMR, x.LDH, x.Payloads, x.Control, x.LastDeliveryMS)
		}
		b.WriteString("\n")
	}
	b.WriteString("(w: warm-up, left out of the summary; reliab.: share of correct nodes that delivered within the settle time; prompt: within the interval)\n\nsummary over the measured broadcasts:\n")
	for _, res := range r.Results {
		s := res.Summary
		from := "never"
		if s.ReliableFrom >= 0 {
			from = fmt.Sprintf("measured broadcast %d on", s.ReliableFrom)
		}
		fmt.Fprintf(&b, "  %-8s reliability mean %.4f min %.4f, %d/%d complete (all complete from %s); prompt mean %.4f min %.4f; RMR mean %.4f max %.4f; LDH mean %.2f max %d; payloads %.0f, control %.0f per broadcast; last delivery %.1f ms\n",
			res.Protocol, s.ReliabilityMean, s.ReliabilityMin, s.FullyReliable, s.Measured, from, s.PromptMean, s.PromptMin,
			s.RMRMean, s.RMRMax, s.LDHMean, s.LDHMax, s.PayloadsMean, s.ControlMean, s.LastDeliveryMeanMS)
	}
	for _, res := range r.Results {
		if len(res.Windows) > 0 {
			fmt.Fprintf(&b, "\n%s per window of %d measured broadcasts:\n     from    to  reliab.min  RMR mean   RMR max  LDH mean  LDH max  grafts  last ms max\n", res.Protocol, c.Window)
			for _, w := range res.Windows {
				fmt.Fprintf(&b, "    %5d %5d  %10.4f  %8.4f  %8.4f  %8.2f  %7d  %6.2f  %11.1f\n",
					w.From, w.To, w.ReliabilityMin, w.RMRMean, w.RMRMax, w.LDHMean, w.LDHMax, w.GraftsMean, w.LastDeliveryMax)
			}
		}
		if cs := res.Cut; cs != nil {
			fmt.Fprintf(&b, "\n%s cut: sides %d/%d, cut at %.0f ms, heal at %.0f ms; %d broadcasts during the cut, %d reached every node, %d of them while cached; %d measured broadcasts never complete (%d deliveries missing); recovery %s after the heal; every broadcast complete from %s after the heal (%d after it, worst reliability %.4f); %d links across the sides at the end\n",
				res.Protocol, cs.SideA, cs.SideB, cs.CutAtMS, cs.HealAtMS, cs.During, cs.Complete, cs.InCache, cs.NeverRecovered, cs.Lost,
				msOrNever(cs.RecoveryMS), msOrNever(cs.ReliableAfterMS), cs.AfterHeal, cs.AfterHealReliabilityMin, cs.CrossLinks)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
