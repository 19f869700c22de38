package sim

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"time"

	"github.com/plumtree-go/plumtree/gossip"
)

// Overlay says which peers a node knows.
type Overlay string

// The overlays.
const (
	// OverlayPaper gives each node a small random set of neighbours (Degree,
	// symmetric), as the paper's HyParView active view; the engine's member
	// list is that set, every neighbour starts eager, and a node that loses
	// neighbours is given random live replacements once it detects the loss.
	OverlayPaper Overlay = "paper"
	// OverlayFull gives every node the full membership, as memberlist does;
	// the engine samples its eager and lazy sets within its caps.
	OverlayFull Overlay = "full"
)

// Scenario is what happens to the cluster during a run.
type Scenario string

// The scenarios.
const (
	// Stable: warm-up broadcasts, then broadcasts from random origins.
	Stable Scenario = "stable"
	// Failure: as Stable, but FailFraction of the nodes fail at once just
	// before measured broadcast FailAt; their neighbours learn of it after
	// the failure-detection delay.
	Failure Scenario = "failure"
	// Churn: after the warm-up, ChurnRate times a second one random node
	// fails and a new one joins.
	Churn Scenario = "churn"
	// Loss: as Stable with datagram loss on every link (Loss, 5% if unset).
	Loss Scenario = "loss"
	// Partition: the nodes are split in two sides (Split of them on side
	// A) just before measured broadcast CutAt, for CutFor broadcasts. During
	// the cut nothing crosses between the sides, and the membership reports
	// the other side failed on each side (after the detection delay), so
	// each node's view shrinks to its side; origins alternate between the
	// sides. At the heal the links come back and the membership reports the
	// other side back (after the detection delay). Cut reports what crossed.
	Partition Scenario = "partition"
	// Backlog: as Partition, but the membership never notices: links drop
	// everything between the sides and nobody is declared failed. With
	// CutAt+CutFor equal to Broadcasts there is no traffic after the heal.
	Backlog Scenario = "backlog"
	// Senders: as Stable, but the origins are Senders nodes (every node if
	// 0) and the interval defaults to 20 ms, shorter than a dissemination,
	// so broadcasts from many origins overlap in flight; add Jitter.
	// Window (default 100) gives the measures per window of broadcasts.
	Senders Scenario = "senders"
)

// Protocol is the broadcast protocol a run simulates.
type Protocol string

// The protocols.
const (
	// Plumtree runs gossip.Engine on every node.
	Plumtree Protocol = "plumtree"
	// Flood is eager-push-only gossip, the paper's baseline: a node forwards
	// the first copy of a payload to every overlay neighbour but the one it
	// came from, and ignores later copies. On OverlayFull its neighbours are
	// EagerFanout random members per node, made symmetric.
	Flood Protocol = "flood"
)

// Config describes one run. Zero fields take the defaults listed.
type Config struct {
	// Nodes is the cluster size at the start (default 1000).
	Nodes int
	// Overlay is OverlayPaper (default) or OverlayFull.
	Overlay Overlay
	// Degree is the number of neighbours per node on OverlayPaper
	// (default 4).
	Degree int
	// Engine is the protocol configuration (default gossip.DefaultConfig for
	// OverlayPaper, gossip.LargeClusterConfig for OverlayFull). On
	// OverlayPaper the fanout and cap fields are overridden so that every
	// neighbour starts eager: EagerFanout and LazyFanout become Degree, the
	// caps twice Degree.
	Engine *gossip.Config
	// Protocol is Plumtree (default) or Flood.
	Protocol Protocol
	// Scenario is Stable (default), Failure, Churn or Loss.
	Scenario Scenario
	// Warmup broadcasts come first and are reported but left out of the
	// summary (default 10; negative means none).
	Warmup int
	// Broadcasts is the number of measured broadcasts (default 50).
	Broadcasts int
	// Interval separates broadcasts (default 1s).
	Interval time.Duration
	// Settle is how long a broadcast is watched: a node is correct for a
	// broadcast if it was up when the broadcast was sent and still up Settle
	// later, and the run ends Settle after the last broadcast (default: the
	// engine's announcement interval plus every graft and backoff).
	Settle time.Duration
	// PayloadSize is the broadcast payload's size in bytes (default 64). A
	// payload up to the engine's GossipDatagramMaxSize travels as a datagram
	// (subject to Loss), a larger one by the reliable stream path.
	PayloadSize int
	// Latency is the one-way link delay (default const:10ms).
	Latency Latency
	// Jitter adds a uniform random delay in [0, Jitter) to each datagram.
	// Stream messages keep their link's order.
	Jitter time.Duration
	// Loss is the probability that a datagram (small payloads, IHave) is
	// lost. Stream messages (Graft, Prune, exchanges, large payloads) are
	// reliable.
	Loss float64
	// FailFraction is the share of nodes that fail in the Failure scenario
	// (default 0.4).
	FailFraction float64
	// FailAt is the measured broadcast before which the failure happens
	// (default Broadcasts/10).
	FailAt int
	// DetectDelay is the failure-detection delay: each affected node learns
	// of a failure (and, on OverlayFull, of a join) after a delay drawn
	// uniformly from [DetectDelay, 1.5*DetectDelay) (default 1s).
	DetectDelay time.Duration
	// ChurnRate is the number of leave-and-join events per second in the
	// Churn scenario (default 1).
	ChurnRate float64
	// Split is the share of the nodes on side A in the Partition and
	// Backlog scenarios (default 0.5); the sides are drawn at random.
	Split float64
	// CutAt is the measured broadcast before which the cut begins, and
	// CutFor the number of broadcasts sent during it, half from each side
	// (defaults: Broadcasts/5 each). The heal comes just before measured
	// broadcast CutAt+CutFor, or one interval after the last broadcast.
	CutAt, CutFor int
	// Watch is how long the run goes on after the heal at least (default
	// 70s), so that the backlog of the cut can be recovered.
	Watch time.Duration
	// Senders is the number of nodes broadcasting in the Senders scenario
	// (0: every node).
	Senders int
	// Window, if positive, summarizes the measured broadcasts in windows of
	// this many (Result.Windows), aligned so that a window starts at the
	// failure (FailAt) or the heal (default 100 in the Senders scenario,
	// 10 in Failure, a twentieth of Broadcasts but at least 10 in Partition
	// and Backlog).
	Window int
	// Seed makes the run reproducible: the same Config gives the same
	// Result.
	Seed uint64
	// EngineSeed, if set, gives node i's engine seed (default: derived from
	// Seed and i). The agreement test uses it to reproduce the runner's.
	EngineSeed func(node int) uint64
	// RecordHops keeps every node's delivery hop count per broadcast in
	// BroadcastResult.Hops.
	RecordHops bool
	// Progress, if set, is called as each broadcast is sent.
	Progress func(Progress)

	// payloadHook, if set, sees every payload reception (tests).
	payloadHook func(b, node int32, hops uint32, now int64)
}

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

