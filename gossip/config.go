package gossip

import (
	"errors"
	"fmt"
	"time"
)

// Config holds the protocol's tuning. Start from a preset (DefaultConfig,
// LANConfig, WANConfig, LargeClusterConfig) and change fields; New validates
// it and names the field of any error.
type Config struct {
	// EagerFanout is how many neighbours a node picks to push full payloads
	// to when it fills its neighbour set. Pruning later trims the eager set
	// to the tree's edges.
	EagerFanout int
	// LazyFanout is how many neighbours a node picks to send announcements
	// (IHave) to. It also caps the announcements of each message: a node
	// orders its neighbours at random once per IHaveInterval window (lazy
	// ones first), although its lazy set also holds the nodes that picked
	// it (about twice as many), and announces each message of the window
	// to the first LazyFanout in that order that are not in the message's
	// tree and do not already have it, so that a window's messages share
	// frames. Neighbours that greeted or grafted this node within
	// MessageCacheTTL come first in every window (no one may be pushing to
	// them), even past the cap. 0 picks no lazy neighbours and leaves
	// announcements uncapped: every neighbour outside a message's tree
	// hears of it.
	LazyFanout int
	// MaxPeers caps eager plus lazy neighbours: the EagerFanout+LazyFanout
	// a node picks, plus the nodes that picked it (links are two-way: a
	// node greets the neighbours it picks). Leave room for those, about as
	// many again: a node whose picks all had no room is reached only
	// through the periodic exchange.
	MaxPeers int
	// MaxEagerPeers caps the eager set. A peer that would pass it (by pushing
	// to or grafting this node) is answered but then pruned.
	MaxEagerPeers int
	// MaxLazyPeers caps the lazy set.
	MaxLazyPeers int

	// IHaveInterval is the announcement window: the longest an
	// announcement waits in a peer's queue. A node sends about LazyFanout
	// IHave frames per window, whatever the message rate (see LazyFanout).
	IHaveInterval time.Duration
	// IHaveBatchSize sends a peer's queue at once when it holds this many
	// announcements.
	IHaveBatchSize int
	// IHaveRateLimitPerSecond and IHaveRateLimitBurst bound how many
	// announcements per second one peer may make this node process; the rest
	// are dropped and counted.
	IHaveRateLimitPerSecond float64
	IHaveRateLimitBurst     int

	// GraftTimeout is how long a node waits, after the first announcement of
	// a message it lacks, before it grafts the announcer. Keep it above twice
	// the network's round trip plus processing time.
	GraftTimeout time.Duration
	// GraftMaxRetries is how many further grafts, to the other announcers in
	// turn, follow the first one. The wait doubles after each graft, up to
	// GraftMaxBackoff.
	GraftMaxRetries int
	// GraftMaxBackoff caps the wait between grafts.
	GraftMaxBackoff time.Duration
	// GraftRateLimitPerSecond and GraftRateLimitBurst bound how many grafts
	// one peer may have answered with a payload; the rest are refused and
	// counted.
	GraftRateLimitPerSecond float64
	GraftRateLimitBurst     int
	// MaxMissing bounds how many announced-but-missing messages a node
	// tracks at once.
	MaxMissing int

	// OptimizationThreshold is the paper's tree optimization: when a
	// node holds a message it got over h hops and a neighbour announces it
	// at h-t hops with t >= OptimizationThreshold (before or after the
	// payload came), the node grafts that neighbour into the origin's tree;
	// the slower edge is then pruned by the origin's next duplicate. 0 turns
	// it off. Trees are kept per origin, so shortening one origin's tree
	// never costs another's; but each origin's tree pays for its own swaps
	// (a duplicate each), and the presets leave it off: on 50 nodes with
	// random origins and 1 ms links, threshold 3 made 2,152 swaps in 400
	// broadcasts; on 500 nodes with full membership and one sender,
	// threshold 4 took the tree from 17 hops to 7 but left RMR at 0.04 for
	// a minute (swaps whose new edge lost the race, repaired by grafts).
	OptimizationThreshold int

	// MaxOrigins bounds the origins a node keeps a tree for (eager peers
	// per origin, so that one origin's prunes never cut another's tree). An
	// origin's tree is forgotten when it has been idle for MessageCacheTTL,
	// or, past MaxOrigins, the least recently used is; a forgotten origin's
	// next message starts from the shared tree again.
	MaxOrigins int
	// ShuffleInterval is how often a node takes a random member that is
	// not its neighbour in as a lazy neighbour, dropping a lazy neighbour
	// that no origin's tree uses, so that the neighbour graph stays a
	// random graph through churn and partitions (two sides that filled
	// their sets apart link again). 0 turns it off.
	ShuffleInterval time.Duration

	// MessageCacheTTL and MessageCacheMaxSize bound the payload cache that
	// grafts are answered from.
	MessageCacheTTL     time.Duration
	MessageCacheMaxSize int
	// SeenTTL and SeenMaxSize bound the deduplication set. SeenTTL must
	// exceed MessageCacheTTL plus ExchangeWindow, so that a message never
	// returns after a node forgot it had seen it. 0 means twice
	// MessageCacheTTL plus ExchangeWindow; a zero SeenMaxSize means ten times
	// MessageCacheMaxSize.
	SeenTTL     time.Duration
	SeenMaxSize int

	// ExchangeInterval is how often a node sends one random neighbour a
	// summary of every message it caches (runs of sequence numbers per
	// origin incarnation), so that what announcements missed (a partition,
	// a lost push, a backlog of any length) is recovered by grafts. 0 turns
	// the exchange off.
	ExchangeInterval time.Duration
	// ExchangeWindow limits the exchange to messages broadcast (by the
	// origin's clock) at most this long ago. 0 means MessageCacheTTL.
	ExchangeWindow time.Duration
	// ExchangeMaxIDs caps the ranges in one exchange; past it, successive
	// exchanges take turns over the ranges, so that every cached message is
	// summarized within a few intervals.
	ExchangeMaxIDs int

	// MaxMessageSize is the largest encoded message Broadcast accepts, and
	// the largest payload a node accepts from the network.
	MaxMessageSize int

	// CleanupMinInterval and CleanupMaxInterval bound how often expired
	// cache and seen entries are swept. The interval halves down to the
	// minimum while sweeps find work and doubles up to the maximum while
	// they do not. CleanupBatch caps the entries one sweep removes, so a
	// large cache never stalls the protocol loop.
	CleanupMinInterval time.Duration
	CleanupMaxInterval time.Duration
	CleanupBatch       int

	// GossipDatagramMaxSize routes a Gossip frame up to this many bytes by
	// the datagram path and a larger one by the stream path (also limited by
	// the transport's own datagram size). 0 sends every Gossip by stream.
	// IHave goes by datagram; Graft, Prune and exchanges by stream. The
	// presets use 1232 (the UDP transport's default limit, which fits every
	// IPv4 and IPv6 path), so that a 1 KiB payload with its header (about
	// 55 bytes with address-length identities) goes in one datagram, except
	// WANConfig's 1024: a lost datagram there costs a graft across a slow
	// link. On a network known to carry 1500-byte packets, raise both this
	// and the transport's limit to 1472 (IPv4) or 1452 (IPv6).
	GossipDatagramMaxSize int

	// DeliveryBuffer is how many deliveries may wait for the application.
	// Past it deliveries are dropped, counted and reported, never blocking
	// the protocol; the next delivery says how many (Delivery.Lagged).
	DeliveryBuffer int
	// SendQueueSize and SendQueueBytes bound the stream frames waiting for
	// one peer, by count and by total size; past either, frames are dropped
	// and counted, so a peer that does not read costs bounded memory.
	SendQueueSize  int
	SendQueueBytes int
	// PublishQueueBytes and PublishPendingBytes are the publishers' share
	// of the send queues: this node takes a broadcast of its own only while
	// every peer's stream queue holds fewer than PublishQueueBytes bytes
	// (and fewer than SendQueueSize/2 frames) and all of them together
	// fewer than PublishPendingBytes. Until then Broadcast waits and
	// TryBroadcast returns a *BusyError (ErrBusy). Relayed messages never
	// wait: the rest of SendQueueBytes is theirs. The queueing delay a
	// publisher can cause is about PublishQueueBytes divided by a link's
	// bandwidth: keep it well under GraftTimeout. PublishQueueBytes is
	// capped at SendQueueBytes/2; 0 means that, or 256 KiB if less, and
	// 4 x PublishQueueBytes for PublishPendingBytes.
	PublishQueueBytes   int
	PublishPendingBytes int
	// ReconcileInterval is how often the runner compares the membership's
	// full view with its own, repairing any event the membership dropped.
	ReconcileInterval time.Duration

	// Ordered makes deliveries from one origin reach the application in
	// the order the origin broadcast them: a message that comes before an
	// earlier one of its origin waits for it, at most OrderGapTimeout, and
	// what is still missing then is given up (Delivery.Skipped says how
	// many). Forwarding never waits. A restarted origin starts a new
	// stream; a receiver that joins midway starts at the lowest message
	// it gets within OrderGapTimeout of the first (at once if that is the
	// origin's first).
	// The package documentation (Per-origin order) gives every rule.
	Ordered bool
	// OrderGapTimeout is how long, with Ordered, a message may wait for
	// an earlier one of its origin: the latency a lost message costs the
	// ones after it. Keep it above the time a lost push takes to recover:
	// IHaveInterval plus GraftTimeout plus a round trip, and more for a
	// second try.
	OrderGapTimeout time.Duration
	// OrderMaxHeld caps, with Ordered, the messages waiting for an earlier
	// one, per origin; past it the first hole is given up at once. Memory:
	// up to MaxOrigins times OrderMaxHeld decoded messages.
	OrderMaxHeld int

	// Compression is how this node compresses the messages it broadcasts.
	// What it can read is Options.Compressors.
	Compression Compression
}

