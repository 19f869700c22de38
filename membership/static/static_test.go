package static_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"

	"go.uber.org/goleak"

	"github.com/plumtree-go/plumtree/membership"
	"github.com/plumtree-go/plumtree/membership/static"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type (
	member = membership.Member[string]
	event  = membership.Event[string]
)

func m(id, addr string) member { return member{ID: id, Addr: addr} }

func ev(k membership.EventKind, id, addr string) event {
	return event{Kind: k, Member: m(id, addr)}
}

// pending returns the events that can be read from ch without waiting. Call
// it inside a synctest bubble after synctest.Wait, so that nothing is still
// on its way.
func pending(ch <-chan event) []event {
	var got []event
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				return got
			}
			got = append(got, e)
		default:
			return got
		}
	}
}

func isClosed(ch <-chan event) bool {
	select {
	case _, ok := <-ch:
		return !ok
	default:
		return false
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		initial []member
		want    []member
	}{
		{"empty", nil, nil},
		{"order kept", []member{m("c", "3"), m("a", "1"), m("b", "2")}, []member{m("c", "3"), m("a", "1"), m("b", "2")}},
		{"duplicate: last address, first position", []member{m("a", "1"), m("b", "2"), m("a", "9")}, []member{m("a", "9"), m("b", "2")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := static.New(tt.initial...)
				defer s.Close()
				if got := s.Members(); !slices.Equal(got, tt.want) {
					t.Errorf("Members() = %v, want %v", got, tt.want)
				}
				synctest.Wait()
				if got := pending(s.Events()); len(got) != 0 {
					t.Errorf("initial members produced events %v", got)
				}
			})
		})
	}
}

func TestEvents(t *testing.T) {
	type op func(s *static.Static[string])
	add := func(id, addr string) op { return func(s *static.Static[string]) { s.Add(m(id, addr)) } }
	remove := func(id string) op { return func(s *static.Static[string]) { s.Remove(id) } }
	fail := func(id string) op { return func(s *static.Static[string]) { s.Fail(id) } }

	tests := []struct {
		name    string
		initial []member
		ops     []op
		events  []event
		members []member
	}{
		{
			name:    "joins in order",
			ops:     []op{add("a", "1"), add("b", "2"), add("c", "3")},
			events:  []event{ev(membership.Join, "a", "1"), ev(membership.Join, "b", "2"), ev(membership.Join, "c", "3")},
			members: []member{m("a", "1"), m("b", "2"), m("c", "3")},
		},
		{
			name:    "same address again is silent",
			initial: []member{m("a", "1")},
			ops:     []op{add("a", "1"), add("a", "1")},
			members: []member{m("a", "1")},
		},
		{
			name:    "new address is an update",
			initial: []member{m("a", "1"), m("b", "2")},
			ops:     []op{add("a", "7"), add("a", "7"), add("a", "8")},
			events:  []event{ev(membership.Update, "a", "7"), ev(membership.Update, "a", "8")},
			members: []member{m("a", "8"), m("b", "2")},
		},
		{
			name:    "remove is a leave with the last address",
			initial: []member{m("a", "1"), m("b", "2"), m("c", "3")},
			ops:     []op{add("b", "5"), remove("b")},
			events:  []event{ev(membership.Update, "b", "5"), ev(membership.Leave, "b", "5")},
			members: []member{m("a", "1"), m("c", "3")},
		},
		{
			name:    "fail",
			initial: []member{m("a", "1"), m("b", "2")},
			ops:     []op{fail("a")},
			events:  []event{ev(membership.Fail, "a", "1")},
			members: []member{m("b", "2")},
		},
		{
			name:    "absent members are ignored",
			initial: []member{m("a", "1")},
			ops:     []op{remove("x"), fail("y"), remove("a"), remove("a"), fail("a")},
			events:  []event{ev(membership.Leave, "a", "1")},
			members: []member{},
		},
		{
			name:    "rejoin goes to the end",
			initial: []member{m("a", "1"), m("b", "2"), m("c", "3")},
			ops:     []op{remove("a"), fail("c"), add("a", "4"), add("c", "3"), remove("b")},
			events: []event{
				ev(membership.Leave, "a", "1"), ev(membership.Fail, "c", "3"), ev(membership.Join, "a", "4"),
				ev(membership.Join, "c", "3"), ev(membership.Leave, "b", "2"),
			},
			members: []member{m("a", "4"), m("c", "3")},
		},
		{
			name:    "removal from the middle keeps positions right",
			initial: []member{m("a", "1"), m("b", "2"), m("c", "3"), m("d", "4")},
			ops:     []op{remove("b"), add("c", "30"), add("d", "40"), fail("a"), add("d", "41")},
			events: []event{
				ev(membership.Leave, "b", "2"), ev(membership.Update, "c", "30"), ev(membership.Update, "d", "40"),
				ev(membership.Fail, "a", "1"), ev(membership.Update, "d", "41"),
			},
			members: []member{m("c", "30"), m("d", "41")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := static.New(tt.initial...)
				defer s.Close()
				for _, o := range tt.ops {
					o(s)
				}
				synctest.Wait()
				if got := pending(s.Events()); !slices.Equal(got, tt.events) {
					t.Errorf("events = %v, want %v", got, tt.events)
				}
				if got := s.Members(); !slices.Equal(got, tt.members) {
					t.Errorf("Members() = %v, want %v", got, tt.members)
				}
			})
		})
	}
}