var base = time.Unix(1_800_000_000, 0).UTC()

// WithDefaults returns c with its zero fields set to the defaults.
func (c Config) WithDefaults() Config {
	if c.Nodes == 0 {
		c.Nodes = 1000
	}
	if c.Overlay == "" {
		c.Overlay = OverlayPaper
	}
	if c.Degree == 0 {
		c.Degree = 4
	}
	if c.Engine == nil {
		var e gossip.Config
		if c.Overlay == OverlayFull {
			e = gossip.LargeClusterConfig()
		} else {
			e = gossip.DefaultConfig()
		}
		c.Engine = &e
	}
	if c.Protocol == "" {
		c.Protocol = Plumtree
	}
	if c.Scenario == "" {
		c.Scenario = Stable
	}
	if c.Warmup == 0 {
		c.Warmup = 10
	} else if c.Warmup < 0 {
		c.Warmup = 0
	}
	if c.Broadcasts == 0 {
		c.Broadcasts = 50
	}
	if c.Interval == 0 {
		c.Interval = time.Second
		if c.Scenario == Senders {
			c.Interval = 20 * time.Millisecond
		}
	}
	if c.Settle == 0 {
		e := c.Engine
		d := e.IHaveInterval + e.GraftTimeout
		for k := range e.GraftMaxRetries + 1 {
			d += min(e.GraftTimeout<<k, e.GraftMaxBackoff)
		}
		c.Settle = d
	}
	if c.PayloadSize == 0 {
		c.PayloadSize = 64
	}
	if c.Latency.Dist == "" {
		c.Latency = Latency{Dist: Constant, A: 10 * time.Millisecond}
	}
	if c.Scenario == Loss && c.Loss == 0 {
		c.Loss = 0.05
	}
	if c.FailFraction == 0 {
		c.FailFraction = 0.4
	}
	if c.FailAt == 0 {
		c.FailAt = c.Broadcasts / 10
	}
	if c.DetectDelay == 0 {
		c.DetectDelay = time.Second
	}
	if c.ChurnRate == 0 {
		c.ChurnRate = 1
	}
	if c.Split == 0 {
		c.Split = 0.5
	}
	if c.CutAt == 0 {
		c.CutAt = c.Broadcasts / 5
	}
	if c.CutFor == 0 {
		c.CutFor = max(c.Broadcasts/5, 1)
	}
	if c.Watch == 0 {
		c.Watch = 70 * time.Second
	}
	if c.Window == 0 {
		switch c.Scenario {
		case Senders:
			c.Window = 100
		case Failure:
			c.Window = 10
		case Partition, Backlog:
			c.Window = max(10, c.Broadcasts/20)
		}
	}
	return c
}

// cutScenario reports whether the scenario cuts the network.
func (c *Config) cutScenario() bool { return c.Scenario == Partition || c.Scenario == Backlog }