// Compression is a node's compression policy for the payloads it
// broadcasts. The frame names the compressor used, so receivers need not
// share the policy, only have the compressor (Options.Compressors). Relays
// forward a payload as its origin compressed it.
//
// Package gossip builds no compressor by name, so that the core links no
// compression library: Algorithm and Level are read by whoever builds the
// node's compressor from them: package stack (stack.Compressors, which
// checks them), or the caller with package compressor/builtin
// (builtin.Resolve(Algorithm, Level) gives Options.Compressor and
// Options.Compressors). New refuses a policy that names an algorithm when
// Options.Compressor is nil.
type Compression struct {
	// Algorithm names the compressor: "zstd", "lz4", or "" (or "identity")
	// for none. Options.Compressor, when set, takes its place.
	Algorithm string
	// Level is the algorithm's level: for "zstd" 1 (fastest) to 22, 0 for
	// the default 3; for "lz4" 0 (fast) or 1 to 9 (high compression). Only
	// the code that builds the compressor reads it.
	Level int
	// MinSize is the smallest encoded message that is compressed; smaller
	// ones go as they are, as do ones that compression does not shrink.
	MinSize int
}

// enabled reports whether the policy compresses anything.
func (c Compression) enabled() bool {
	return c.Algorithm != "" && c.Algorithm != "identity"
}

