package sim

import (
	"time"
)

// What a run returns: per-broadcast results, summaries, totals, progress.

// Progress reports a run's advance.
type Progress struct {
	Protocol    Protocol      // the protocol running
	Sent, Total int           // broadcasts sent so far, of Total
	Virtual     time.Duration // simulated time
	Events      uint64        // events processed
}

// BroadcastResult is what one broadcast did. The measures are the paper's,
// computed as DESIGN.md says: reliability is the share of correct nodes that
// delivered (the origin counts as delivered), RMR is payload messages
// received / (nodes that delivered - 1) - 1, LDH the largest hop count of a
// delivery.
type BroadcastResult struct {
	Index  int   `json:"index"`
	Warmup bool  `json:"warmup"`
	Origin int32 `json:"origin"`
	// SentAt is the virtual time of the broadcast since the run's start.
	SentAtMS float64 `json:"sent_at_ms"`
	// Correct nodes were up from the broadcast to Settle after it;
	// Delivered of them have the message (the origin included).
	Correct     int     `json:"correct"`
	Delivered   int     `json:"delivered"`
	Reliability float64 `json:"reliability"`
	// Prompt is the share of correct nodes that delivered within Interval
	// of the broadcast, before the next one was sent: reliability without
	// the slow recoveries.
	Prompt float64 `json:"prompt"`
	RMR    float64 `json:"rmr"`
	LDH    int     `json:"ldh"`
	// Payloads counts payload messages received (first copies, duplicates
	// and graft replies, at any node).
	Payloads int64 `json:"payloads"`
	// Control counts control messages sent between this broadcast and the
	// next (IHave, Graft, Prune and exchange frames), by kind in the
	// fields after it.
	Control  int64 `json:"control"`
	IHave    int64 `json:"ihave"`
	Graft    int64 `json:"graft"`
	Prune    int64 `json:"prune"`
	Exchange int64 `json:"exchange"`
	// LastDeliveryMS is the time from the broadcast to its last delivery.
	LastDeliveryMS float64 `json:"last_delivery_ms"`
	// Side is the origin's side ("A" or "B") in the Partition and Backlog
	// scenarios; Cut marks a broadcast sent during the cut.
	Side string `json:"side,omitempty"`
	Cut  bool   `json:"cut,omitempty"`
	// Hops[i] is node i's delivery hop count, -1 if it did not deliver
	// (0 for the origin); only with Config.RecordHops.
	Hops []int32 `json:"-"`
}

// Summary condenses the measured (not warm-up) broadcasts of a run.
type Summary struct {
	Measured        int     `json:"measured"`
	ReliabilityMean float64 `json:"reliability_mean"`
	ReliabilityMin  float64 `json:"reliability_min"`
	PromptMean      float64 `json:"prompt_mean"`
	PromptMin       float64 `json:"prompt_min"`
	FullyReliable   int     `json:"fully_reliable"` // broadcasts every correct node delivered
	// ReliableFrom is the first measured broadcast (index into the measured
	// ones) from which every broadcast reached every correct node, -1 if the
	// last one did not.
	ReliableFrom       int     `json:"reliable_from"`
	RMRMean            float64 `json:"rmr_mean"`
	RMRMax             float64 `json:"rmr_max"`
	LDHMean            float64 `json:"ldh_mean"`
	LDHMax             int     `json:"ldh_max"`
	PayloadsMean       float64 `json:"payloads_mean"`
	ControlMean        float64 `json:"control_mean"`
	LastDeliveryMeanMS float64 `json:"last_delivery_mean_ms"`
}

// Window summarizes measured broadcasts [From, To) (indices among the
// measured ones).
type Window struct {
	From            int     `json:"from"`
	To              int     `json:"to"`
	ReliabilityMin  float64 `json:"reliability_min"`
	RMRMean         float64 `json:"rmr_mean"`
	RMRMax          float64 `json:"rmr_max"`
	LDHMean         float64 `json:"ldh_mean"`
	LDHMax          int     `json:"ldh_max"`
	GraftsMean      float64 `json:"grafts_mean"`
	PayloadsMean    float64 `json:"payloads_mean"`
	LastDeliveryMax float64 `json:"last_delivery_max_ms"`
}