func (c *Config) validate() error {
	var errs []error
	if c.Nodes < 2 {
		errs = append(errs, fmt.Errorf("Nodes must be at least 2, is %d", c.Nodes))
	}
	if c.Nodes > math.MaxInt32/2 {
		errs = append(errs, fmt.Errorf("Nodes %d is too many", c.Nodes))
	}
	if c.Overlay != OverlayPaper && c.Overlay != OverlayFull {
		errs = append(errs, fmt.Errorf("unknown overlay %q (paper or full)", c.Overlay))
	}
	if c.Degree < 1 || (c.Overlay == OverlayPaper && c.Degree >= c.Nodes) {
		errs = append(errs, fmt.Errorf("Degree %d must be at least 1 and below Nodes", c.Degree))
	}
	if c.Protocol != Plumtree && c.Protocol != Flood {
		errs = append(errs, fmt.Errorf("unknown protocol %q (plumtree or flood)", c.Protocol))
	}
	switch c.Scenario {
	case Stable, Failure, Churn, Loss, Partition, Backlog, Senders:
	default:
		errs = append(errs, fmt.Errorf("unknown scenario %q (stable, failure, churn, loss, partition, backlog or senders)", c.Scenario))
	}
	if c.cutScenario() {
		if c.Split <= 0 || c.Split >= 1 || int(math.Round(c.Split*float64(c.Nodes))) < 1 || int(math.Round(c.Split*float64(c.Nodes))) >= c.Nodes {
			errs = append(errs, fmt.Errorf("Split %v must leave at least one node on each side", c.Split))
		}
		if c.CutAt < 0 || c.CutFor < 1 || c.CutAt+c.CutFor > c.Broadcasts {
			errs = append(errs, fmt.Errorf("CutAt %d and CutFor %d must fit in Broadcasts %d", c.CutAt, c.CutFor, c.Broadcasts))
		}
		if c.Watch < 0 {
			errs = append(errs, fmt.Errorf("Watch %v must not be negative", c.Watch))
		}
	}
	if c.Senders < 0 || c.Senders > c.Nodes || c.Window < 0 {
		errs = append(errs, fmt.Errorf("Senders %d must be in [0, Nodes] and Window %d not negative", c.Senders, c.Window))
	}
	if c.Broadcasts < 1 || c.Interval <= 0 || c.Settle <= 0 || c.PayloadSize < 1 || c.DetectDelay < 0 || c.Jitter < 0 {
		errs = append(errs, fmt.Errorf("Broadcasts, Interval, Settle and PayloadSize must be positive, DetectDelay and Jitter not negative"))
	}
	if c.Loss < 0 || c.Loss >= 1 {
		errs = append(errs, fmt.Errorf("Loss %v must be in [0, 1)", c.Loss))
	}
	if c.FailFraction < 0 || c.FailFraction >= 1 {
		errs = append(errs, fmt.Errorf("FailFraction %v must be in [0, 1)", c.FailFraction))
	}
	if c.FailAt < 0 || c.FailAt >= c.Broadcasts {
		errs = append(errs, fmt.Errorf("FailAt %d must be in [0, Broadcasts)", c.FailAt))
	}
	if c.ChurnRate <= 0 || c.ChurnRate > 1e6 {
		errs = append(errs, fmt.Errorf("ChurnRate %v must be positive", c.ChurnRate))
	}
	if err := c.Engine.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// engineConfig is the configuration the engines run with.
func (c *Config) engineConfig() gossip.Config {
	e := *c.Engine
	if c.Overlay == OverlayPaper {
		// Paper: every neighbour of the active view starts eager. fill()
		// makes the first EagerFanout members eager; room is left for
		// neighbours that replace failed ones.
		e.EagerFanout, e.LazyFanout = c.Degree, c.Degree
		e.MaxEagerPeers, e.MaxLazyPeers, e.MaxPeers = 2*c.Degree, 2*c.Degree, 2*c.Degree
	}
	return e
}

// node is one simulated node.
type node struct {
	eng      *gossip.Engine[int32]
	adj      []int32 // overlay neighbours (OverlayPaper; the flood graph)
	timerAt  int64   // the pending tick, 0 if none
	joinedAt int64
	failedAt int64   // math.MaxInt64 while up
	side     int8    // 0 side A, 1 side B (Partition, Backlog)
	lost     []int32 // overlay neighbours lost to the cut (OverlayPaper)
}

func (n *node) up() bool { return n.failedAt == math.MaxInt64 }

// bstate is a broadcast being measured.
type bstate struct {
	origin     int32
	at         int64
	delivered  bitset
	prompt     bitset // delivered within Interval
	deliveries int
	payloads   int64
	ldh        uint32
	last       int64
	control    [6]int64 // by gossip.Kind
	hops       []int32
	cut        bool // sent during the cut
}

type bitset []uint64

func (b *bitset) set(i int32) bool {
	w := int(i) >> 6
	for w >= len(*b) {
		*b = append(*b, 0)
	}
	m := uint64(1) << (uint(i) & 63)
	was := (*b)[w]&m != 0
	(*b)[w] |= m
	return was
}

func (b bitset) has(i int32) bool {
	w := int(i) >> 6
	return w < len(b) && b[w]&(uint64(1)<<(uint(i)&63)) != 0
}

type sim struct {
	cfg     Config
	ecfg    gossip.Config
	nodes   []node
	q       queue
	seq     uint64
	now     int64
	end     int64
	msgs    []gossip.Msg[int32]
	free    []int32
	acts    []func()
	ovRng   *rand.Rand // overlay construction and repair
	scRng   *rand.Rand // origins, failures, churn, detection delays
	engines uint64     // engines made so far
	netRng  *rand.Rand // loss and jitter
	byID    map[gossip.MessageID]int32
	bc      []*bstate
	cur     int32 // the node whose engine is running (for the observer)
	curB    int   // the broadcast whose window control messages count against
	payload []byte
	stream  map[uint64]int64 // per ordered pair: the last stream arrival (FIFO)
	tot     Totals
	dgMax   int
	target  int // overlay degree to maintain

	cutOn         bool  // the network drops messages between the sides
	viewCut       bool  // the membership reports the other side failed
	cutAt, healAt int64 // virtual times of the cut and the heal
	sideN         [2]int
	sideList      [2][]int32
	senders       []int32 // the origins (Senders)
	// stuck is the first engine that, ticked at a time, still asked to be
	// woken at or before it: an engine bug that would have the loop tick it
	// every nanosecond of virtual time to the end of the run. Run fails with it.
	stuck error
}

// observer attributes engine events to broadcasts.
type observer struct{ s *sim }

func (o observer) Observe(e gossip.Event) {
	switch e.Kind {
	case gossip.EventDelivered:
		if b, ok := o.s.byID[e.Message]; ok {
			o.s.delivery(b, o.s.cur, e.Hops)
		}
	case gossip.EventDuplicate:
		if b, ok := o.s.byID[e.Message]; ok && o.s.nodes[o.s.cur].joinedAt <= o.s.bc[b].at {
			o.s.bc[b].payloads++
			if h := o.s.cfg.payloadHook; h != nil {
				h(b, o.s.cur, e.Hops, o.s.now)
			}
		}
	}
}

// Run simulates one run of cfg and returns its measures. It is
// single-threaded and deterministic: the same cfg gives the same Result
// (Perf aside).
func Run(cfg Config) (*Result, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	start := time.Now()
	var m0 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)

	s := &sim{cfg: cfg, ecfg: cfg.engineConfig()}
	s.init()
	if err := s.build(); err != nil {
		return nil, err
	}
	s.schedule()

	var m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m1)
	s.loop()
	if s.stuck != nil {
		return nil, s.stuck
	}
	var m2 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m2)

	r := s.result()
	r.Perf.Wall = time.Since(start)
	if m1.HeapAlloc > m0.HeapAlloc {
		r.Perf.HeapPerNodeSetup = (m1.HeapAlloc - m0.HeapAlloc) / uint64(cfg.Nodes)
	}
	if m2.HeapAlloc > m0.HeapAlloc {
		r.Perf.HeapPerNodeEnd = (m2.HeapAlloc - m0.HeapAlloc) / uint64(len(s.nodes))
	}
	runtime.KeepAlive(s)
	return r, nil
}

