package sim

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/plumtree-go/plumtree/gossip"
)

// The simulator's configuration: overlays, scenarios, protocols, Config and
// its defaults and checks.

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
