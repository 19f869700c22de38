package gossip

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/plumtree-go/plumtree/gossip/internal/wire"
	"github.com/plumtree-go/plumtree/transport"
)

// MessageID identifies one broadcast: the origin's incarnation (8 bytes
// drawn from crypto/rand when the node starts) followed by its sequence
// number (8 bytes, big-endian, from 1). IDs never repeat, not even across a
// restart with the same Options.Seed, and are never derived from the
// payload, so two broadcasts of the same bytes are two messages.
type MessageID [16]byte

// Incarnation is the origin's incarnation: the first 8 bytes of the ID.
func (id MessageID) Incarnation() uint64 { return binary.BigEndian.Uint64(id[:8]) }

// Seq is the origin's sequence number of the message: the last 8 bytes.
func (id MessageID) Seq() uint64 { return binary.BigEndian.Uint64(id[8:]) }

// makeID is the ID of the seq-th message of an incarnation.
func makeID(incarnation, seq uint64) MessageID {
	var id MessageID
	binary.BigEndian.PutUint64(id[:8], incarnation)
	binary.BigEndian.PutUint64(id[8:], seq)
	return id
}

// String is the ID in hex.
func (id MessageID) String() string { return hex.EncodeToString(id[:]) }

// Kind is a protocol message type.
type Kind uint8

// The protocol's message types.
const (
	KindGossip   = Kind(wire.TypeGossip)   // a full payload
	KindIHave    = Kind(wire.TypeIHave)    // announcements of payloads
	KindGraft    = Kind(wire.TypeGraft)    // "make me eager" (and send me a payload)
	KindPrune    = Kind(wire.TypePrune)    // "make me lazy"
	KindExchange = Kind(wire.TypeExchange) // periodic summary of the messages a node caches
	KindNack     = Kind(wire.TypeNack)     // "I cannot answer your graft": not here, or not now
)

// String is the type's name: gossip, ihave, graft, prune, exchange, nack.
func (k Kind) String() string { return wire.Type(k).String() }

// Announcement names a message and the hop count at which the receiver of the
// announcement would get it.
type Announcement = wire.Announcement

// Range names the message IDs of one incarnation with sequence numbers
// First to First+N-1: an Exchange summarizes what a node caches as ranges.
type Range = wire.Range

// Payload is a message's body as it travels: possibly compressed.
type Payload struct {
	// Compressor is the wire ID of the compressor that produced Data (0: none).
	Compressor byte
	Data       []byte // the encoded message, compressed if Compressor says so
}

// Msg is one protocol message, to or from a peer. Which fields mean something
// depends on Kind. Byte slices in a Msg are shared and must not be modified.
type Msg[ID comparable] struct {
	Kind  Kind      // which protocol message
	ID    MessageID // Gossip, Graft, Nack
	Round uint32    // Gossip: hops travelled on arrival; Graft: the announced hops

	// Origin is the node that broadcast the message (Gossip), or whose tree
	// a Prune concerns. A Prune with Shared set concerns the shared tree
	// instead, the one a node uses for origins it has no tree of.
	Origin    ID      // Gossip, Prune
	Shared    bool    // Prune
	Timestamp int64   // Gossip: the origin's wall clock at broadcast, Unix ns
	Trace     []byte  // Gossip: optional trace context
	Payload   Payload // Gossip: the body

	// GraftReply marks a Gossip sent to answer a Graft rather than pushed
	// along the tree. It is not on the wire.
	GraftReply bool
	// Recovered marks a Gossip whose payload passed through a graft on its
	// way here: its hop count says nothing about the tree, so the tree
	// optimization ignores it.
	Recovered bool

	Announcements []Announcement // IHave
	Ranges        []Range        // Exchange

	// ExchangeReply marks an Exchange that answers a summary that lacked
	// messages this node has: it goes by stream, where the periodic one
	// goes by datagram. It is not on the wire.
	ExchangeReply bool

	WantPayload bool // Graft

	// Retry is how long a grafting node should wait before it asks this
	// peer again (Nack); 0 means the message is not here at all.
	Retry time.Duration
}

// Send is a message the engine wants sent.
type Send[ID comparable] struct {
	To  ID      // the peer to send to
	Msg Msg[ID] // what to send
}

// RawDelivery is a message as the engine delivers it: the payload still in
// its wire form.
type RawDelivery[ID comparable] struct {
	ID        MessageID // the broadcast's ID
	From      ID        // the neighbour it arrived from
	Origin    ID        // the node that broadcast it
	Hops      uint32    // hops from the origin
	Timestamp time.Time // the origin's clock at broadcast
	Trace     []byte    // the trace context it arrived with, if any
	Payload   Payload   // as it travelled: possibly compressed
	// Recovered: the payload passed through a graft on its way here.
	Recovered bool
}

// EventKind says what an observed Event reports.
type EventKind uint8

