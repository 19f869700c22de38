// Package gossip is the Plumtree core: epidemic broadcast trees (Leitão,
// Pereira and Rodrigues, SRDS 2007) as a pure state machine, Engine, and a
// runner, Plumtree, that drives it on a transport.Transport and a
// membership.Membership.
//
// # Using it
//
//	cfg := gossip.LANConfig()
//	node, err := gossip.New(cfg, gossip.Options[string, []byte]{
//		ID: "n1", Transport: tr, Membership: members, Codec: codec.Bytes(),
//	})
//	id, err := node.Broadcast(ctx, []byte("hello"))
//	for d := range node.Deliveries() { ... }
//	node.Close()
//
// Each broadcast is delivered once to every other node (not to its origin).
// Deliveries wait in a bounded buffer (Config.DeliveryBuffer); when the
// application falls behind, deliveries are dropped, counted in Stats and
// reported to the Observer, never blocking the protocol, and the next
// delivery the application gets says how many it missed (Delivery.Lagged).
//
// # Overload
//
// A node bounds what its own publishers have given it and it has not yet
// handed to the transport. Broadcast takes a message only while every
// peer's stream queue holds less than Config.PublishQueueBytes (and half of
// SendQueueSize frames) and all of them together less than
// PublishPendingBytes; otherwise it waits for room, first come first served,
// until its context is done. TryBroadcast never waits: it returns a
// *BusyError (errors.Is ErrBusy) naming the full queue, so that the
// application can shed load. A context that is done never sends: Broadcast
// checks it before anything else, and a Broadcast that gives up while
// waiting is withdrawn, never sent later. Messages relayed for other origins
// never wait for a local publisher; the rest of SendQueueBytes is theirs.
//
// A node does not make its neighbours repair what is only late in its own
// queues: the announcements (IHave) of a message whose eager push from this
// node still waits in one of its stream queues are held back until the push
// has left (at most GraftMaxBackoff), and the periodic exchange leaves such
// messages out. Otherwise a lazy neighbour hears of the message by datagram
// long before any payload can arrive, grafts it, and the late copies turn
// the tree into a mesh. On the receiving side, the first graft of a message
// waits GraftTimeout plus how late payloads arrive now (per origin, against
// the quickest of its payloads in the last 10 to 20 s, so that clock
// offsets cancel; at most MessageCacheTTL/4), since queues the node
// cannot see (a neighbour's, the kernel's) delay payloads and not
// announcements; and stream frames already received are read before a
// datagram.
//
// Measured (go test -run TestOverloadBackpressure -v ./gossip/, virtual
// time): 10 nodes on transport/mem with 2 MiB/s stream links, 8 KiB
// payloads, one publisher offering 2x and 4x what a link carries (512/s and
// 1,024/s against 256/s), for 5 s: 261 broadcasts/s accepted (102% of a
// link, the queues' share included), the rest waited for (Broadcast) or
// refused (TryBroadcast); every accepted broadcast delivered everywhere, RMR
// 0, no grafts, no frame dropped. Without the backpressure the same run
// accepts all 512/s, then has RMR 1.48, 1,394 grafts and 807 frames dropped
// by full send queues. With queues a publisher may fill for 1 s of a link
// (PublishQueueBytes 2 MiB, twice GraftTimeout), RMR is 0 with the IHave
// hold, the exchange trim and the graft delay; 1.57 without the hold, 0.21
// with the hold alone, 2.91 with the trim alone. On loopback sockets (the
// bench's saturation step, udp+tcp, 20 nodes, 1 KiB, 20 runs per rate on a
// loaded 2-core machine): at 2,000/s RMR at most 0.044; at 4,000/s median
// 0.04, 4 runs of 20 above 0.1 (at most 0.197); everything delivered.
//
// # The protocol
//
// Payloads are pushed along eager links (the tree) and announced (IHave,
// batched by IHaveInterval and IHaveBatchSize) along lazy links. A node that
// hears of a message it lacks waits GraftTimeout, then grafts an announcer
// (asking for the payload and to be pushed to), then the others in turn, the
// wait doubling up to GraftMaxBackoff, at most GraftMaxRetries more times. A
// duplicate payload prunes the link it came over.
//
// # Trees per origin
//
// One tree shared by every origin flapped under many concurrent senders:
// a duplicate of one origin's message pruned an edge another origin's tree
// needed, the next message grafted it back, and jitter kept it going (50
// nodes, 400 broadcasts/s from all of them, 1-3 ms links: RMR 1.8-3.6 in
// every window). So a node keeps a tree per origin, as riak_core's
// broadcast and partisan do, and Prune names the origin:
//
//   - The shared tree (Engine.EagerPeers) serves origins that have no tree
//     here yet. An origin's first message (its tree is young) is pushed
//     along it and its prunes and grafts change it, both ways, as the paper
//     does; so the shared tree settles for origins that send rarely.
//
//   - From an origin's second message on, its tree is its own: taken from
//     the shared tree as it then stands, less the neighbour the message
//     came from (upstream). It is directed: a duplicate's receiver prunes
//     the sender's side only, and a node never pushes back to its parent.
//     Pruning both ways cut trees whose edges carried some messages one
//     way and some the other (jitter flips which copy comes first), leaving
//     both ends without a parent.
//
//   - Within GraftTimeout of a prune, only duplicates of the message that
//     pruned may prune again. All of one message's duplicates come from one
//     flood and agree on which edges are redundant; two messages in flight
//     at once each see the edge the other came by as redundant, and
//     together they cut the tree (riak_core#378): one origin sending every
//     20 ms on 1,000 simulated nodes grafted 55 times per broadcast.
//
//   - Topology changes reach every tree: a newcomer's greeting, a neighbour
//     picked to replace a lost one, a neighbour dropped.
//
//   - Memory: at most MaxOrigins trees, each the eager list (at most
//     MaxEagerPeers IDs) and a few stamps, about 200 bytes with string IDs;
//     a tree idle for MessageCacheTTL is forgotten, and past MaxOrigins the
//     least recently used is (Stats: Origins, OriginsEvicted).
//
//   - Origins that send once use the shared tree, and concurrent floods of
//     their first messages over-pruned it: two nodes on one cycle each
//     pruned for a different message and cut it (1,000 simulated nodes, a
//     broadcast every 20 ms from random origins: RMR 0.20-0.28 and 30-50
//     grafts per broadcast in every window of 100). So only a sample of
//     the young messages prunes the shared tree, the same at every node (a
//     hash of the ID), sized from the rate of young messages a node sees so
//     that about one is in flight per GraftTimeout; at one broadcast at a
//     time every message prunes. The same run then has RMR 0.03 in its
//     second window of 100 and 0.0000-0.0008 after, with no grafts. The
//     tree that forms in the first, unsettled broadcasts is deeper (mean
//     last delivery 35-41 hops, against about 30 before).
//
// The cost: each origin's tree settles with its own first messages, so a
// new origin's second message may carry a few duplicates.
//
// # Overlay maintenance
//
// Neighbour sets that are only topped up when below their target freeze:
// two sides of a partition that filled their sets apart never link again.
// Every ShuffleInterval a node takes a random member that is not its
// neighbour in as a lazy neighbour and greets it, dropping a spare lazy
// neighbour (one no tree pushes to) once it has EagerFanout+LazyFanout
// (HyParView's passive view and shuffle serve the same end). A member that
// comes up while the sets are full is taken in with probability
// LazyFanout/members, so that a healed partition links at once. A node
// takes in greetings up to twice its own picks, dropping a spare one past
// that. When a tree edge is lost to a failure, up to EagerFanout lazy
// neighbours are made eager again; the next message's duplicates prune all
// but the fastest, so the tree re-forms along short paths instead of
// wherever a graft happened to attach it (Stats: Shuffles).
//
// # Recovery
//
// Every ExchangeInterval a node sends a neighbour (every fourth time, a
// random member that is not a neighbour; of the others, every other one
// goes to one of the EagerFanout neighbours it heard from last, the rest
// to any neighbour, so that a partition the membership does not notice
// leaves each node exchanging with its own side) a summary of every message
// it caches whose origin timestamp is within ExchangeWindow: runs of
// sequence numbers per origin incarnation (message IDs are an incarnation
// and a counter), so one range covers any backlog of one origin and the
// summary stays small whatever the rate. The receiver treats each message
// it lacks as announced and grafts it; the missing-message limits bound how
// many it takes in at once, and the next exchange brings the rest. The
// exchange is push-pull: a summary that lacks a message the receiver has
// cached for longer than IHaveInterval plus GraftTimeout (so its
// announcements had their chance) is answered with the receiver's own
// summary, by stream (the periodic one goes by datagram when it fits in
// GossipDatagramMaxSize), four times an ExchangeInterval over all peers
// at most, and within an interval of an answer to a peer only for a
// message cached since that answer, so a node that lost every announcement of a
// message recovers it by its own next exchange rather than waiting for a
// neighbour to pick it. This recovers every kind of loss (announcement, eager push, graft) with one
// mechanism, at one frame per node per interval; a summary of recent IDs
// only (the newest ExchangeMaxIDs) lost 71 to 320 of a 10 s cut's 1,000
// messages for good. Grafts are paced: a node grafts each peer at most at
// the rate a peer answers (GraftRateLimitPerSecond), and a graft that
// cannot be answered is answered with a Nack: "not here" (not cached: the
// requester asks the next announcer at once) or "not now, retry after"
// (rate limited). The first graft goes to the announcer with the fewest
// hops, but not to one that refused this node a place in the origin's
// tree within MessageCacheTTL while another announced the message: a node
// whose tree for the origin is at MaxEagerPeers answers a graft, then
// prunes, and the grafter, left without a parent, grafted the origin
// itself (one hop) for every message, a GraftTimeout late each time
// (package topic's TestIsolation: quiet-phase grafts in 5 of 32 topic
// runs, none with this). A 10 s cut at 100 broadcasts/s between two halves of 20 nodes, the
// membership unaware, is recovered whole 3 s after the heal (11 s with
// traffic going on).
//
// # Other choices
//
// Where the paper is silent or implementations disagree:
//
//   - Rounds are hop counts: the origin sends round 1; a node that received
//     round r forwards r+1 and announces r+1. A graft is answered with the
//     answering node's own round plus one, the hops really travelled.
//   - Only a duplicate that arrives within GraftTimeout of the first copy
//     prunes, and never one that passed through a graft (Recovered): a late
//     or recovered copy took a path chosen to recover it, and pruning for it
//     cut the edges the tree needed (measured: RMR 0.8 on 50 nodes without
//     this rule, 0.0 with).
//   - Links go both ways: a node greets each neighbour it picks (a graft
//     with no message for an eager pick, so that it pushes back, as the
//     paper's neighbours start eager; an empty IHave for a lazy one), again
//     at each exchange, at most four times, until the neighbour sends
//     something; and a node that takes on a new neighbour sends it a
//     summary of its cache. A greeting from a sender that is not a member
//     yet (a joiner learns the membership from one member at once, the
//     others by gossip) is held for MessageCacheTTL, at most MaxPeers of
//     them, and taken up when the sender becomes a member: dropped, it
//     left the joiner pushing to its picks with none of them pushing to
//     it, and a cold start grafted every origin's first message to it.
//   - A message is announced to at most LazyFanout neighbours outside its
//     origin's tree that do not have it: the first in an order of the
//     neighbours drawn once per IHaveInterval window (lazy ones first), so
//     that a window's messages share frames, which are sent when the window
//     ends. A neighbour that grafted or greeted this node within
//     MessageCacheTTL comes first in every window.
//   - The optimization (OptimizationThreshold) is the paper's Algorithm 2,
//     per origin's tree, on announcements that come before or after the
//     payload: the shorter path's announcer is grafted, and the duplicate
//     rule prunes the slower edge with the next payload. Each announcer is
//     tried once per MessageCacheTTL and origin. The presets leave it off
//     (see the field).
//   - Only members (as Membership reports them) are neighbours, so a late
//     Prune or Graft from a departed peer never re-inserts it; the runner
//     reconciles with the full membership view every ReconcileInterval.
//   - Message IDs are the origin's incarnation (8 bytes from crypto/rand,
//     drawn at each start) and a counter: never repeated, not even by a
//     node restarted with the same Seed, and never derived from the
//     payload. Options.Seed drives peer sampling only.
//   - The seen set outlives the cache (SeenTTL > MessageCacheTTL +
//     ExchangeWindow), is bounded by count, and is sharded by a keyed hash.
//     Sweeps run between CleanupMinInterval and CleanupMaxInterval and
//     remove at most CleanupBatch entries each.
//
// The wire format is version 3: a message ID goes as its 8-byte
// incarnation and a varint sequence number (10 bytes for an incarnation's
// first 16,383 broadcasts, not 16), and an IHave names each incarnation once
// for a run of its announcements (version 2 added Prune's origin, Nack and
// the exchange's ranges). A frame of another version is refused with an
// error naming both versions, and counted as a decode error.
//
// # Per-origin order
//
// A MessageID is the origin's incarnation and a sequence number that counts
// its broadcasts from 1 without a hole (a broadcast the node refuses, too
// large or while busy, takes no number). So per origin and incarnation the
// sequence is a stream, and a receiver that delivered n knows whether the
// next message it has is n+1. The engine validates and forwards every
// message as soon as it arrives, as without order: only the hand-over to the
// application waits, so one node's hold never slows the tree. The rules:
//
//   - A message that is the next of its origin's stream is released at once,
//     and with it every held message that follows it without a hole.
//   - A message after a hole is held, at most Config.OrderGapTimeout from
//     its arrival: then the messages missing before the oldest held one are
//     given up, and the application is told how many (Delivery.Skipped on
//     the next message of that origin, EventOrderSkipped). More than
//     Config.OrderMaxHeld held for one origin gives up the first hole at
//     once.
//   - A stream starts at sequence 1 when message 1 is the first to arrive.
//     A receiver that joins midway (or hears of an origin midway) waits
//     OrderGapTimeout from the first message of the stream and starts at
//     the lowest sequence number that arrived by then; what the origin sent
//     before it is not this receiver's to deliver, and is not counted as
//     skipped.
//   - A message older than what the stream has released (its sequence number
//     below the next expected one, or of an incarnation that the stream has
//     left) is never delivered: it is dropped and counted (EventOrderStale).
//   - A new incarnation of an origin (a restart) is a new stream that
//     follows the old one: its messages wait until the old incarnation has
//     been quiet for OrderGapTimeout (at least OrderGapTimeout from the
//     first of them), while the old incarnation's last messages (late, or
//     being recovered) are still delivered in order; an incarnation that
//     still sends is never retired by another, so one message of a made-up
//     incarnation cannot silence a live origin. Then the old stream
//     ends (what it holds is released, its holes given up, its late
//     messages are stale from then on) and the new one starts at its
//     lowest sequence number that arrived. A restart thus costs the new
//     incarnation's first messages up to OrderGapTimeout, and loses none
//     of the old one's that arrive in that time.
//   - Streams are bounded like origin trees: at most Config.MaxOrigins (the
//     least recently used is released and forgotten), and one that holds
//     nothing is forgotten when idle for the seen set's TTL, which outlasts
//     the message cache and the exchange window: no message of it is left
//     to recover by then. A stream forgotten under MaxOrigins pressure
//     starts again, as one joined midway: a late message of it could then
//     follow a later one, so keep MaxOrigins above the active origins.
//
// The sequence is only as trustworthy as the origin field: a peer that can
// get a made-up message past Options.Validate under another origin's name
// and a far sequence number makes that origin's real messages stale until
// it restarts. Where that matters, Validate should check the origin's
// signature.
//
// # Trust
//
// A frame's sender ID is authenticated where the transport says it
// authenticates its peers (transport.Authenticator: TLS over tcp, QUIC):
// Options.Authenticate (gossip.MatchIdentity) refuses a frame whose sender
// ID is not the name in the certificate of the connection it came on, and
// counts it. Over a transport that does not authenticate (udp, udp+tcp, tcp
// without TLS) anyone who reaches a node can speak as a member (send it
// Prunes, Grafts or announcements in that member's name); transport/seal
// keeps outsiders out with a cluster key, but any holder of the key can
// still claim any ID. Only the neighbour that sent a frame is
// authenticated, never the origin of a payload it relays, and a peer that
// learns a message ID can send a bogus payload under it first, which the
// node rejects (Options.Validate) and then treats as seen. The
// per-peer limits bound what one named peer can cost: grafts answered
// (GraftRateLimitPerSecond), announcements processed
// (IHaveRateLimitPerSecond), missing messages tracked (a quarter of
// MaxMissing per announcing peer) and stream frames queued (SendQueueSize,
// SendQueueBytes).
//
// The exchange window is measured against the origin's wall clock. An origin
// whose clock runs behind by more than ExchangeWindow gets no exchange for
// its messages; one far ahead keeps them eligible while any cache holds them.
// Keep clocks within a small fraction of ExchangeWindow (NTP suffices).
//
// # Wire paths
//
// Gossip frames up to GossipDatagramMaxSize go by the datagram path, larger
// ones by the stream path; IHave goes by datagram, Graft, Prune and exchanges
// by stream. A transport with one path carries everything.
//
// This package imports no network code, no compression library and no
// OpenTelemetry, and must never import an adapter (a transport, a
// membership, a codec or compressor implementation): it talks to the world
// through the ports transport, membership, codec and compressor, and through
// Clock and Observer. Choosing adapters by name (the compressor that
// Config.Compression names) happens above it, in package stack or
// compressor/builtin.
package gossip
