package gossip

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"
)

// Engine-level tests of the per-origin reorder buffer (Config.Ordered): the
// rules in the package documentation, section Per-origin order.

type orderEngine struct {
	t        *testing.T
	e        *Engine[int]
	released []Release[int]
	events   []Event
}

func orderConfig() Config {
	c := testConfig()
	c.Ordered = true
	c.OrderGapTimeout = time.Second
	c.OrderMaxHeld = 8
	return c
}

func newOrderEngine(t *testing.T, cfg Config) *orderEngine {
	t.Helper()
	oe := &orderEngine{t: t}
	e, err := NewEngine(EngineOptions[int]{Self: 0, Config: cfg, Seed: 1,
		Release:  func(r Release[int]) { oe.released = append(oe.released, r) },
		Observer: ObserverFunc(func(ev Event) { oe.events = append(oe.events, ev) })})
	if err != nil {
		t.Fatal(err)
	}
	oe.e = e
	e.SetMembers(t0, []int{1, 2, 3})
	e.Outbox()
	return oe
}

// recv delivers origin's message inc/seq from neighbour 1 at now.
func (oe *orderEngine) recv(now time.Time, origin int, inc, seq uint64) {
	oe.e.Receive(now, 1, &Msg[int]{Kind: KindGossip, ID: makeID(inc, seq), Round: 1, Origin: origin,
		Timestamp: now.UnixNano(), Payload: Payload{Data: []byte{byte(seq)}}})
	oe.e.Outbox()
}

// take returns what was released since the last call, as "inc/seq" with
// "+k" for k skipped before it and "stale" for a drop.
func (oe *orderEngine) take() []string {
	var r []string
	for _, x := range oe.released {
		s := fmt.Sprintf("%d/%d", x.ID.Incarnation(), x.ID.Seq())
		if x.Skipped > 0 {
			s += fmt.Sprintf("+%d", x.Skipped)
		}
		if x.Stale {
			s += " stale"
		}
		r = append(r, s)
	}
	oe.released = nil
	return r
}

func (oe *orderEngine) want(what string, want ...string) {
	oe.t.Helper()
	if got := oe.take(); !slices.Equal(got, want) {
		oe.t.Fatalf("%s: released %q, want %q", what, got, want)
	}
}

func (oe *orderEngine) count(k EventKind) (n, sum int) {
	for _, ev := range oe.events {
		if ev.Kind == k {
			n++
			sum += ev.Count
		}
	}
	return n, sum
}

// A message after a hole waits; the one that fills the hole releases it and
// everything after it without a hole, in order. Catches (planted: drain
// released held messages without checking that the first is next) a
// message handed over past a hole.
func TestOrderHoldsAndReleasesInOrder(t *testing.T) {
	oe := newOrderEngine(t, orderConfig())
	oe.recv(t0, 7, 5, 1)
	oe.want("1 first", "5/1")
	oe.recv(t0, 7, 5, 3)
	oe.recv(t0, 7, 5, 4)
	oe.want("3 and 4 after a hole at 2")
	if s := oe.e.Stats().Order; s.Held != 2 || s.Streams != 1 {
		t.Fatalf("stats %+v, want 2 held in 1 stream", s)
	}
	if d := oe.e.NextDeadline(); d.After(t0.Add(time.Second)) {
		t.Fatalf("next deadline %v, want by %v (the hole's timeout)", d, t0.Add(time.Second))
	}
	oe.recv(t0.Add(10*time.Millisecond), 7, 5, 2)
	oe.want("2 fills the hole", "5/2", "5/3", "5/4")
	if s := oe.e.Stats().Order; s.Held != 0 || s.Skipped != 0 || s.Stale != 0 {
		t.Fatalf("stats %+v, want nothing held, skipped or stale", s)
	}
}

