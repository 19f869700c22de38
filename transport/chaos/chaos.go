package chaos

import (
	"errors"
	"fmt"
	"github.com/plumtree-go/plumtree/clock"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"path"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plumtree-go/plumtree/transport"
	"github.com/plumtree-go/plumtree/transport/internal/partition"
)

// ErrInjected is wrapped by every error chaos makes up: a stream frame
// dropped as by a failed connection, or refused by a partition.
var ErrInjected = errors.New("chaos: injected fault")

// ErrPartitioned is wrapped (with ErrInjected and transport.ErrUnreachable)
// by the error of a SendFrame refused by a partition.
var ErrPartitioned = errors.New("chaos: partitioned")

// DefaultStreamQueue is the default of Config.StreamQueue.
const DefaultStreamQueue = 1024

// DefaultReorderWindow is the default of Rule.ReorderWindow.
const DefaultReorderWindow = 10 * time.Millisecond

// Distribution is the shape of a rule's jitter.
type Distribution uint8

const (
	// Uniform jitter is drawn evenly from [0, Jitter).
	Uniform Distribution = iota
	// Normal jitter is the absolute value of a normal variable with mean 0
	// and standard deviation Jitter (a half-normal distribution: most
	// frames get little jitter, a few get two or three times Jitter).
	Normal
	// Exponential jitter has mean Jitter: a long tail of late frames.
	Exponential
)

// String names the distribution.
func (d Distribution) String() string {
	switch d {
	case Uniform:
		return "uniform"
	case Normal:
		return "normal"
	case Exponential:
		return "exponential"
	default:
		return fmt.Sprintf("distribution(%d)", uint8(d))
	}
}

// sample turns u, uniform in [0, 1), into a jitter of scale j.
func (d Distribution) sample(u float64, j time.Duration) time.Duration {
	if j <= 0 {
		return 0
	}
	var x float64
	switch d {
	case Normal:
		x = math.Sqrt2 * math.Erfinv(u)
	case Exponential:
		x = -math.Log1p(-u)
	default:
		x = u
	}
	v := x * float64(j)
	if v >= math.MaxInt64/2 || math.IsNaN(v) {
		return math.MaxInt64 / 2
	}
	return time.Duration(v)
}

// Rule says what happens to the sends it matches. The zero Rule matches
// every send and does nothing to it (it lets traffic through untouched, and
// stops the rules after it from applying).
type Rule struct {
	// From and To select the sender's and the destination's address with a
	// glob pattern (path.Match syntax: "*", "?", "[a-z]"; "10.0.1.*",
	// "node-[0-4]"); empty matches every address.
	From, To string
	// Match, when not nil, must also return true for the rule to apply to a
	// send from one address to another. It is called with the Network's
	// lock held, on every send the patterns match: keep it quick and make
	// it call nothing of this package.
	Match func(from, to string) bool
	// Path restricts the rule to one path; 0 means both.
	Path transport.Path

	// Drop is the probability that a datagram is lost, or that a stream
	// frame is lost with its link's delay queue, as by a failed connection.
	Drop float64
	// Duplicate is the probability that a datagram is sent twice (datagram
	// path only).
	Duplicate float64
	// Reorder is the probability that a datagram is held back until the
	// next datagram on its link has gone, so that one overtakes it (datagram
	// path only).
	Reorder float64
	// ReorderWindow is the longest a held datagram waits for another to
	// overtake it; default DefaultReorderWindow.
	ReorderWindow time.Duration

	// Delay is added to every matched send; Jitter, drawn from
	// JitterDistribution, is added on top. Stream frames stay in order (a
	// frame is never due before the one sent before it on the same link).
	Delay, Jitter time.Duration
	// JitterDistribution is the shape of the jitter; default Uniform.
	JitterDistribution Distribution
}

func (r *Rule) validate() error {
	for _, pr := range []struct {
		name string
		p    float64
	}{{"Drop", r.Drop}, {"Duplicate", r.Duplicate}, {"Reorder", r.Reorder}} {
		if !(pr.p >= 0 && pr.p <= 1) {
			return fmt.Errorf("%s is %v, want a probability in [0, 1]", pr.name, pr.p)
		}
	}
	if r.Delay < 0 || r.Jitter < 0 || r.ReorderWindow < 0 {
		return fmt.Errorf("negative duration (Delay %v, Jitter %v, ReorderWindow %v)", r.Delay, r.Jitter, r.ReorderWindow)
	}
	if r.Path != 0 && r.Path != transport.PathDatagram && r.Path != transport.PathStream {
		return fmt.Errorf("unknown %v", r.Path)
	}
	if r.JitterDistribution > Exponential {
		return fmt.Errorf("unknown jitter %v", r.JitterDistribution)
	}
	for _, p := range []string{r.From, r.To} {
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("pattern %q: %w", p, err)
		}
	}
	return nil
}