// DefaultConfig is for general purpose: the tuning guide's balanced values.
func DefaultConfig() Config {
	return Config{
		EagerFanout:             3,                      // guide: "3: Good, Default, most deployments"
		LazyFanout:              6,                      // guide: "6: Balanced" recovery speed against overhead
		MaxPeers:                30,                     // room for peers that pick this node on their own
		MaxEagerPeers:           8,                      // tree degree rarely passes this; more is flapping
		MaxLazyPeers:            24,                     // room for inbound lazy links
		IHaveInterval:           100 * time.Millisecond, // between the guide's low-latency 50ms and throughput 200ms
		IHaveBatchSize:          16,                     // between the guide's 8 and 64
		IHaveRateLimitPerSecond: 2000,                   // far above honest traffic at 100 msg/s
		IHaveRateLimitBurst:     4000,
		GraftTimeout:            500 * time.Millisecond, // between the guide's LAN 200ms and WAN 1s
		GraftMaxRetries:         5,                      // between the guide's LAN 3 and WAN 7
		GraftMaxBackoff:         4 * time.Second,
		GraftRateLimitPerSecond: 10, // between the guide's restrictive 5 and permissive 20
		GraftRateLimitBurst:     20,
		MaxMissing:              10_000,
		OptimizationThreshold:   0,                // off: each origin's tree would pay its own swaps (see the field)
		MaxOrigins:              1024,             // about 200 bytes each
		ShuffleInterval:         10 * time.Second, // one new lazy neighbour per node every 10 s
		MessageCacheTTL:         60 * time.Second, // between the guide's memory-constrained 30s and 120s
		MessageCacheMaxSize:     10_000,           // between the guide's 5,000 and 50,000
		ExchangeInterval:        2 * time.Second,  // one small frame per node per interval
		ExchangeMaxIDs:          512,
		MaxMessageSize:          1 << 20,
		CleanupMinInterval:      5 * time.Second,  // the guide's CleanupTuner minimum
		CleanupMaxInterval:      60 * time.Second, // the guide's CleanupTuner maximum
		CleanupBatch:            4096,
		GossipDatagramMaxSize:   1232, // the IPv6 minimum MTU less headers: fits any path, and a 1 KiB payload
		DeliveryBuffer:          1024,
		SendQueueSize:           1024,
		SendQueueBytes:          8 << 20,   // eight maximum-size messages
		PublishQueueBytes:       256 << 10, // 125 ms of a 2 MiB/s link, a quarter of GraftTimeout
		PublishPendingBytes:     1 << 20,
		ReconcileInterval:       10 * time.Second,
		OrderGapTimeout:         2 * time.Second, // a lost push: IHaveInterval + GraftTimeout + a retry, and slack
		OrderMaxHeld:            256,             // 2.5 s of one origin at 100 msg/s
	}
}