// A hole not filled within OrderGapTimeout of the oldest held message's
// arrival is given up: the next message carries how many were skipped, an
// EventOrderSkipped says so, and the missing message, if it comes later, is
// dropped as stale. Catches (planted: tick ignored the order timers, and
// separately: Skipped not set on the released message) a stream stuck
// forever behind a lost message, or a skip the application is not told of.
func TestOrderSkipsAfterGapTimeout(t *testing.T) {
	oe := newOrderEngine(t, orderConfig())
	oe.recv(t0, 7, 5, 1)
	oe.recv(t0.Add(100*time.Millisecond), 7, 5, 4)
	oe.recv(t0.Add(200*time.Millisecond), 7, 5, 5)
	oe.want("1, then 4 and 5 after a hole", "5/1")
	due := t0.Add(100*time.Millisecond + time.Second)
	if d := oe.e.NextDeadline(); d.After(due) {
		t.Fatalf("next deadline %v, after the hole's timeout %v", d, due)
	}
	oe.e.Tick(due.Add(-time.Nanosecond))
	oe.want("just before the timeout")
	oe.e.Tick(due)
	oe.want("at the timeout", "5/4+2", "5/5")
	if n, sum := oe.count(EventOrderSkipped); n != 1 || sum != 2 {
		t.Fatalf("EventOrderSkipped %d times, %d messages; want once, 2", n, sum)
	}
	if !oe.e.NextDeadline().After(due) {
		t.Fatalf("next deadline %v still due after the tick at %v", oe.e.NextDeadline(), due)
	}
	oe.recv(due.Add(time.Millisecond), 7, 5, 2)
	oe.want("2 after 4 was released", "5/2 stale")
	oe.recv(due.Add(time.Millisecond), 7, 5, 6)
	oe.want("6 next", "5/6")
	if s := oe.e.Stats().Order; s.Skipped != 2 || s.Stale != 1 || s.Held != 0 {
		t.Fatalf("stats %+v, want 2 skipped, 1 stale, none held", s)
	}
}

// A second copy of a message never reaches the buffer (the seen set stops
// it), and an older message than the stream has released is stale, never
// delivered. Catches (planted: offer without the seq < next check) a
// message delivered out of order.
func TestOrderDuplicateAndOld(t *testing.T) {
	oe := newOrderEngine(t, orderConfig())
	oe.recv(t0, 7, 5, 1)
	oe.recv(t0, 7, 5, 2)
	oe.recv(t0, 7, 5, 2) // a duplicate
	oe.want("1, 2 and 2 again", "5/1", "5/2")
	// The buffer itself refuses the same sequence number twice.
	oe.recv(t0, 7, 5, 4)
	oe.e.order.offer(t0, 7, makeID(5, 4))
	oe.want("4 offered twice while held", "5/4 stale")
	oe.e.order.offer(t0, 7, makeID(5, 1))
	oe.want("1 again, offered past the seen set", "5/1 stale")
	if n, _ := oe.count(EventOrderStale); n != 2 {
		t.Fatalf("EventOrderStale %d times, want 2", n)
	}
}

// Sequence numbers no origin makes (0, and the last one, after which the
// counter would wrap) come only from made-up IDs: they are dropped and
// counted, and the stream goes on. Catches (planted: no such check) a
// stream whose start is 0, which never releases anything and made Tick
// loop forever, and a counter that wraps to 0 and reopens the stream.
func TestOrderMadeUpSequence(t *testing.T) {
	oe := newOrderEngine(t, orderConfig())
	oe.recv(t0, 7, 5, 0)
	oe.recv(t0, 7, 5, 5)
	oe.recv(t0, 8, 6, math.MaxUint64)
	oe.want("seq 0 and the last", "5/0 stale", fmt.Sprintf("6/%d stale", uint64(math.MaxUint64)))
	oe.e.Tick(t0.Add(time.Second))
	oe.want("the join window's end", "5/5")
	oe.recv(t0.Add(time.Second), 7, 5, 6)
	oe.want("the next", "5/6")
}

// Past OrderMaxHeld messages held for one origin, the first hole is given
// up at once. Catches (planted: the cap loop removed) a buffer that grows
// without bound behind one lost message.
func TestOrderCap(t *testing.T) {
	cfg := orderConfig()
	cfg.OrderMaxHeld = 3
	oe := newOrderEngine(t, cfg)
	oe.recv(t0, 7, 5, 1)
	for seq := uint64(3); seq <= 5; seq++ {
		oe.recv(t0, 7, 5, seq)
	}
	oe.want("3 held, at the cap", "5/1")
	oe.recv(t0, 7, 5, 7)
	oe.want("a fourth held", "5/3+1", "5/4", "5/5")
	if s := oe.e.Stats().Order; s.Held != 1 {
		t.Fatalf("stats %+v, want 7 held", s)
	}
	// A far sequence number (made up, or a long loss) is one hole: no
	// work per missing message.
	oe.recv(t0, 7, 5, 1<<62)
	oe.recv(t0, 7, 5, 1<<62+1)
	oe.recv(t0, 7, 5, 1<<62+2)
	oe.want("a far jump past the cap", "5/7+1")
	oe.e.Tick(t0.Add(time.Second))
	oe.want("the far hole's timeout", fmt.Sprintf("5/%d+%d", uint64(1<<62), uint64(1<<62)-8), fmt.Sprintf("5/%d", uint64(1<<62+1)), fmt.Sprintf("5/%d", uint64(1<<62+2)))
}