func matchAddr(pattern, addr string) bool {
	if pattern == "" {
		return true
	}
	ok, _ := path.Match(pattern, addr) // patterns are checked by validate
	return ok
}

func (r *Rule) matches(from, to string, p transport.Path) bool {
	return (r.Path == 0 || r.Path == p) && matchAddr(r.From, from) && matchAddr(r.To, to) &&
		(r.Match == nil || r.Match(from, to))
}

// PartitionMode says what a partition does to the stream path.
type PartitionMode uint8

const (
	// PartitionFail makes SendFrame across a partition fail at once with an
	// error wrapping ErrPartitioned, ErrInjected and
	// transport.ErrUnreachable, like a peer that cannot be reached.
	PartitionFail PartitionMode = iota
	// PartitionSilent loses a frame sent across a partition and returns nil,
	// like a write to a connection whose peer has vanished.
	PartitionSilent
)

// String names the mode.
func (m PartitionMode) String() string {
	switch m {
	case PartitionFail:
		return "fail"
	case PartitionSilent:
		return "silent"
	default:
		return fmt.Sprintf("partition-mode(%d)", uint8(m))
	}
}

// Config sets up a Network.
type Config struct {
	// Seed seeds every link's generator.
	Seed uint64
	// Rules are the initial rules; see Network.SetRules.
	Rules []Rule
	// StreamPartition is what a partition does to SendFrame; default
	// PartitionFail.
	StreamPartition PartitionMode
	// StreamQueue is how many delayed frames may wait on one link before
	// SendFrame blocks; default DefaultStreamQueue.
	StreamQueue int
	// Clock is the source of time for delays; default SystemClock (which
	// inside a testing/synctest bubble is the bubble's fake clock).
	Clock Clock
}

// Clock is the source of time and timers for delays: the module's one
// Clock (package clock). A test can give its own; the default, SystemClock,
// is package time.
type Clock = clock.Clock

// Timer is a timer started by a Clock.
type Timer = clock.Timer

// SystemClock is the Clock of package time.
type SystemClock = clock.System

// Stats counts the faults injected.
type Stats struct {
	// Dropped counts datagrams and stream frames lost to a rule's Drop (on
	// the stream path, the frame whose send failed and the frames lost with
	// it from the link's delay queue).
	Dropped uint64
	// Duplicated counts datagrams sent twice.
	Duplicated uint64
	// Delayed counts sends delayed by a rule (including delays of 0 drawn
	// for a rule with only jitter).
	Delayed uint64
	// Reordered counts datagrams held back so that a later one overtakes
	// them.
	Reordered uint64
	// Partitioned counts datagrams and frames lost or refused because a
	// partition separated their sender and destination.
	Partitioned uint64
	// Failed counts SendFrame calls that returned an error chaos made up
	// (a Drop, a PartitionFail partition).
	Failed uint64
	// Abandoned counts delayed or held frames still waiting when their
	// transport closed.
	Abandoned uint64
	// SendErrors counts errors the inner transport returned for delayed or
	// held frames, handed over after their SendDatagram or SendFrame had
	// returned.
	SendErrors uint64
}

type counters struct {
	dropped, duplicated, delayed, reordered, partitioned, failed, abandoned, sendErrors atomic.Uint64
}

func (c *counters) stats() Stats {
	return Stats{
		Dropped:     c.dropped.Load(),
		Duplicated:  c.duplicated.Load(),
		Delayed:     c.delayed.Load(),
		Reordered:   c.reordered.Load(),
		Partitioned: c.partitioned.Load(),
		Failed:      c.failed.Load(),
		Abandoned:   c.abandoned.Load(),
		SendErrors:  c.sendErrors.Load(),
	}
}

// Network holds the rules and the partition that the transports it wrapped
// consult on every send, and the totals of their faults. It is safe for
// concurrent use; rules and partitions may change while traffic flows.
type Network struct {
	seed  uint64
	clock Clock
	queue int

	mu    sync.RWMutex
	rules []Rule
	group partition.Groups // nil: no partition
	mode  PartitionMode

	c counters
}