// init sets up the generators and tables of a sim whose cfg is set.
func (s *sim) init() {
	cfg := &s.cfg
	s.ovRng = rand.New(rand.NewPCG(cfg.Seed, 1))
	s.scRng = rand.New(rand.NewPCG(cfg.Seed, 2))
	s.netRng = rand.New(rand.NewPCG(cfg.Seed, 3))
	s.byID = make(map[gossip.MessageID]int32)
	s.stream = make(map[uint64]int64)
	s.payload = make([]byte, cfg.PayloadSize)
	s.curB = -1
	s.dgMax = min(s0(cfg.Engine.GossipDatagramMaxSize), 1400)
	s.target = cfg.Degree
	if cfg.Overlay == OverlayFull {
		s.target = cfg.Engine.EagerFanout
	}
}

func s0(n int) int { return max(n, 0) }

func (s *sim) engineSeed(i int) uint64 {
	if s.cfg.EngineSeed != nil {
		return s.cfg.EngineSeed(i)
	}
	return mix(s.cfg.Seed ^ mix(uint64(i)+0x51a7))
}

func (s *sim) newEngine(i int) error {
	// Every engine made, a restarted node's too, has an incarnation of its
	// own, as a real node draws from crypto/rand, but reproducibly.
	s.engines++
	inc := mix(s.cfg.Seed^mix(s.engines+0x1ca7)) | 1
	e, err := gossip.NewEngine(gossip.EngineOptions[int32]{Self: int32(i), Config: s.ecfg,
		Seed: s.engineSeed(i), Incarnation: inc, Observer: observer{s}})
	if err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	s.nodes[i].eng = e
	return nil
}

