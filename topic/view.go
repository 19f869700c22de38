package topic

import "github.com/plumtree-go/plumtree/membership"

// viewEvents is the event buffer of a topic's membership view. A view
// whose reader falls behind drops events (counted in
// HostStats.ViewEventsDropped); the topic's Plumtree reconciles with
// Members every Config.ReconcileInterval.
const viewEvents = 128

// view is a topic's membership: the members that announced the topic, with
// Join and Leave events as they subscribe and unsubscribe (and Fail when a
// subscriber fails). The host holds its state; view reads it.
type view[ID comparable] struct {
	h      *Host[ID]
	tag    uint64
	events chan membership.Event[ID]
	closed bool // under h.mu
}

var _ membership.Membership[string] = (*view[string])(nil)

// Members returns the subscribers of the topic the host knows now.
func (v *view[ID]) Members() []membership.Member[ID] {
	v.h.mu.Lock()
	defer v.h.mu.Unlock()
	set := v.h.byTag[v.tag]
	out := make([]membership.Member[ID], 0, len(set))
	for id := range set {
		if m, ok := v.h.members[id]; ok {
			out = append(out, m)
		}
	}
	return out
}

// Events delivers the changes; it is closed when the topic closes.
func (v *view[ID]) Events() <-chan membership.Event[ID] { return v.events }

// sendLocked queues ev without blocking; false when it had to drop it.
func (v *view[ID]) sendLocked(ev membership.Event[ID]) bool {
	if v.closed {
		return true
	}
	select {
	case v.events <- ev:
		return true
	default:
		return false
	}
}

func (v *view[ID]) closeLocked() {
	if !v.closed {
		v.closed = true
		close(v.events)
	}
}