// A stream joined midway starts at the lowest sequence number that arrives
// within OrderGapTimeout of its first message, without counting what came
// before as skipped; one whose first message is 1 starts at once. Catches
// (planted: the join window taken as a hole, Skipped = first seq - 1) a
// made-up skip of messages sent before this node heard of the origin, and
// (planted: next set to the first arrival) a message just before it
// dropped as stale.
func TestOrderJoinMidway(t *testing.T) {
	oe := newOrderEngine(t, orderConfig())
	oe.recv(t0, 7, 5, 10)
	oe.recv(t0.Add(10*time.Millisecond), 7, 5, 9)
	oe.recv(t0.Add(20*time.Millisecond), 7, 5, 12)
	oe.want("joined at 10, 9, 12")
	oe.e.Tick(t0.Add(time.Second))
	oe.want("the join window's end", "5/9", "5/10")
	oe.recv(t0.Add(time.Second), 7, 5, 8)
	oe.want("8, before the start", "5/8 stale")
	oe.recv(t0.Add(time.Second), 7, 5, 11)
	oe.want("11", "5/11", "5/12")
	if n, _ := oe.count(EventOrderSkipped); n != 0 {
		t.Fatalf("%d skips reported for a stream joined midway, want 0", n)
	}

	oe.recv(t0, 8, 6, 1)
	oe.want("another origin's first message", "6/1")
}

// A new incarnation of an origin (a restart) starts a new stream, whose
// messages wait OrderGapTimeout from the first for the old incarnation's
// last ones (late, or being recovered); then the old stream ends (its held
// messages released, its holes given up) and a late message of it is
// stale. Catches (planted: an incarnation change treated as a message of
// the current stream) the restart's messages dropped as stale, and
// (planted: the old stream ended at the new one's first message) the old
// incarnation's last messages lost to a restart.
func TestOrderNewIncarnation(t *testing.T) {
	oe := newOrderEngine(t, orderConfig())
	oe.recv(t0, 7, 5, 1)
	oe.recv(t0, 7, 5, 3)
	oe.want("old incarnation 1, 3", "5/1")
	oe.recv(t0.Add(time.Millisecond), 7, 6, 1)
	oe.want("the restart's first waits")
	oe.recv(t0.Add(2*time.Millisecond), 7, 5, 2)
	oe.want("the old incarnation's hole filled", "5/2", "5/3")
	oe.recv(t0.Add(3*time.Millisecond), 7, 5, 4)
	oe.want("the old incarnation's last", "5/4")
	oe.recv(t0.Add(4*time.Millisecond), 7, 6, 2)
	oe.want("the restart's second waits")
	// The switch comes OrderGapTimeout after the old incarnation's last
	// message (5/4), not after the restart's first.
	switchAt := t0.Add(3*time.Millisecond + time.Second)
	oe.e.Tick(switchAt.Add(-time.Millisecond))
	oe.want("no switch while the old incarnation was heard from less than OrderGapTimeout ago")
	if d := oe.e.NextDeadline(); d.After(switchAt) {
		t.Fatalf("next deadline %v, after the switch %v", d, switchAt)
	}
	oe.e.Tick(switchAt)
	oe.want("the switch", "6/1", "6/2")
	oe.recv(switchAt, 7, 5, 5)
	oe.want("the old incarnation after the switch", "5/5 stale")
	oe.recv(switchAt, 7, 6, 3)
	oe.want("the restart's third", "6/3")
	// A restart whose first message is lost starts at the lowest that
	// arrived in its wait; a third incarnation during a switch ends the
	// second's wait at once.
	t1 := switchAt.Add(time.Second)
	oe.recv(t1, 7, 9, 3)
	oe.recv(t1.Add(time.Millisecond), 7, 9, 2)
	oe.want("a restart heard from 3, then 2")
	oe.recv(t1.Add(2*time.Millisecond), 7, 10, 1)
	oe.want("a third incarnation", "9/2", "9/3")
	oe.e.Tick(t1.Add(2*time.Millisecond + time.Second))
	oe.want("its wait's end", "10/1")
	if s := oe.e.Stats().Order; s.Held != 0 || s.Stale != 1 {
		t.Fatalf("stats %+v, want none held, 1 stale", s)
	}
}