func TestMembersIsASnapshot(t *testing.T) {
	s := static.New(m("a", "1"))
	defer s.Close()
	snap := s.Members()
	snap[0].Addr = "changed"
	s.Add(m("b", "2"))
	if got := s.Members(); !slices.Equal(got, []member{m("a", "1"), m("b", "2")}) {
		t.Errorf("Members() = %v after the caller changed an old snapshot", got)
	}
	if len(snap) != 1 {
		t.Errorf("old snapshot grew to %v", snap)
	}
}

// joins returns n Join events for members m0, m1, ...
func joins(n int) []event {
	evs := make([]event, n)
	for i := range evs {
		evs[i] = ev(membership.Join, fmt.Sprint("m", i), fmt.Sprint("addr", i))
	}
	return evs
}

// TestBacklog makes far more changes than the channel holds, with nobody
// reading: Add must not block, and every event must then arrive in order.
// The bubble ends without Close, which checks that the forwarding goroutine
// exits by itself once the backlog is drained.
func TestBacklog(t *testing.T) {
	for _, n := range []int{static.EventBuffer - 1, static.EventBuffer, static.EventBuffer + 1, 5 * static.EventBuffer} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := static.New[string]()
				want := joins(n)
				for _, e := range want {
					s.Add(e.Member) // would deadlock the bubble if it blocked
				}
				var got []event
				for range n {
					got = append(got, <-s.Events())
				}
				if !slices.Equal(got, want) {
					t.Fatalf("got %d events, not the %d sent in order", len(got), len(want))
				}
				synctest.Wait()
				if extra := pending(s.Events()); len(extra) != 0 {
					t.Errorf("unexpected extra events %v", extra)
				}
				if len(s.Members()) != n {
					t.Errorf("%d members, want %d", len(s.Members()), n)
				}
			})
		})
	}
}

// TestBacklogInterleaved reads while writing, so events go sometimes
// straight to the channel and sometimes through the backlog.
func TestBacklogInterleaved(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := static.New[string]()
		defer s.Close()
		want := joins(3 * static.EventBuffer)
		var got []event
		for i, e := range want {
			s.Add(e.Member)
			if i%3 == 0 {
				got = append(got, <-s.Events())
			}
			if i%50 == 0 {
				synctest.Wait() // let the forwarder catch up
			}
		}
		for len(got) < len(want) {
			got = append(got, <-s.Events())
		}
		if !slices.Equal(got, want) {
			t.Errorf("events out of order or missing")
		}
	})
}

func TestClose(t *testing.T) {
	tests := []struct {
		name    string
		changes int  // Joins made before Close
		read    int  // events read before Close
		want    int  // events readable after Close
		noWait  bool // Close without letting the forwarder catch up
	}{
		{"no events", 0, 0, 0, false},
		{"some events", 10, 0, 10, false},
		{"some read", 10, 4, 6, false},
		{"full channel", static.EventBuffer, 0, static.EventBuffer, false},
		{"backlog is cut to the channel", static.EventBuffer + 50, 0, static.EventBuffer, false},
		{"backlog partly read", static.EventBuffer + 50, 30, static.EventBuffer, false},
		{"backlog read to the end", static.EventBuffer + 50, static.EventBuffer + 50, 0, false},
		// Closing while the forwarder is between events: what fits in the
		// channel must still follow in order, with nothing lost.
		{"backlog partly read, forwarder busy", static.EventBuffer + 50, 30, static.EventBuffer, true},
		{"backlog mostly read, forwarder busy", 2 * static.EventBuffer, static.EventBuffer + 10, static.EventBuffer - 10, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := static.New(m("x", "0"))
				all := joins(tt.changes)
				for _, e := range all {
					s.Add(e.Member)
				}
				for i := range tt.read {
					if e := <-s.Events(); e != all[i] {
						t.Fatalf("event %d = %v, want %v", i, e, all[i])
					}
				}
				if !tt.noWait {
					synctest.Wait()
				}
				s.Close()
				// Close must have closed the channel by now: reading
				// to the end must not block.
				var rest []event
				for e := range s.Events() {
					rest = append(rest, e)
				}
				if !slices.Equal(rest, all[tt.read:tt.read+tt.want]) {
					t.Errorf("after Close read %d events, want the %d that follow those read", len(rest), tt.want)
				}
				if !isClosed(s.Events()) {
					t.Error("Events not closed")
				}

				before := s.Members()
				s.Add(m("late", "1"))
				s.Add(m("x", "changed"))
				s.Remove("x")
				s.Fail("m0")
				s.Close()
				if after := s.Members(); !slices.Equal(before, after) {
					t.Errorf("changes after Close altered Members from %v to %v", before, after)
				}
				if len(before) != 1+tt.changes {
					t.Errorf("%d members, want %d", len(before), 1+tt.changes)
				}
			})
		})
	}
}