// LANConfig is for one datacenter: low latency, aggressive recovery.
func LANConfig() Config {
	c := DefaultConfig()
	// Announcements wait for a window of 150 ms: each node sends about a
	// frame per window to each of its LazyFanout targets, so the window,
	// not the message rate, sets their cost (on 20 nodes at 100
	// broadcasts/s, 9 IHave frames per broadcast against 19 payloads, 24
	// with 50 ms windows: TestWireOverheadLAN). What it costs is recovery
	// time: on 1,000 simulated nodes, 40% failing at once, the last
	// delivery came 414 ms after the broadcast, 336 ms with 50 ms windows;
	// with 5% loss, 502 against 444 ms (plumtree sim -overlay full
	// -preset lan -scenario failure -interval 10ms -broadcasts 200).
	c.IHaveInterval = 150 * time.Millisecond
	c.IHaveBatchSize = 32                   // a window's announcements in one frame up to 200 broadcasts/s
	c.GraftTimeout = 200 * time.Millisecond // guide: LAN
	c.GraftMaxRetries = 3                   // guide: LAN
	c.GraftMaxBackoff = time.Second
	c.GraftRateLimitPerSecond = 20 // guide: permissive, trusted network
	c.GraftRateLimitBurst = 40
	c.ExchangeInterval = time.Second
	c.ShuffleInterval = 5 * time.Second // partitions re-merge within seconds
	c.OrderGapTimeout = time.Second     // IHaveInterval + GraftTimeout + a retry, with room
	return c
}

// WANConfig is for several datacenters: high latency tolerance, larger
// batches, a longer cache, and zstd level 3 for messages of 256 bytes and
// more.
func WANConfig() Config {
	c := DefaultConfig()
	c.LazyFanout = 8                         // more announcers: recovery across slow links
	c.IHaveInterval = 200 * time.Millisecond // guide: high throughput
	c.IHaveBatchSize = 64                    // guide: high throughput
	c.GraftTimeout = time.Second             // guide: WAN
	c.GraftMaxRetries = 7                    // guide: WAN
	c.GraftMaxBackoff = 8 * time.Second
	c.GraftRateLimitPerSecond = 5 // guide: restrictive, open network
	c.GraftRateLimitBurst = 10
	c.MessageCacheTTL = 120 * time.Second // guide: high recovery capability
	c.MessageCacheMaxSize = 50_000        // guide: high recovery capability
	c.ExchangeInterval = 5 * time.Second
	c.ShuffleInterval = 20 * time.Second                                   // fewer new connections over slow links
	c.OrderGapTimeout = 5 * time.Second                                    // IHaveInterval + GraftTimeout + retries over slow links
	c.GossipDatagramMaxSize = 1024                                         // a lost datagram costs a graft over a slow link
	c.Compression = Compression{Algorithm: "zstd", Level: 3, MinSize: 256} // guide: wan().with_compression(zstd(3))
	return c
}