// build makes the nodes and the overlay.
func (s *sim) build() error {
	n := s.cfg.Nodes
	s.nodes = make([]node, n)
	for i := range s.nodes {
		s.nodes[i].failedAt = math.MaxInt64
	}
	if s.cfg.Overlay == OverlayPaper {
		// A union of Degree/2 random Hamiltonian cycles (plus a random
		// matching for an odd Degree): connected, every degree at most
		// Degree, and exactly Degree unless two cycles share an edge.
		for range s.cfg.Degree / 2 {
			p := s.ovRng.Perm(n)
			for k := range p {
				s.link(int32(p[k]), int32(p[(k+1)%n]))
			}
		}
		if s.cfg.Degree%2 == 1 {
			p := s.ovRng.Perm(n)
			for k := 0; k+1 < n; k += 2 {
				s.link(int32(p[k]), int32(p[k+1]))
			}
		}
	} else {
		// The flood graph: EagerFanout random members per node, symmetric.
		for i := range n {
			for len(s.nodes[i].adj) < s.target {
				j := int32(s.ovRng.IntN(n))
				if j != int32(i) {
					s.link(int32(i), j)
				}
			}
		}
	}
	if s.cfg.Protocol != Plumtree {
		return nil
	}
	var all []int32
	if s.cfg.Overlay == OverlayFull {
		all = make([]int32, n)
		for i := range all {
			all[i] = int32(i)
		}
	}
	now := base
	for i := range s.nodes {
		if err := s.newEngine(i); err != nil {
			return err
		}
		s.cur = int32(i)
		if s.cfg.Overlay == OverlayFull {
			s.nodes[i].eng.SetMembers(now, all)
		} else {
			s.nodes[i].eng.SetMembers(now, s.nodes[i].adj)
		}
		s.drain(int32(i))
	}
	return nil
}

// link adds the overlay edge a-b; it reports false if it existed.
func (s *sim) link(a, b int32) bool {
	if a == b || slices.Contains(s.nodes[a].adj, b) {
		return false
	}
	s.nodes[a].adj = append(s.nodes[a].adj, b)
	s.nodes[b].adj = append(s.nodes[b].adj, a)
	return true
}

func (s *sim) at(t int64, kind uint8, to, from, arg int32, hops uint32) {
	s.seq++
	s.q.push(event{at: t, seq: s.seq, kind: kind, to: to, from: from, arg: arg, hops: hops})
}

func (s *sim) action(t int64, f func()) {
	s.acts = append(s.acts, f)
	s.at(t, evAction, -1, -1, int32(len(s.acts)-1), 0)
}

// schedule queues the scenario: broadcasts, failure, churn.
func (s *sim) schedule() {
	c := &s.cfg
	total := c.Warmup + c.Broadcasts
	iv := int64(c.Interval)
	if c.Scenario == Senders {
		k := len(s.nodes)
		if c.Senders > 0 {
			k = c.Senders
		}
		s.senders = make([]int32, k)
		for i, j := range s.scRng.Perm(len(s.nodes))[:k] {
			s.senders[i] = int32(j)
		}
		slices.Sort(s.senders)
	}
	cutFrom, healAt := -1, -1
	if c.cutScenario() {
		cutFrom, healAt = c.Warmup+c.CutAt, c.Warmup+c.CutAt+c.CutFor
		s.sides()
	}
	for k := range total {
		t := iv * int64(k+1)
		if c.Scenario == Failure && k == c.Warmup+c.FailAt {
			s.action(t, s.massFailure)
		}
		if k == cutFrom {
			s.action(t, s.cut)
		}
		if k == healAt {
			s.action(t, s.heal)
		}
		s.action(t, func() { s.broadcast(k) })
	}
	s.end = iv*int64(total) + int64(c.Settle)
	if healAt >= total {
		// No traffic after the heal: it comes one interval after the last
		// broadcast.
		s.action(iv*int64(total+1), s.heal)
	}
	if c.cutScenario() {
		s.end = max(s.end, iv*int64(min(healAt, total)+1)+int64(c.Watch))
	}
	if c.Scenario == Churn {
		step := int64(float64(time.Second) / c.ChurnRate)
		for t := iv*int64(c.Warmup) + iv/2; t < iv*int64(total); t += max(step, 1) {
			s.action(t, s.churn)
		}
	}
}

// loop runs events until the end of the run.
func (s *sim) loop() {
	for len(s.q) > 0 {
		e := s.q.pop()
		if e.at > s.end {
			break
		}
		s.now = e.at
		s.tot.Events++
		switch e.kind {
		case evMsg:
			m := &s.msgs[e.arg]
			if n := &s.nodes[e.to]; n.up() && n.eng != nil {
				s.cur = e.to
				n.eng.Receive(base.Add(time.Duration(s.now)), e.from, m)
				s.drain(e.to)
			}
			s.msgs[e.arg] = gossip.Msg[int32]{}
			s.free = append(s.free, e.arg)
		case evFlood:
			s.onFlood(e)
		case evTick:
			n := &s.nodes[e.to]
			if !n.up() || n.eng == nil || n.timerAt != e.at {
				continue
			}
			n.timerAt = 0
			s.cur = e.to
			now := base.Add(time.Duration(s.now))
			n.eng.Tick(now)
			if d := n.eng.NextDeadline(); !d.IsZero() && !d.After(now) {
				s.stuck = fmt.Errorf("sim: node %d's engine, ticked at %v, still wants a tick at %v (%+v): a deadline it does not handle", e.to, time.Duration(s.now), d.Sub(base), n.eng.Stats())
				return
			}
			s.drain(e.to)
		case evAction:
			f := s.acts[e.arg]
			s.acts[e.arg] = nil
			f()
		}
	}
}

