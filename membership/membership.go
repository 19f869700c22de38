// Package membership defines who is in the cluster: a Membership reports the
// current members with their transport addresses and a stream of changes.
//
// Implementations: membership/static (a fixed list with explicit add and
// remove) and, in its own package, an adapter on hashicorp/memberlist.
//
// This package must never import the gossip core or any transport.
package membership

import "fmt"

// Member is one node of the cluster.
type Member[ID comparable] struct {
	// ID is the node's identity, as the broadcast core knows it.
	ID ID
	// Addr is the address of the node's broadcast transport.
	Addr string
}

// EventKind says what happened to a member.
type EventKind uint8

const (
	// Join: a member appeared.
	Join EventKind = iota + 1
	// Leave: a member left gracefully.
	Leave
	// Fail: a member was declared failed.
	Fail
	// Update: a member's address changed.
	Update
)

// String is the kind's name: join, leave, fail, update.
func (k EventKind) String() string {
	switch k {
	case Join:
		return "join"
	case Leave:
		return "leave"
	case Fail:
		return "fail"
	case Update:
		return "update"
	default:
		return fmt.Sprintf("event(%d)", uint8(k))
	}
}

// Event is a change in membership.
type Event[ID comparable] struct {
	Kind   EventKind  // what happened
	Member Member[ID] // to whom, with its address (the new one for Update)
}

// Membership is the local node's view of the cluster.
type Membership[ID comparable] interface {
	// Members returns a snapshot of the members currently alive. It may
	// include the local node; users of the view skip it.
	Members() []Member[ID]
	// Events delivers changes, in order per member. Each join, leave and
	// failure is reported once. The channel is closed when the membership is
	// closed. A consumer that falls behind may miss events; it reconciles
	// with Members.
	Events() <-chan Event[ID]
}