// A live origin is never retired by another incarnation of it (a member
// making one up, or a restart seen before the old one's last messages):
// the other one waits while the current one keeps sending. Catches
// (planted: the wait not pushed on by the current incarnation) every
// message of the real origin dropped as stale after one made-up message.
func TestOrderLiveIncarnationNotRetired(t *testing.T) {
	oe := newOrderEngine(t, orderConfig())
	oe.recv(t0, 7, 5, 1)
	oe.want("the origin's first", "5/1")
	oe.recv(t0.Add(time.Millisecond), 7, 99, 1) // another incarnation, made up
	oe.want("the other incarnation waits")
	now := t0
	for seq := uint64(2); seq <= 10; seq++ {
		now = now.Add(600 * time.Millisecond) // more than OrderGapTimeout in all
		oe.e.Tick(now)
		oe.recv(now, 7, 5, seq)
		oe.want(fmt.Sprintf("the live origin's message %d", seq), fmt.Sprintf("5/%d", seq))
	}
	// The origin falls quiet: the other incarnation takes over.
	oe.e.Tick(now.Add(time.Second))
	oe.want("the switch once the live one is quiet", "99/1")
}

// Streams are bounded by MaxOrigins (the least recently used is released
// and forgotten) and forgotten when idle and empty. Catches (planted: no
// eviction) a stream per origin ever heard, and a held message lost with
// its stream.
func TestOrderStreamsBounded(t *testing.T) {
	cfg := orderConfig()
	cfg.MaxOrigins = 2
	oe := newOrderEngine(t, cfg)
	oe.recv(t0, 7, 5, 1)
	oe.recv(t0, 7, 5, 3)
	oe.recv(t0.Add(time.Millisecond), 8, 6, 1)
	oe.want("two origins", "5/1", "6/1")
	oe.recv(t0.Add(2*time.Millisecond), 9, 7, 1)
	oe.want("a third origin: the oldest stream is released and forgotten", "5/3+1", "7/1")
	if s := oe.e.Stats().Order; s.Streams != 2 || s.Held != 0 {
		t.Fatalf("stats %+v, want 2 streams, none held", s)
	}
	late := t0.Add(cfg.seenTTL() + cfg.CleanupMaxInterval)
	oe.e.Tick(late)
	if s := oe.e.Stats().Order; s.Streams != 0 {
		t.Fatalf("after %v idle: %d streams, want 0", late.Sub(t0), s.Streams)
	}
}

// The sequence has no holes of the origin's making: a broadcast the engine
// refuses takes no number. Catches (planted: seq++ before the size check)
// a hole every receiver waits OrderGapTimeout for and then skips.
func TestOrderRefusedBroadcastKeepsSequence(t *testing.T) {
	cfg := orderConfig()
	pe := newPaperEngine(t, cfg, 1, 2, 3)
	if _, err := pe.e.Broadcast(t0, Payload{Data: make([]byte, cfg.MaxMessageSize+1)}, nil); err == nil {
		t.Fatal("an oversized broadcast was taken")
	}
	id, err := pe.e.Broadcast(t0, Payload{Data: []byte("x")}, nil)
	if err != nil || id.Seq() != 1 {
		t.Fatalf("first broadcast after a refused one: seq %d, err %v; want 1", id.Seq(), err)
	}
}

// Ordered needs a positive gap timeout and cap. Catches the fields left
// unvalidated (a zero timeout would skip every hole at once).
func TestOrderConfigValidation(t *testing.T) {
	cfg := DefaultConfig()
	cfg.OrderGapTimeout, cfg.OrderMaxHeld = 0, 0
	if err := cfg.Validate(); err != nil {
		t.Fatalf("order fields unused without Ordered: %v", err)
	}
	cfg.Ordered = true
	err := cfg.Validate()
	var ce *ConfigError
	if !errors.As(err, &ce) || err == nil {
		t.Fatalf("Ordered with zero OrderGapTimeout and OrderMaxHeld: %v, want ConfigErrors", err)
	}
	for _, f := range []string{"OrderGapTimeout", "OrderMaxHeld"} {
		found := false
		for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
			if errors.As(e, &ce) && ce.Field == f {
				found = true
			}
		}
		if !found {
			t.Errorf("no error names %s: %v", f, err)
		}
	}
}
