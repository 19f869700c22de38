// Package static is a Membership over an explicit list of members, changed
// only by calls to Add, Remove and Fail. It suits fixed clusters, tests and
// callers that learn about members some other way.
package static

import (
	"slices"
	"sync"

	"github.com/plumtree-go/plumtree/membership"
)

// EventBuffer is the capacity of the channel returned by Events.
const EventBuffer = 256

// Static is a membership.Membership[ID] whose members are set by its caller.
//
// Events are never dropped while the Static is open, and Add, Remove and Fail
// never wait for the consumer: events that do not fit in the channel are kept
// in order in an unbounded queue and a goroutine feeds them to the channel as
// the consumer reads. That goroutine runs only while such a backlog exists
// and is stopped by Close. A caller that stops reading Events while members
// keep changing should Close the Static, or the backlog grows without bound.
//
// A Static is safe for concurrent use.
type Static[ID comparable] struct {
	events    chan membership.Event[ID]
	done      chan struct{} // closed by Close, stops the forwarder
	fwd       sync.WaitGroup
	closeOnce sync.Once

	mu         sync.Mutex
	members    []membership.Member[ID] // in order of joining
	index      map[ID]int              // ID to position in members
	backlog    []membership.Event[ID]  // events waiting for room in the channel
	forwarding bool                    // a forwarder goroutine is running
	closed     bool
}

var _ membership.Membership[string] = (*Static[string])(nil)

// New returns a Static holding members, in the order given. The initial
// members produce no events: read them with Members. If an ID is given more
// than once, its last address wins and it keeps its first position.
func New[ID comparable](members ...membership.Member[ID]) *Static[ID] {
	s := &Static[ID]{
		events: make(chan membership.Event[ID], EventBuffer),
		done:   make(chan struct{}),
		index:  make(map[ID]int, len(members)),
	}
	for _, m := range members {
		if i, ok := s.index[m.ID]; ok {
			s.members[i] = m
			continue
		}
		s.index[m.ID] = len(s.members)
		s.members = append(s.members, m)
	}
	return s
}

// Members returns a snapshot of the current members in the order they
// joined (a member that left and was added again counts from its new join).
// The caller may keep and modify it.
func (s *Static[ID]) Members() []membership.Member[ID] {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.members)
}

// Events returns the channel of membership changes. It is the same channel
// on every call, and it is closed by Close.
func (s *Static[ID]) Events() <-chan membership.Event[ID] { return s.events }

// Add adds m and reports a Join event. If a member with m.ID is already
// present with another address, its address becomes m.Addr and an Update
// event (carrying the new address) is reported; with the same address
// nothing happens. Add after Close does nothing.
func (s *Static[ID]) Add(m membership.Member[ID]) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if i, ok := s.index[m.ID]; ok {
		if s.members[i].Addr == m.Addr {
			return
		}
		s.members[i] = m
		s.emit(membership.Event[ID]{Kind: membership.Update, Member: m})
		return
	}
	s.index[m.ID] = len(s.members)
	s.members = append(s.members, m)
	s.emit(membership.Event[ID]{Kind: membership.Join, Member: m})
}

// Remove removes the member with id and reports a Leave event. Removing an
// absent member, or removing after Close, does nothing.
func (s *Static[ID]) Remove(id ID) { s.drop(id, membership.Leave) }

// Fail removes the member with id as failed and reports a Fail event.
// Failing an absent member, or failing after Close, does nothing.
func (s *Static[ID]) Fail(id ID) { s.drop(id, membership.Fail) }

func (s *Static[ID]) drop(id ID, kind membership.EventKind) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	i, ok := s.index[id]
	if !ok {
		return
	}
	m := s.members[i]
	s.members = slices.Delete(s.members, i, i+1)
	delete(s.index, id)
	for j := i; j < len(s.members); j++ {
		s.index[s.members[j].ID] = j
	}
	s.emit(membership.Event[ID]{Kind: kind, Member: m})
}

// emit delivers ev, or queues it behind earlier events. s.mu is held.
func (s *Static[ID]) emit(ev membership.Event[ID]) {
	if !s.forwarding {
		select {
		case s.events <- ev:
			return
		default:
		}
		s.forwarding = true
		s.fwd.Go(s.forward)
	}
	s.backlog = append(s.backlog, ev)
}

// forward feeds the backlog to the channel, oldest first, until the backlog
// is empty or Close is called.
func (s *Static[ID]) forward() {
	for {
		s.mu.Lock()
		if len(s.backlog) == 0 || s.closed {
			s.forwarding = false
			s.mu.Unlock()
			return
		}
		ev := s.backlog[0]
		s.backlog[0] = membership.Event[ID]{} // let the member be collected
		s.backlog = s.backlog[1:]
		s.mu.Unlock()

		select {
		case s.events <- ev:
		case <-s.done:
			// Put ev back so Close can still deliver it in order.
			s.mu.Lock()
			s.backlog = slices.Insert(s.backlog, 0, ev)
			s.forwarding = false
			s.mu.Unlock()
			return
		}
	}
}

// Close stops the Static: later Add, Remove and Fail calls do nothing, and
// Members keeps returning the members as they were. By the time Close
// returns, the Events channel is closed. Events already in the
// channel can still be read; of the backlog behind them, what fits in the
// channel is kept and the rest is dropped, as nobody is reading. Close does
// not wait for the consumer. It is safe to call more than once, and from
// several goroutines at once; every call returns after the channel is closed.
func (s *Static[ID]) Close() {
	s.closeOnce.Do(s.close)
}

func (s *Static[ID]) close() {
	s.mu.Lock()
	s.closed = true
	close(s.done)
	s.mu.Unlock()

	// The forwarder, if any, returns promptly now that done is closed.
	s.fwd.Wait()

	s.mu.Lock()
	defer s.mu.Unlock()
flush:
	for _, ev := range s.backlog {
		select {
		case s.events <- ev:
		default:
			break flush
		}
	}
	s.backlog = nil
	close(s.events)
}