// CutSummary is what a cut (Partition, Backlog) did. Times are virtual,
// from the heal.
type CutSummary struct {
	SideA    int     `json:"side_a"` // nodes on side A
	SideB    int     `json:"side_b"` // nodes on side B
	CutAtMS  float64 `json:"cut_at_ms"`
	HealAtMS float64 `json:"heal_at_ms"`
	// During counts the broadcasts sent during the cut; Complete of them
	// reached every correct node by the end of the run, InCache within the
	// engine's MessageCacheTTL of being sent (while still cached).
	During   int `json:"during"`
	Complete int `json:"complete"`
	InCache  int `json:"in_cache"`
	// NeverRecovered counts the measured broadcasts (any, not only those of
	// the cut) that some correct node never delivered; Lost the missing
	// (broadcast, node) deliveries.
	NeverRecovered int `json:"never_recovered"`
	Lost           int `json:"lost"`
	// RecoveryMS is from the heal to the last delivery of a broadcast sent
	// before the heal, once all of them were complete (-1 if some never
	// was).
	RecoveryMS float64 `json:"recovery_ms"`
	// ReliableAfterMS is when (from the heal) the first broadcast was sent
	// from which every later one reached every correct node; -1 if the
	// last did not, 0 if there was none after the heal and RecoveryMS
	// says all.
	ReliableAfterMS float64 `json:"reliable_after_ms"`
	// AfterHeal counts the broadcasts sent after the heal, and
	// AfterHealReliabilityMin is their worst reliability.
	AfterHeal               int     `json:"after_heal"`
	AfterHealReliabilityMin float64 `json:"after_heal_reliability_min"`
	// CrossLinks counts, at the end, the eager and lazy links from a node
	// to a node of the other side (Plumtree), summed over the nodes.
	CrossLinks int `json:"cross_links"`
}

// Totals counts a whole run's traffic.
type Totals struct {
	Events        uint64 `json:"events"`
	PayloadsSent  int64  `json:"payloads_sent"`
	ControlSent   int64  `json:"control_sent"`
	DatagramsLost int64  `json:"datagrams_lost"`
	// CutDropped counts messages dropped by the cut (Partition, Backlog).
	CutDropped  int64 `json:"cut_dropped,omitempty"`
	ToDeadNodes int64 `json:"to_dead_nodes"`
	Failed      int   `json:"failed"`
	Joined      int   `json:"joined"`
	// FinalEagerMean is the mean eager-set size of the live nodes at the
	// end (Plumtree only): about 2 when the tree has formed.
	FinalEagerMean float64 `json:"final_eager_mean"`
}

// Perf is how the run used the machine. It varies between runs and is kept
// out of the JSON and CSV so that those stay byte-identical for a seed.
type Perf struct {
	Wall time.Duration // wall-clock time of the run
	// HeapPerNodeSetup and HeapPerNodeEnd are the live heap (after a GC)
	// attributed to the run, divided by the node count, once the cluster is
	// built and at the end of the run.
	HeapPerNodeSetup, HeapPerNodeEnd uint64
}

// Result is one run.
type Result struct {
	Protocol   Protocol          `json:"protocol"`   // Plumtree or Flood
	Broadcasts []BroadcastResult `json:"broadcasts"` // each broadcast, warm-up included
	Summary    Summary           `json:"summary"`    // over the measured broadcasts
	// Windows summarize the measured broadcasts Config.Window at a time.
	Windows []Window `json:"windows,omitempty"`
	// Cut is what the cut did (Partition and Backlog).
	Cut    *CutSummary `json:"cut,omitempty"`
	Totals Totals      `json:"totals"` // the whole run's traffic
	Perf   Perf        `json:"-"`      // time and memory; not in JSON or CSV
}