// drain sends what node i's engine wants sent and re-arms its timer.
func (s *sim) drain(i int32) {
	n := &s.nodes[i]
	for _, snd := range n.eng.Outbox() {
		s.send(i, snd.To, &snd.Msg)
	}
	d := n.eng.NextDeadline()
	if d.IsZero() {
		return
	}
	t := int64(d.Sub(base))
	if t <= s.now {
		t = s.now + 1
	}
	if n.timerAt == 0 || t < n.timerAt {
		n.timerAt = t
		s.at(t, evTick, i, i, 0, 0)
	}
}

// datagram reports whether a message of kind k with a payload of size
// bytes goes by the datagram path (the runner's routing).
func (s *sim) datagram(k gossip.Kind, size int) bool {
	return k == gossip.KindIHave || (k == gossip.KindGossip && size <= s.dgMax)
}

// delay returns the arrival time of a message from a to b, or -1 if it is
// lost.
func (s *sim) delay(a, b int32, dgram bool) int64 {
	t := s.now + s.cfg.Latency.link(s.cfg.Seed, a, b)
	if dgram {
		if s.cfg.Loss > 0 && s.netRng.Float64() < s.cfg.Loss {
			s.tot.DatagramsLost++
			return -1
		}
		if s.cfg.Jitter > 0 {
			t += s.netRng.Int64N(int64(s.cfg.Jitter))
		}
		return t
	}
	key := uint64(uint32(a))<<32 | uint64(uint32(b))
	if last := s.stream[key]; t < last {
		t = last
	}
	s.stream[key] = t
	return t
}

func (s *sim) send(from, to int32, m *gossip.Msg[int32]) {
	if m.Kind == gossip.KindGossip {
		s.tot.PayloadsSent++
	} else {
		s.tot.ControlSent++
		if s.curB >= 0 && int(m.Kind) < len(s.bc[s.curB].control) && s.now < s.bc[s.curB].at+int64(s.cfg.Interval) {
			s.bc[s.curB].control[m.Kind]++
		}
	}
	if to < 0 || int(to) >= len(s.nodes) || !s.nodes[to].up() {
		s.tot.ToDeadNodes++
		return
	}
	if s.severed(from, to) {
		return
	}
	t := s.delay(from, to, s.datagram(m.Kind, len(m.Payload.Data)))
	if t < 0 {
		return
	}
	var slot int32
	if k := len(s.free); k > 0 {
		slot = s.free[k-1]
		s.free = s.free[:k-1]
	} else {
		s.msgs = append(s.msgs, gossip.Msg[int32]{})
		slot = int32(len(s.msgs) - 1)
	}
	s.msgs[slot] = *m
	s.at(t, evMsg, to, from, slot, 0)
}

// delivery records node i's first copy of broadcast b. Nodes that joined
// after the broadcast (and catch up through the exchange) are left out of
// its measures.
func (s *sim) delivery(b, i int32, hops uint32) {
	st := s.bc[b]
	if s.nodes[i].joinedAt > st.at {
		return
	}
	st.payloads++
	if h := s.cfg.payloadHook; h != nil {
		h(b, i, hops, s.now)
	}
	if st.delivered.set(i) {
		return
	}
	if s.now-st.at <= int64(s.cfg.Interval) {
		st.prompt.set(i)
	}
	st.deliveries++
	st.ldh = max(st.ldh, hops)
	st.last = max(st.last, s.now)
	if st.hops != nil && int(i) < len(st.hops) {
		st.hops[i] = int32(hops)
	}
}

// randomUp returns a random node that is up, by the scenario generator.
func (s *sim) randomUp(r *rand.Rand) int32 {
	for {
		i := int32(r.IntN(len(s.nodes)))
		if s.nodes[i].up() {
			return i
		}
	}
}

// randomUpOn returns a random node of side that is up.
func (s *sim) randomUpOn(r *rand.Rand, side int8) int32 {
	for {
		i := int32(r.IntN(len(s.nodes)))
		if s.nodes[i].up() && s.nodes[i].side == side {
			return i
		}
	}
}

func (s *sim) broadcast(k int) {
	s.curB = k
	var origin int32
	switch {
	case s.cutOn:
		// During the cut the origins alternate between the sides.
		origin = s.randomUpOn(s.scRng, int8(k%2))
	case len(s.senders) > 0:
		origin = s.senders[s.scRng.IntN(len(s.senders))]
		for !s.nodes[origin].up() {
			origin = s.senders[s.scRng.IntN(len(s.senders))]
		}
	default:
		origin = s.randomUp(s.scRng)
	}
	st := &bstate{origin: origin, at: s.now, cut: s.cutOn}
	if s.cfg.RecordHops {
		st.hops = make([]int32, len(s.nodes))
		for i := range st.hops {
			st.hops[i] = -1
		}
		st.hops[origin] = 0
	}
	st.delivered.set(origin)
	s.bc = append(s.bc, st)
	if p := s.cfg.Progress; p != nil {
		p(Progress{Protocol: s.cfg.Protocol, Sent: k + 1, Total: s.cfg.Warmup + s.cfg.Broadcasts,
			Virtual: time.Duration(s.now), Events: s.tot.Events})
	}
	copy(s.payload, fmt.Sprintf("broadcast %d", k))
	if s.cfg.Protocol == Flood {
		s.forward(origin, -1, int32(k), 1)
		return
	}
	n := &s.nodes[origin]
	s.cur = origin
	id, err := n.eng.Broadcast(base.Add(time.Duration(s.now)), gossip.Payload{Data: s.payload}, nil)
	if err != nil {
		panic(fmt.Sprintf("sim: broadcast: %v", err)) // the payload size was validated
	}
	s.byID[id] = int32(k)
	s.drain(origin)
}