// LargeClusterConfig is for 1,000 nodes and more: higher fanout, peer caps,
// batches sized against IHave storms, and zstd level 3 for messages of 256
// bytes and more.
func LargeClusterConfig() Config {
	c := DefaultConfig()
	c.EagerFanout = 4 // guide: 4-5 for large clusters
	c.LazyFanout = 8  // guide: more recovery paths
	c.MaxPeers = 100  // guide: large_cluster max_peers
	// MaxEagerPeers stays DefaultConfig's 8, not the guide's 5: a node
	// takes in the neighbours that pick it as well as its own EagerFanout
	// picks, so its eager degree comes to about twice the fanout. With 5
	// there was room for one: most greetings were refused, and on 1,000
	// simulated nodes the first broadcasts pruned that sparse graph into a
	// tree 23 to 47 hops deep by the seed, against 10 with 8 (sim
	// TestLargePresetTreeIsShallow).
	c.MaxLazyPeers = 50   // guide: large_cluster max_lazy_peers
	c.IHaveBatchSize = 32 // guide: reduce IHave storm
	c.MessageCacheMaxSize = 50_000
	c.MaxOrigins = 4096                                                    // more senders
	c.Compression = Compression{Algorithm: "zstd", Level: 3, MinSize: 256} // bandwidth over CPU at this size
	return c
}

// seenTTL is the effective seen-set TTL.
func (c *Config) seenTTL() time.Duration {
	if c.SeenTTL > 0 {
		return c.SeenTTL
	}
	return 2*c.MessageCacheTTL + c.exchangeWindow()
}

func (c *Config) seenMaxSize() int {
	if c.SeenMaxSize > 0 {
		return c.SeenMaxSize
	}
	return 10 * c.MessageCacheMaxSize
}

func (c *Config) exchangeWindow() time.Duration {
	if c.ExchangeWindow > 0 {
		return c.ExchangeWindow
	}
	return c.MessageCacheTTL
}

// Validate checks c and returns every problem, each a *ConfigError: the
// engine's tuning, which NewEngine checks, and the node's settings
// (GossipDatagramMaxSize, DeliveryBuffer, the send and publish queues,
// ReconcileInterval, Compression.MinSize), which New checks besides.
// Compression.Algorithm and Level are not checked here: package gossip
// builds no compressor by name (see Compression).
func (c *Config) Validate() error {
	var v validator
	c.validateEngine(&v)
	c.validateNode(&v)
	return errors.Join(v.errs...)
}

// engineError is what NewEngine checks: Validate for the fields the Engine
// reads.
func (c *Config) engineError() error {
	var v validator
	c.validateEngine(&v)
	return errors.Join(v.errs...)
}