// TestCloseConcurrent closes from several goroutines while a forwarder is
// blocked; every Close must return with the channel closed.
func TestCloseConcurrent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := static.New[string]()
		for _, e := range joins(2 * static.EventBuffer) {
			s.Add(e.Member)
		}
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				s.Close()
				if !isClosedAfterDrain(s.Events()) {
					t.Error("Close returned before the channel was closed")
				}
			})
		}
		wg.Wait()
	})
}

// isClosedAfterDrain reads what is buffered and reports whether the channel
// is then closed, without blocking.
func isClosedAfterDrain(ch <-chan event) bool {
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return true
			}
		default:
			return false
		}
	}
}

// TestConcurrent changes members from many goroutines while one reads; run
// with -race. Each member's events must come in the order they were made.
func TestConcurrent(t *testing.T) {
	const writers, rounds = 8, 200
	s := static.New[string]()
	total := writers * rounds * 3 // join, update, leave or fail

	got := make(chan []event)
	go func() {
		var evs []event
		for len(evs) < total {
			evs = append(evs, <-s.Events())
		}
		got <- evs
	}()

	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			id := fmt.Sprint("w", w)
			for r := range rounds {
				s.Add(m(id, "a"))
				s.Add(m(id, "b"))
				_ = s.Members()
				if r%2 == 0 {
					s.Remove(id)
				} else {
					s.Fail(id)
				}
			}
		})
	}
	wg.Wait()
	evs := <-got
	s.Close()
	if _, ok := <-s.Events(); ok {
		t.Error("an event arrived after all were read, or the channel is open after Close")
	}

	perMember := map[string][]event{}
	for _, e := range evs {
		perMember[e.Member.ID] = append(perMember[e.Member.ID], e)
	}
	if len(perMember) != writers {
		t.Fatalf("events for %d members, want %d", len(perMember), writers)
	}
	for id, list := range perMember {
		for r := range rounds {
			last := membership.Leave
			if r%2 == 1 {
				last = membership.Fail
			}
			want := []event{ev(membership.Join, id, "a"), ev(membership.Update, id, "b"), ev(last, id, "b")}
			if g := list[3*r : 3*r+3]; !slices.Equal(g, want) {
				t.Fatalf("member %s round %d: events %v, want %v", id, r, g, want)
			}
		}
	}
	if len(s.Members()) != 0 {
		t.Errorf("members left: %v", s.Members())
	}
}

// TestCloseWhileReading closes while a consumer is reading and the backlog
// is being forwarded, many times over: whatever the timing, the consumer
// must see the events in order with none missing before the last one it
// gets (a prefix of all events).
func TestCloseWhileReading(t *testing.T) {
	const iterations = 300
	all := joins(2 * static.EventBuffer)
	for i := range iterations {
		s := static.New[string]()
		for _, e := range all {
			s.Add(e.Member)
		}
		closeAt := i % len(all) // events read before Close is called
		started := make(chan struct{})
		done := make(chan []event)
		go func() {
			var got []event
			for e := range s.Events() {
				got = append(got, e)
				if len(got) == closeAt+1 {
					close(started)
				}
			}
			if len(got) <= closeAt {
				close(started)
			}
			done <- got
		}()
		<-started
		s.Close()
		got := <-done
		if !slices.Equal(got, all[:len(got)]) {
			t.Fatalf("iteration %d: got %d events that are not a prefix of those sent", i, len(got))
		}
		if len(got) < closeAt+1 {
			t.Fatalf("iteration %d: got %d events, want at least %d", i, len(got), closeAt+1)
		}
	}
}