// forward floods broadcast b from node i to its neighbours but from.
func (s *sim) forward(i, from, b int32, hops uint32) {
	dg := s.datagram(gossip.KindGossip, s.cfg.PayloadSize)
	for _, j := range s.nodes[i].adj {
		if j == from {
			continue
		}
		s.tot.PayloadsSent++
		if !s.nodes[j].up() {
			s.tot.ToDeadNodes++
			continue
		}
		if s.severed(i, j) {
			continue
		}
		if t := s.delay(i, j, dg); t >= 0 {
			s.at(t, evFlood, j, i, b, hops)
		}
	}
}

func (s *sim) onFlood(e event) {
	if !s.nodes[e.to].up() {
		return
	}
	st := s.bc[e.arg]
	if st.delivered.has(e.to) {
		st.payloads++
		return
	}
	s.delivery(e.arg, e.to, e.hops)
	s.forward(e.to, e.from, e.arg, e.hops+1)
}

// massFailure fails FailFraction of the nodes at once.
func (s *sim) massFailure() {
	var up []int32
	for i := range s.nodes {
		if s.nodes[i].up() {
			up = append(up, int32(i))
		}
	}
	k := int(math.Round(s.cfg.FailFraction * float64(len(up))))
	s.scRng.Shuffle(len(up), func(i, j int) { up[i], up[j] = up[j], up[i] })
	victims := up[:k]
	slices.Sort(victims)
	s.fail(victims)
}

// fail takes the victims down now and schedules each affected node's
// detection of it.
func (s *sim) fail(victims []int32) {
	gone := make(map[int32]bool, len(victims))
	for _, v := range victims {
		s.nodes[v].failedAt = s.now
		s.nodes[v].eng = nil // its state is lost; free the memory
		gone[v] = true
	}
	s.tot.Failed += len(victims)
	var observers []int32
	if s.cfg.Overlay == OverlayFull {
		for i := range s.nodes {
			if s.nodes[i].up() {
				observers = append(observers, int32(i))
			}
		}
	} else {
		var mark bitset
		for _, v := range victims {
			for _, y := range s.nodes[v].adj {
				if s.nodes[y].up() && !mark.set(y) {
					observers = append(observers, y)
				}
			}
		}
		slices.Sort(observers)
	}
	dd := int64(s.cfg.DetectDelay)
	for _, y := range observers {
		t := s.now + dd + s.scRng.Int64N(dd/2+1)
		s.action(t, func() { s.detect(y, victims, gone) })
	}
}

// detect is node y learning that the victims failed.
func (s *sim) detect(y int32, victims []int32, gone map[int32]bool) {
	n := &s.nodes[y]
	if !n.up() {
		return
	}
	now := base.Add(time.Duration(s.now))
	eng := n.eng
	s.cur = y
	if eng != nil && s.cfg.Overlay == OverlayFull {
		for _, v := range victims {
			eng.PeerDown(now, v)
		}
	}
	kept := n.adj[:0]
	for _, z := range n.adj {
		if gone[z] {
			if eng != nil && s.cfg.Overlay == OverlayPaper {
				eng.PeerDown(now, z)
			}
			continue
		}
		kept = append(kept, z)
	}
	clear(n.adj[len(kept):])
	n.adj = kept
	if eng != nil {
		s.drain(y)
	}
	s.repair(y)
}

// repair gives node y random live neighbours until it has the overlay's
// degree again (HyParView promotes passive-view members the same way).
func (s *sim) repair(y int32) {
	for tries := 0; len(s.nodes[y].adj) < s.target && tries < 64; tries++ {
		var z int32
		if s.viewCut {
			z = s.randomUpOn(s.ovRng, s.nodes[y].side)
		} else {
			z = s.randomUp(s.ovRng)
		}
		if len(s.nodes[z].adj) > s.target || !s.link(y, z) {
			continue
		}
		if s.cfg.Overlay == OverlayPaper {
			s.peerUp(y, z)
			s.peerUp(z, y)
		}
	}
}

func (s *sim) peerUp(i, j int32) {
	if e := s.nodes[i].eng; e != nil {
		s.cur = i
		e.PeerUp(base.Add(time.Duration(s.now)), j)
		s.drain(i)
	}
}