// validateEngine is Validate for the fields the Engine reads.
func (c *Config) validateEngine(v *validator) {
	bad, positive, positiveDur := v.bad, v.positive, v.positiveDur
	positive("EagerFanout", c.EagerFanout)
	if c.LazyFanout < 0 {
		bad("LazyFanout", "must not be negative, is %d", c.LazyFanout)
	}
	if c.MaxEagerPeers < c.EagerFanout {
		bad("MaxEagerPeers", "(%d) must be at least EagerFanout (%d)", c.MaxEagerPeers, c.EagerFanout)
	}
	if c.MaxLazyPeers < c.LazyFanout {
		bad("MaxLazyPeers", "(%d) must be at least LazyFanout (%d)", c.MaxLazyPeers, c.LazyFanout)
	}
	if c.MaxPeers < c.EagerFanout+c.LazyFanout {
		bad("MaxPeers", "(%d) must be at least EagerFanout+LazyFanout (%d)", c.MaxPeers, c.EagerFanout+c.LazyFanout)
	}
	positiveDur("IHaveInterval", c.IHaveInterval)
	positive("IHaveBatchSize", c.IHaveBatchSize)
	if c.IHaveRateLimitPerSecond <= 0 {
		bad("IHaveRateLimitPerSecond", "must be positive, is %v", c.IHaveRateLimitPerSecond)
	}
	positive("IHaveRateLimitBurst", c.IHaveRateLimitBurst)
	positiveDur("GraftTimeout", c.GraftTimeout)
	if c.GraftMaxRetries < 0 {
		bad("GraftMaxRetries", "must not be negative, is %d", c.GraftMaxRetries)
	}
	if c.GraftMaxBackoff < c.GraftTimeout {
		bad("GraftMaxBackoff", "(%v) must be at least GraftTimeout (%v)", c.GraftMaxBackoff, c.GraftTimeout)
	}
	if c.GraftRateLimitPerSecond <= 0 {
		bad("GraftRateLimitPerSecond", "must be positive, is %v", c.GraftRateLimitPerSecond)
	}
	positive("GraftRateLimitBurst", c.GraftRateLimitBurst)
	positive("MaxMissing", c.MaxMissing)
	if c.OptimizationThreshold < 0 {
		bad("OptimizationThreshold", "must not be negative, is %d", c.OptimizationThreshold)
	}
	positive("MaxOrigins", c.MaxOrigins)
	if c.ShuffleInterval < 0 {
		bad("ShuffleInterval", "must not be negative, is %v", c.ShuffleInterval)
	}
	positiveDur("MessageCacheTTL", c.MessageCacheTTL)
	positive("MessageCacheMaxSize", c.MessageCacheMaxSize)
	if c.SeenTTL < 0 {
		bad("SeenTTL", "must not be negative, is %v", c.SeenTTL)
	} else if c.SeenTTL > 0 && c.SeenTTL <= c.MessageCacheTTL+c.exchangeWindow() {
		bad("SeenTTL", "(%v) must exceed MessageCacheTTL plus ExchangeWindow (%v), or old messages are delivered again",
			c.SeenTTL, c.MessageCacheTTL+c.exchangeWindow())
	}
	if c.SeenMaxSize < 0 {
		bad("SeenMaxSize", "must not be negative, is %d", c.SeenMaxSize)
	} else if c.SeenMaxSize > 0 && c.SeenMaxSize < c.MessageCacheMaxSize {
		bad("SeenMaxSize", "(%d) must be at least MessageCacheMaxSize (%d)", c.SeenMaxSize, c.MessageCacheMaxSize)
	}
	if c.ExchangeInterval < 0 {
		bad("ExchangeInterval", "must not be negative, is %v", c.ExchangeInterval)
	}
	if c.ExchangeWindow < 0 {
		bad("ExchangeWindow", "must not be negative, is %v", c.ExchangeWindow)
	} else if c.ExchangeWindow > c.MessageCacheTTL {
		bad("ExchangeWindow", "(%v) must not exceed MessageCacheTTL (%v): a graft could not be answered", c.ExchangeWindow, c.MessageCacheTTL)
	}
	if c.ExchangeInterval > 0 {
		positive("ExchangeMaxIDs", c.ExchangeMaxIDs)
	}
	positive("MaxMessageSize", c.MaxMessageSize)
	positiveDur("CleanupMinInterval", c.CleanupMinInterval)
	if c.CleanupMaxInterval < c.CleanupMinInterval {
		bad("CleanupMaxInterval", "(%v) must be at least CleanupMinInterval (%v)", c.CleanupMaxInterval, c.CleanupMinInterval)
	}
	positive("CleanupBatch", c.CleanupBatch)
	if c.Ordered {
		positiveDur("OrderGapTimeout", c.OrderGapTimeout)
		positive("OrderMaxHeld", c.OrderMaxHeld)
	}
}

// validateNode is Validate for the fields only the node (New) reads.
func (c *Config) validateNode(v *validator) {
	bad, positive, positiveDur := v.bad, v.positive, v.positiveDur
	if c.GossipDatagramMaxSize < 0 {
		bad("GossipDatagramMaxSize", "must not be negative, is %d", c.GossipDatagramMaxSize)
	}
	positive("DeliveryBuffer", c.DeliveryBuffer)
	positive("SendQueueSize", c.SendQueueSize)
	if c.SendQueueBytes < c.MaxMessageSize {
		bad("SendQueueBytes", "(%d) must be at least MaxMessageSize (%d)", c.SendQueueBytes, c.MaxMessageSize)
	}
	if c.PublishQueueBytes < 0 {
		bad("PublishQueueBytes", "must not be negative, is %d", c.PublishQueueBytes)
	}
	if c.PublishPendingBytes < 0 {
		bad("PublishPendingBytes", "must not be negative, is %d", c.PublishPendingBytes)
	}
	positiveDur("ReconcileInterval", c.ReconcileInterval)
	if c.Compression.MinSize < 0 {
		bad("Compression.MinSize", "must not be negative, is %d", c.Compression.MinSize)
	}
}

// validator collects the problems Validate finds.
type validator struct{ errs []error }

func (v *validator) bad(field, format string, args ...any) {
	v.errs = append(v.errs, &ConfigError{Field: field, Reason: fmt.Sprintf(format, args...)})
}

func (v *validator) positive(field string, n int) {
	if n <= 0 {
		v.bad(field, "must be positive, is %d", n)
	}
}

func (v *validator) positiveDur(field string, d time.Duration) {
	if d <= 0 {
		v.bad(field, "must be positive, is %v", d)
	}
}