// Events the engine and runner report to an Observer.
const (
	_                     EventKind = iota
	EventSent                       // a frame went out: Type, Path, Bytes
	EventReceived                   // a frame came in: Type, Path, Bytes
	EventDelivered                  // a message reached the application: Message, Hops, Latency
	EventDuplicate                  // a payload arrived again: Message
	EventRejected                   // the application's validation refused a message
	EventDeliveryDropped            // the delivery buffer was full
	EventGraftSent                  // Message, Count = attempt number from 1
	EventGraftAnswered              // a graft was answered with a payload
	EventGraftMiss                  // a graft asked for a message no longer cached
	EventGraftRateLimited           // a peer's graft was refused by the rate limit
	EventGraftFailed                // every retry failed; the message was given up
	EventRecovered                  // a missing message arrived after a graft: Latency since the first graft
	EventPruneSent
	EventPruneReceived
	EventPromoted      // a peer moved to the eager set
	EventDemoted       // a peer moved to the lazy set
	EventOptimized     // the tree optimization swapped a parent
	EventIHaveSent     // Count announcements in one frame
	EventIHaveDropped  // Count announcements refused by the rate or missing limit
	EventExchangeSent  // Count message IDs
	EventCacheEvicted  // Count entries removed from the message cache
	EventSeenEvicted   // Count entries removed from the seen set
	EventDecodeError   // a frame from the network could not be read
	EventSendError     // a frame could not be handed to the transport
	EventUnknownPeer   // a frame to a peer with no known address was dropped
	EventShuffled      // overlay maintenance took a new neighbour in (Count: neighbours dropped for it)
	EventNackSent      // a graft could not be answered: Message; Count 1 when it may be asked again later
	EventNackReceived  // a graft was refused: Message; Count 1 when it may be asked again later
	EventOriginEvicted // Count origin trees forgotten (idle, or over MaxOrigins)
	// EventStuckDeadline: after Tick(now) the engine still asked to be woken
	// at or before now (an engine bug). The runner waits stuckBackoff
	// instead of spinning; Err says which deadline.
	EventStuckDeadline
	// EventOrderSkipped (Config.Ordered): Count messages of an origin were
	// given up, not recovered within OrderGapTimeout (or pushed out by
	// OrderMaxHeld); Message is the one released after the hole.
	EventOrderSkipped
	// EventOrderStale (Config.Ordered): Message came after a later message
	// of its origin was released, and was dropped instead of delivered out
	// of order.
	EventOrderStale
)

var eventNames = [...]string{
	EventSent: "sent", EventReceived: "received", EventDelivered: "delivered",
	EventDuplicate: "duplicate", EventRejected: "rejected", EventDeliveryDropped: "delivery_dropped",
	EventGraftSent: "graft_sent", EventGraftAnswered: "graft_answered", EventGraftMiss: "graft_miss",
	EventGraftRateLimited: "graft_rate_limited", EventGraftFailed: "graft_failed", EventRecovered: "recovered",
	EventPruneSent: "prune_sent", EventPruneReceived: "prune_received", EventPromoted: "promoted",
	EventDemoted: "demoted", EventOptimized: "optimized", EventIHaveSent: "ihave_sent",
	EventIHaveDropped: "ihave_dropped", EventExchangeSent: "exchange_sent", EventCacheEvicted: "cache_evicted",
	EventSeenEvicted: "seen_evicted", EventDecodeError: "decode_error", EventSendError: "send_error",
	EventUnknownPeer: "unknown_peer", EventShuffled: "shuffled", EventNackSent: "nack_sent",
	EventNackReceived: "nack_received", EventOriginEvicted: "origin_evicted", EventStuckDeadline: "stuck_deadline",
	EventOrderSkipped: "order_skipped", EventOrderStale: "order_stale",
}

// String is the event's name, as in metrics and logs.
func (k EventKind) String() string {
	if int(k) < len(eventNames) && eventNames[k] != "" {
		return eventNames[k]
	}
	return fmt.Sprintf("event(%d)", uint8(k))
}

// Event is one observation. Fields that do not apply to the Kind are zero.
type Event struct {
	Kind    EventKind      // what happened
	Type    Kind           // EventSent, EventReceived
	Path    transport.Path // EventSent, EventReceived
	Message MessageID      // the message concerned, when there is one
	Hops    uint32         // EventDelivered, EventDuplicate: hops from the origin
	Count   int            // how many, for events about several (see each kind)
	Bytes   int            // EventSent, EventReceived, EventDecodeError: frame size
	Latency time.Duration  // EventDelivered: from the origin's broadcast; EventRecovered: from the first graft
	// GraftReply marks an EventSent of a Gossip that answered a graft.
	GraftReply bool
	Err        error
}

// Observer receives events. It is called on the protocol loop: it must be
// quick and must not call back into the node.
type Observer interface {
	Observe(Event)
}

// ObserverFunc adapts a function to Observer.
type ObserverFunc func(Event)

// Observe calls f(e).
func (f ObserverFunc) Observe(e Event) { f(e) }
