// Package chaos wraps any transport so that it drops, delays, duplicates,
// reorders and partitions traffic by seeded rules: a way to test a stack of
// your own (your transport, your membership, your configuration) against a
// bad network, deterministically.
//
// # Use
//
// Make one Network for a test and wrap every node's transport with it; the
// Network holds the rules and the partition that all of them consult, so a
// test can cut a cluster in two and heal it at run time:
//
//	cn, err := chaos.New(chaos.Config{
//		Seed: 1,
//		Rules: []chaos.Rule{
//			// From one subnet to another: 80 to 100 ms of delay, both paths.
//			{From: "10.0.1.*", To: "10.0.2.*", Delay: 80 * time.Millisecond, Jitter: 20 * time.Millisecond},
//			// Everywhere else: 10% of the datagrams lost. (Without Path, Drop
//			// would also fail 10% of the stream frames, as broken connections.)
//			{Path: transport.PathDatagram, Drop: 0.10},
//		},
//	})
//	tr, err := cn.Wrap(inner) // inner: any transport.Transport
//	node, err := gossip.New(cfg, gossip.Options[string, []byte]{Transport: tr, ...})
//	...
//	cn.Partition([]string{"a", "b"}, []string{"c", "d"})
//	cn.Heal()
//	fmt.Println(cn.Stats()) // the faults injected so far
//
// Rules can be replaced at any time with SetRules; everything is safe for
// concurrent use. A wrapped transport keeps the capabilities of the one it
// wraps: it implements transport.Datagram, transport.Stream and
// transport.StatsReporter exactly when the inner transport does (Stats is the
// inner transport's counters, plus what chaos lost of what it accepted in
// DatagramsDropped and FramesDropped; a duplicated datagram counts twice in
// DatagramsSent), and forwards PeerIdentity when the inner transport has it. Received
// messages come straight from the inner transport, so Message.From and
// Message.Identity are untouched. The faults it injected are counted by
// Wrapped.Faults and, summed over every wrapped transport, by Network.Stats.
//
// # Rules
//
// A Rule selects links (a sender and a destination address, by glob pattern
// or by a function) and a path, and gives the probabilities of a drop, a
// duplicate and a reordering, and a delay (fixed plus jitter drawn from a
// uniform, half-normal or exponential distribution). For each send, the
// first rule that matches decides alone (rules do not add up: put the
// specific ones first); a send no rule matches is passed on untouched. The knobs are those of a network emulator such as netem (loss,
// duplicate, reorder, delay with jitter and a distribution), per link.
//
// # Faults are injected on the sending side
//
// Every decision is made in SendDatagram or SendFrame of the sender's
// wrapper, never when receiving, because only there is the link known
// (sender and destination address) and the sequence of sends on it
// deterministic: the receive side sees frames from every peer interleaved in
// an order set by the scheduler. Each link (sender, destination, path) has
// its own PCG generator seeded from Config.Seed and the link, and every send
// draws the same number of values from it whatever the rules say, so the same
// seed and the same sequence of sends on a link give the same decisions,
// whatever happens on other links and whatever rules change. A wrapped
// transport that receives from an unwrapped one sees that peer's traffic
// unharmed.
//
// # The datagram path
//
// The datagram path is best effort and unordered, so every fault is allowed:
// a dropped datagram is counted and SendDatagram returns nil, as a network
// would lose it; a duplicate is sent twice (the copy with its own jitter); a
// delayed datagram is sent after its delay by a timer; a reordered datagram
// is held back until the next datagram on the same link has been handed to
// the inner transport (so that one overtakes it), or until the rule's
// ReorderWindow has passed with none.
//
// # The stream path
//
// The stream path promises frames whole, once each and in order per peer,
// and the core relies on it; the only way it may fail is the way a
// connection fails: frames in flight are lost, and the sender may learn it.
// So chaos injects nothing else there:
//
//   - Duplicate and Reorder do not apply to the stream path.
//   - Delay (with jitter) delays frames in a first-in first-out queue per
//     link: a frame is due no earlier than the frame before it, so order is
//     kept. A goroutine per link, alive while its queue is not empty, hands
//     the frames to the inner transport when they are due. The queue holds
//     at most Config.StreamQueue frames; past that SendFrame blocks
//     (backpressure) until there is room, its context ends or Close. An error
//     the inner transport returns for a delayed frame is returned by the next
//     SendFrame to that address (as a transport that dials in the background
//     reports a failed dial), which then sends nothing.
//   - Drop models a connection that fails: the frame is lost, so are the
//     frames still waiting in that link's delay queue, and SendFrame returns
//     an error wrapping ErrInjected. Frames after it go through again, like
//     a reconnection.
//   - A partition makes SendFrame fail at once with an error wrapping
//     ErrPartitioned and transport.ErrUnreachable, like a peer that cannot
//     be reached (PartitionFail, the default), or lose the frame silently and
//     return nil, like a write to a connection whose peer has vanished
//     (PartitionSilent); see Config.StreamPartition.
//
// # Partitions
//
// Network.Partition splits the addresses into groups that cannot reach each
// other, on both paths and in both directions; an address in no group
// reaches everyone. Heal removes the partition. It is checked when a frame is
// sent and again when a delayed or held frame is handed to the inner
// transport, so frames waiting in the wrapper do not cross a partition made
// while they waited. Frames already handed to the inner transport are beyond
// its reach.
//
// # Time
//
// Delays use Config.Clock, the system clock by default. Inside a
// testing/synctest bubble the system clock is the bubble's fake clock, so a
// test over transport/mem runs delays of minutes in no real time. Nothing
// sleeps: delays are timers and goroutines that wait on them; Close stops
// them all, drops what they held (counted as Abandoned), waits for every
// goroutine the wrapper started, and then closes the inner transport.
//
// Like package transport itself, this package must never import the gossip
// core: it moves opaque bytes and nothing more.
package chaos
