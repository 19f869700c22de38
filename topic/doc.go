// Package topic runs many independent broadcast groups, topics, over one
// transport and one membership.
//
// A Host owns a node's transport, membership and identity. Subscribe
// starts a topic on it: a gossip.Plumtree of its own, with its own message
// type, codec, Config (preset), stats and observer, whose tree spans only
// the members that subscribe to the same name. Close on the Topic
// unsubscribes. For a single stream, gossip.New stays the short way.
//
//	h, err := topic.NewHost(topic.HostOptions[string]{ID: "n1", Transport: tr, Membership: ms})
//	orders, err := topic.Subscribe(h, "orders", gossip.LANConfig(), topic.Options[string, Order]{Codec: codec.JSON[Order]()})
//	prices, err := topic.Subscribe(h, "prices", gossip.DefaultConfig(), topic.Options[string, []byte]{Codec: codec.Bytes()})
//	id, err := orders.Broadcast(ctx, Order{...})
//	for d := range prices.Deliveries() { ... }
//
// # Wire
//
// Every frame a host sends starts with HostVersion and the topic's 8-byte
// tag (Tag: the xxhash64 of the name), PrefixLen bytes in all; a topic's
// Plumtree sees the real transport's limits minus those. A frame with
// another version, or for a tag the host does not subscribe to (never, or
// no longer), is refused, counted in HostStats and logged (once per tag at
// Info), never delivered. Two names with the same tag cannot be subscribed
// on one host: Subscribe fails.
//
// # Who subscribes to what
//
// No extra service: each host announces its subscription set (the tags,
// with an incarnation drawn at start and a version that grows with each
// change) in a control frame, the reserved tag 0:
//   - to every member, AnnounceDelay after a change (changes in between
//     are coalesced);
//   - to a member that joins, asking for its set in return;
//   - every AnnounceInterval to AnnounceFanout random members
//     (anti-entropy), so that a lost announcement heals.
//
// An announcement goes by datagram when it fits (100 topics with a short
// node ID is about 830 bytes) and by stream otherwise; a host subscribes to
// at most MaxTopics. A member's set is forgotten when it leaves or fails,
// and an announcement from a node that is not a member is refused. Each
// topic's Plumtree reads a filtered membership: the members that announced
// the topic, with Join and Leave events as they subscribe and unsubscribe.
//
// # Isolation
//
// A topic under overload does not slow the others. Each topic's Plumtree
// has its own flow control and its own send queue and sender goroutine per
// peer; the topic's transport hands each stream frame to the real
// transport from that sender. So each topic has at most one frame waiting
// at the real transport per peer, and the waiting senders are served in
// turn (transport/mem serves them in arrival order; a stream transport
// that blocks its callers on a full queue does the same). A quiet topic's
// frame then waits for at most one frame of a flooded topic per link,
// rather than for the flooded topic's whole backlog (that one frame is the
// floor: 16 KiB on a 2 MiB/s link is 7.8 ms per hop). The deviation from a
// host-level round-robin writer per peer is on purpose, as that would add
// a goroutine and a copy per frame for the same order. On receipt, a
// datagram that finds its topic's queue full is dropped and counted in the
// topic's transport Stats; a frame waits, as a stream does.
//
// # Late subscribers
//
// A new subscriber delivers what is broadcast after it subscribed. The
// topic's exchange (gossip.Config.ExchangeInterval) also offers it what
// its neighbours still cache; it is delivered only with Options.Backfill
// (otherwise it is counted in Topic.Skipped).
//
// # Metrics
//
// A topic's Stats are its Plumtree's. For OpenTelemetry metrics with the
// topic as an attribute, give each topic an observe.Observer made with
// observe.WithTopic(name); topic names are the application's, so the
// attribute stays bounded.
//
// # Cost
//
// Per frame: PrefixLen (9) bytes. Per node and topic, idle: 160 to 200 KB
// of heap with gossip.DefaultConfig (most of it the 1,024-slot delivery
// buffer), about 67 KB with DeliveryBuffer and SendQueueSize at 64, and a
// goroutine for the topic's loop plus one sender per neighbour.
// Announcements: 8 bytes per topic in the set, to AnnounceFanout members
// per AnnounceInterval, and to every member after a change.
//
// This package sits above the core: it imports gossip, transport,
// membership and codec; the core, the ports and the adapters never import
// it.
package topic