// churn fails one random node and adds a new one.
func (s *sim) churn() {
	v := s.randomUp(s.scRng)
	s.fail([]int32{v})

	j := int32(len(s.nodes))
	s.nodes = append(s.nodes, node{joinedAt: s.now, failedAt: math.MaxInt64})
	s.tot.Joined++
	s.repair(j) // in the paper overlay this tells the new neighbours (no engine yet for j)
	if s.cfg.Protocol != Plumtree {
		return
	}
	if err := s.newEngine(int(j)); err != nil {
		panic(err) // the configuration was validated
	}
	now := base.Add(time.Duration(s.now))
	s.cur = j
	if s.cfg.Overlay == OverlayPaper {
		s.nodes[j].eng.SetMembers(now, s.nodes[j].adj)
		s.drain(j)
		return
	}
	var all []int32
	for i := range s.nodes {
		if s.nodes[i].up() {
			all = append(all, int32(i))
		}
	}
	s.nodes[j].eng.SetMembers(now, all)
	s.drain(j)
	// The others hear of the join as membership spreads it.
	t := s.now + int64(s.cfg.DetectDelay) + s.scRng.Int64N(int64(s.cfg.DetectDelay)/2+1)
	s.action(t, func() {
		if !s.nodes[j].up() {
			return
		}
		for i := range s.nodes {
			if int32(i) != j && s.nodes[i].up() {
				s.peerUp(int32(i), j)
			}
		}
	})
}

// result computes the measures.
func (s *sim) result() *Result {
	r := &Result{Protocol: s.cfg.Protocol, Totals: s.tot}
	settle := int64(s.cfg.Settle)
	for k, st := range s.bc {
		br := BroadcastResult{Index: k, Warmup: k < s.cfg.Warmup, Origin: st.origin,
			SentAtMS: ms(st.at), Payloads: st.payloads, LDH: int(st.ldh), Hops: st.hops}
		prompt := 0
		for i := range s.nodes {
			n := &s.nodes[i]
			if n.joinedAt <= st.at && n.failedAt > st.at+settle {
				br.Correct++
				if st.delivered.has(int32(i)) {
					br.Delivered++
				}
				if st.prompt.has(int32(i)) || int32(i) == st.origin {
					prompt++
				}
			}
		}
		if br.Correct > 0 {
			br.Reliability = float64(br.Delivered) / float64(br.Correct)
			br.Prompt = float64(prompt) / float64(br.Correct)
		}
		if st.deliveries > 0 {
			br.RMR = float64(st.payloads)/float64(st.deliveries) - 1
			br.LastDeliveryMS = ms(st.last - st.at)
		}
		br.IHave = st.control[gossip.KindIHave]
		br.Graft = st.control[gossip.KindGraft]
		br.Prune = st.control[gossip.KindPrune]
		br.Exchange = st.control[gossip.KindExchange]
		br.Control = br.IHave + br.Graft + br.Prune + br.Exchange
		if s.cfg.cutScenario() {
			br.Side = string(rune('A' + s.nodes[st.origin].side))
			br.Cut = st.cut
		}
		r.Broadcasts = append(r.Broadcasts, br)
	}
	r.Summary = summarize(r.Broadcasts)
	r.Windows = windows(r.Broadcasts, s.cfg.Window, s.cfg.windowAnchor())
	if s.cfg.cutScenario() {
		r.Cut = s.cutSummary(r.Broadcasts)
	}
	if s.cfg.Protocol == Plumtree {
		var eager, up int
		for i := range s.nodes {
			if n := &s.nodes[i]; n.up() && n.eng != nil {
				eager += len(n.eng.EagerPeers())
				up++
			}
		}
		if up > 0 {
			r.Totals.FinalEagerMean = round(float64(eager)/float64(up), 4)
		}
	}
	return r
}

func summarize(bs []BroadcastResult) Summary {
	var sm Summary
	sm.ReliabilityMin, sm.PromptMin = 1, 1
	sm.ReliableFrom = -1
	var measured []BroadcastResult
	for _, b := range bs {
		if !b.Warmup {
			measured = append(measured, b)
		}
	}
	sm.Measured = len(measured)
	if len(measured) == 0 {
		return sm
	}
	for i, b := range measured {
		sm.ReliabilityMean += b.Reliability
		sm.ReliabilityMin = min(sm.ReliabilityMin, b.Reliability)
		sm.PromptMean += b.Prompt
		sm.PromptMin = min(sm.PromptMin, b.Prompt)
		if b.Reliability == 1 {
			sm.FullyReliable++
			if sm.ReliableFrom < 0 {
				sm.ReliableFrom = i
			}
		} else {
			sm.ReliableFrom = -1
		}
		sm.RMRMean += b.RMR
		sm.RMRMax = max(sm.RMRMax, b.RMR)
		sm.LDHMean += float64(b.LDH)
		sm.LDHMax = max(sm.LDHMax, b.LDH)
		sm.PayloadsMean += float64(b.Payloads)
		sm.ControlMean += float64(b.Control)
		sm.LastDeliveryMeanMS += b.LastDeliveryMS
	}
	n := float64(len(measured))
	sm.ReliabilityMean = round(sm.ReliabilityMean/n, 6)
	sm.PromptMean = round(sm.PromptMean/n, 6)
	sm.RMRMean = round(sm.RMRMean/n, 6)
	sm.LDHMean = round(sm.LDHMean/n, 3)
	sm.PayloadsMean = round(sm.PayloadsMean/n, 3)
	sm.ControlMean = round(sm.ControlMean/n, 3)
	sm.LastDeliveryMeanMS = round(sm.LastDeliveryMeanMS/n, 3)
	return sm
}

func ms(ns int64) float64 { return float64(ns) / 1e6 }

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}