// withDefaults checks cfg and fills in its defaults, as every adapter's
// Config does. The rules are checked by SetRules.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.StreamPartition > PartitionSilent {
		return cfg, fmt.Errorf("chaos: unknown stream partition mode %d", cfg.StreamPartition)
	}
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{}
	}
	if cfg.StreamQueue <= 0 {
		cfg.StreamQueue = DefaultStreamQueue
	}
	return cfg, nil
}

// New returns a Network with the given configuration. It fails on an invalid
// rule.
func New(cfg Config) (*Network, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	n := &Network{seed: cfg.Seed, clock: cfg.Clock, queue: cfg.StreamQueue, mode: cfg.StreamPartition}
	if err := n.SetRules(cfg.Rules...); err != nil {
		return nil, err
	}
	return n, nil
}

// SetRules replaces the rules. For each send the first rule that matches
// decides; a send no rule matches goes through untouched. With no rules the
// Network injects nothing (except partitions). It fails, changing nothing,
// when a rule is invalid (a probability outside [0, 1], a negative duration,
// a bad pattern).
func (n *Network) SetRules(rules ...Rule) error {
	for i := range rules {
		if err := rules[i].validate(); err != nil {
			return fmt.Errorf("chaos: rule %d: %w", i, err)
		}
	}
	rs := append([]Rule(nil), rules...)
	n.mu.Lock()
	n.rules = rs
	n.mu.Unlock()
	return nil
}

// Rules returns a copy of the rules in force.
func (n *Network) Rules() []Rule {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return append([]Rule(nil), n.rules...)
}

// Partition splits the network: addresses in different groups cannot reach
// each other, on either path, in either direction; addresses in no group
// reach everyone. It replaces any earlier partition. An address listed in
// several groups belongs to the last one. Addresses are those the wrapped
// transports send to and their LocalAddr.
func (n *Network) Partition(groups ...[]string) {
	g := partition.New(groups...)
	n.mu.Lock()
	n.group = g
	n.mu.Unlock()
}

// Heal removes the partition.
func (n *Network) Heal() {
	n.mu.Lock()
	n.group = nil
	n.mu.Unlock()
}

// SetStreamPartition changes what a partition does to the stream path. A
// mode other than PartitionSilent acts as PartitionFail.
func (n *Network) SetStreamPartition(m PartitionMode) {
	n.mu.Lock()
	n.mode = m
	n.mu.Unlock()
}

// Stats returns the faults injected by every transport the Network wrapped,
// open or closed.
func (n *Network) Stats() Stats { return n.c.stats() }

func (n *Network) reachableLocked(from, to string) bool {
	return n.group.Reachable(from, to)
}

func (n *Network) reachable(from, to string) bool {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.reachableLocked(from, to)
}

func (n *Network) streamMode() PartitionMode {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.mode
}

// newRand returns the generator of the link from → to on path p.
func (n *Network) newRand(from, to string, p transport.Path) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(from))
	h.Write([]byte{0, byte(p)})
	h.Write([]byte(to))
	return rand.New(rand.NewPCG(n.seed, h.Sum64()))
}

// plan is the fate of one send.
type plan struct {
	partitioned bool
	drop        bool
	duplicate   bool
	reorder     bool
	delayed     bool          // a rule with a delay or jitter matched
	delay       time.Duration // of the frame
	dupDelay    time.Duration // of its duplicate
	window      time.Duration // how long a reordered datagram may be held
}

// decide draws the fate of one send on a link from its generator. It draws
// five values whatever the rules, so that the decisions on a link depend only
// on the seed and the number of sends before.
func (n *Network) decide(rng *rand.Rand, from, to string, p transport.Path) plan {
	uDrop, uDup, uReorder, uJitter, uDupJitter := rng.Float64(), rng.Float64(), rng.Float64(), rng.Float64(), rng.Float64()
	n.mu.RLock()
	defer n.mu.RUnlock()
	if !n.reachableLocked(from, to) {
		return plan{partitioned: true}
	}
	for i := range n.rules {
		r := &n.rules[i]
		if !r.matches(from, to, p) {
			continue
		}
		pl := plan{
			drop:     uDrop < r.Drop,
			delayed:  r.Delay > 0 || r.Jitter > 0,
			delay:    r.Delay + r.JitterDistribution.sample(uJitter, r.Jitter),
			dupDelay: r.Delay + r.JitterDistribution.sample(uDupJitter, r.Jitter),
			window:   r.ReorderWindow,
		}
		if p == transport.PathDatagram {
			pl.duplicate = uDup < r.Duplicate
			pl.reorder = uReorder < r.Reorder
		}
		if pl.window == 0 {
			pl.window = DefaultReorderWindow
		}
		return pl
	}
	return plan{}
}
