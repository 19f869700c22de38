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
// hears of a message it lacks waits GraftTimeout, then grafts the first
// announcer (making the link eager and asking for the payload), then the
// others in turn, the wait doubling up to GraftMaxBackoff, at most
// GraftMaxRetries more times. A duplicate payload prunes its link to lazy.
//
// Choices where the paper is silent or where implementations disagree:
//
//   - Rounds are hop counts: the origin sends round 1; a node that received
//     round r forwards r+1 and announces r+1. A graft is answered with the
//     answering node's own round plus one, the hops really travelled.
//   - The sender of a first payload becomes eager (paper), within
//     MaxEagerPeers; past the cap the link is answered, then pruned.
//   - Only a duplicate that arrives within GraftTimeout of the first copy
//     prunes. A later one is an old message that some node recovered by a
//     graft and passed on over today's tree; pruning for it cut the edges the
//     tree needed (measured: RMR 0.8 on 50 nodes without this rule, 0.0 with).
//   - A link a graft went over, in either direction, is not pruned for
//     5 x GraftTimeout. With many origins sending, a duplicate of one
//     message pruned the edge another message had just grafted, and the
//     next message grafted it again: the one shared tree flapped and never
//     settled (measured: 50 nodes, 50 broadcasts/s from random origins, RMR
//     0.4-0.5 and 12 grafts per broadcast in 3 runs of 5; with the hold,
//     RMR 0 and no grafts in all of them).
//   - Links go both ways: a node greets each neighbour it picks (a graft
//     with no message for an eager pick, so that it pushes back, as the
//     paper's neighbours start eager; an empty IHave for a lazy one), again
//     at each exchange, at most four times, until the neighbour sends
//     something; and a node that takes on a new neighbour sends it the IDs
//     of recent messages. Without it a node that no other node picked, a
//     newcomer to a settled cluster say, heard nothing, and one that no node
//     picked as eager got every early broadcast by a graft (measured: 54
//     grafts while 50 nodes formed their tree, 12 with eager greetings).
//   - A message is announced to at most LazyFanout lazy neighbours that do
//     not have it, a fresh random choice per message, not to every lazy
//     neighbour: with links both ways a lazy set is about twice LazyFanout,
//     and on 20 nodes with LANConfig announcing to all of them cost 0.19
//     wire bytes per payload byte (0.11 with the cap). A lazy neighbour
//     that grafted this node within MessageCacheTTL hears of every message:
//     a node that no neighbour pushes to otherwise missed whole messages
//     until the exchange.
//   - The optimization (OptimizationThreshold) is the paper's Algorithm 2:
//     when a payload arrives after an announcement that was at least the
//     threshold hops shorter, the announcer is grafted. The paper also
//     prunes the parent at once; here the duplicate rule does it with the
//     next payload, since an eager prune cut nodes off the tree whenever the
//     announcer refused the graft (its eager set full). Payloads recovered by
//     a graft carry a flag and never drive the optimization. With many
//     senders one tree cannot be short for all of them and the optimization
//     keeps changing it, so the presets leave it off (see the field).
//   - Only members (as Membership reports them) enter the eager and lazy
//     sets, so a late Prune or Graft from a departed peer never re-inserts
//     it; the runner reconciles with the full membership view every
//     ReconcileInterval, so a dropped event never leaves a ghost peer.
//   - Message IDs are 16 random bytes, never derived from the payload.
//   - The seen set outlives the cache (SeenTTL > MessageCacheTTL +
//     ExchangeWindow), is bounded by count, and is sharded so that sweeps and
//     evictions touch one shard at a time. Sweeps run between
//     CleanupMinInterval and CleanupMaxInterval and remove at most
//     CleanupBatch entries each, so a large cache never stalls the loop.
//
// # Recovery after a partition
//
// The paper's single IHave is lost when a partition drops it, and so is an
// eager push. Two remedies are in use: re-sending announcements until
// acknowledged (riak_core's broadcast), and a periodic exchange of recent
// message IDs between neighbours (riak_core's exchange). This package does
// the exchange: every ExchangeInterval a node sends one random neighbour the
// IDs of the messages it received whose origin timestamp is within
// ExchangeWindow (newest first, at most ExchangeMaxIDs); the neighbour treats
// the ones it lacks as announcements and grafts them. It was chosen because
// it recovers every kind of loss (announcement, eager push, graft) with one
// mechanism and no per-message state, at a cost that does not grow with the
// message rate per link (one frame per node per interval), whereas
// acknowledged announcements cost at least two control messages per lazy
// link per message and cannot recover a lost eager push. Bounding the window
// by the origin's timestamp keeps an old message from being passed around
// for ever.
//
// # Trust
//
// The sender ID in a frame is not yet authenticated: anyone who can reach a
// node's transport can speak as a member (send it Prunes, Grafts or
// announcements in that member's name), and a peer that learns a message ID
// can send a bogus payload under it first, which the node rejects and then
// treats as seen. Until authenticated transports bind the sender to a
// certificate or key, run the cluster on a network only members reach. The
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
// This package imports no network code and no OpenTelemetry; it talks to the
// world through transport, membership, codec, compressor, Clock and Observer.
package gossip
