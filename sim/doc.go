// Package sim runs the Plumtree engine (gossip.Engine) at scale on a
// simulated network with virtual time, to measure what the paper measures
// (Leitão, Pereira and Rodrigues, Epidemic Broadcast Trees, SRDS 2007):
// reliability, relative message redundancy (RMR) and last delivery hop
// (LDH), for a stable cluster, after a mass failure, under churn and under
// datagram loss, against eager-push flooding on the same overlay.
//
// # How it works
//
// One goroutine runs a discrete-event loop: a priority queue of events
// ordered by (virtual time, sequence number), so ties run in the order they
// were scheduled and a run is deterministic. Every node is a gossip.Engine
// driven as the runner drives it: Receive for each arriving message,
// Tick at the time NextDeadline names, Outbox drained after every call. No
// goroutine per node, no clock, no I/O: 10,000 nodes run in one process in
// seconds.
//
// The network is bandwidth-free. Each link (an unordered pair of nodes) has
// a one-way delay drawn once from a Latency distribution (constant,
// uniform, normal or lognormal) by a hash of the seed and the pair; datagrams
// may also get a per-message Jitter. Messages take the runner's paths:
// IHave and payloads up to GossipDatagramMaxSize go by datagram, subject to
// Loss; Graft, Prune, exchanges and large payloads by a reliable stream that
// keeps each link's order. A message to a node that is down is lost.
//
// # Overlays
//
// OverlayPaper is the paper's setting: each node has Degree neighbours
// (default 4), the union of Degree/2 random Hamiltonian cycles, so the graph
// is connected and symmetric. The engine's member list is that neighbour
// set and every neighbour starts eager (the fanouts are set to Degree). When
// a node learns that neighbours failed it gets random live replacements, as
// HyParView promotes members of its passive view, and both ends are told
// (PeerUp).
//
// OverlayFull is memberlist's setting: every node knows every member and the
// engine samples its eager and lazy sets within its caps (default
// gossip.LargeClusterConfig). A failure reaches every survivor (PeerDown)
// after the failure-detection delay, each at its own time; a join reaches
// them all at one time after that delay. The member set costs O(N) per node,
// so O(N²) in all: measure it with Perf before running 10,000 nodes.
//
// # Partitions and many senders
//
// Partition splits the nodes in two sides of any ratio (Split), cuts every
// link between them (messages already in flight still arrive) and, after
// the detection delay, has the membership report the other side failed
// on each side: on OverlayFull every member of it goes down (PeerDown); on
// OverlayPaper the neighbours across are dropped and replaced from the
// node's side. At the heal the links come back and, after the detection
// delay, so does the other side (PeerUp of every member of it; on
// OverlayPaper the lost neighbours are linked again, room permitting).
// Backlog is the same cut with the membership unaware: nobody is declared
// failed, the links just drop everything. Result.Cut says what crossed:
// the cut's broadcasts that reached every node, those that did while
// still cached (within the engine's MessageCacheTTL of being sent), what
// was never recovered, the recovery time after the heal, and the links
// across the sides at the end. Senders draws the origins from Senders
// nodes with a short interval (20 ms by default), so that broadcasts
// overlap in flight. Result.Windows summarizes the measured broadcasts
// Window at a time, aligned at the failure or the heal, to see whether
// and when a tree settles.
//
// # Measures
//
// Computed as DESIGN.md's "Measures everyone uses" says, per broadcast:
// reliability is the share of correct nodes (up when the broadcast was sent
// and still up Settle later) that delivered it, the origin included; RMR is
// payload messages received / (nodes that delivered - 1) - 1, counting
// first copies, duplicates and graft replies at every node; LDH is the
// largest hop count of a delivery. Nodes that joined after a broadcast was
// sent (and may catch up on it through the exchange) are left out of its
// measures. Control messages (IHave, Graft, Prune,
// exchange frames) are counted in the window from one broadcast to the next.
//
// Flooding (Protocol Flood) is implemented here, not in the engine: a node
// forwards the first copy of a payload to every overlay neighbour except the
// one it came from and drops later copies, with no recovery. On OverlayFull
// its overlay is EagerFanout random members per node, made symmetric; on
// OverlayPaper the same neighbour sets as Plumtree's. The overlay, origins,
// failures, joins and link delays come from separate seeded generators, so
// the two protocols see the same cluster and the same events.
//
// # Topics
//
// RunTopics simulates package topic: nodes subscribe to topics at random
// and each topic is a Run of its own among its subscribers (topics share
// nothing here, since links have no bandwidth); the measures are per
// topic. Subscription announcements are not simulated.
//
// # Not modelled
//
// The runner's periodic reconcile with the membership view (membership here
// never drops an event), bandwidth and queueing, message encoding and
// compression (payloads are opaque bytes of PayloadSize), and CPU time.
package sim
