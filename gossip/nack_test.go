package gossip

import (
	"testing"
	"time"
)

// A graft for a message the peer no longer caches is answered with a Nack
// "not here", and the requester grafts the next announcer at once instead
// of waiting out its backoff. Catches: a Nack ignored, or a graft miss
// answered with silence.
func TestNackNotHereMovesOn(t *testing.T) {
	cfg := testConfig()
	holder := newPaperEngine(t, cfg, 1, 2, 3, 4)
	id := MessageID{9, 9}
	holder.e.Receive(t0, 1, &Msg[int]{Kind: KindGraft, ID: id, Round: 1, WantPayload: true})
	n := only(holder.out(), KindNack)
	if len(n) != 1 || n[0].To != 1 || MessageID(n[0].Msg.ID) != id || n[0].Msg.Retry != 0 {
		t.Fatalf("graft for an unknown message answered %+v, want a Nack not-here to 1", n)
	}

	pe := newPaperEngine(t, cfg, 1, 2, 3, 4)
	lazy := sorted(pe.e.LazyPeers())
	pe.e.Receive(t0, lazy[0], &Msg[int]{Kind: KindIHave, Announcements: []Announcement{{ID: id, Round: 1}}})
	pe.e.Receive(t0, lazy[1], &Msg[int]{Kind: KindIHave, Announcements: []Announcement{{ID: id, Round: 2}}})
	now := t0.Add(cfg.GraftTimeout)
	pe.e.Tick(now)
	g := only(pe.out(), KindGraft)
	if len(g) != 1 || g[0].To != lazy[0] {
		t.Fatalf("first graft %+v, want to %d (fewest hops)", g, lazy[0])
	}
	pe.e.Receive(now.Add(time.Millisecond), lazy[0], &Msg[int]{Kind: KindNack, ID: id})
	pe.e.Tick(now.Add(time.Millisecond))
	g = only(pe.out(), KindGraft)
	if len(g) != 1 || g[0].To != lazy[1] {
		t.Fatalf("after a not-here Nack: grafts %+v, want one to %d at once", g, lazy[1])
	}
}

// A graft refused by the rate limit is answered "not now, retry after":
// the requester waits that long (not counted as a failed attempt), and
// paces its own grafts to a peer at the rate a peer answers, so that a
// backlog is asked for at the pace it can be answered. Catches: the wait
// ignored, or a refusal counted against GraftMaxRetries.
func TestNackNotNowWaits(t *testing.T) {
	cfg := testConfig()
	cfg.GraftRateLimitPerSecond, cfg.GraftRateLimitBurst = 10, 2
	holder := newPaperEngine(t, cfg, 1, 2, 3, 4)
	var ids []MessageID
	for i := range 3 {
		id, _ := holder.e.Broadcast(t0, Payload{Data: []byte{byte(i)}}, nil)
		ids = append(ids, id)
	}
	holder.out()
	for _, id := range ids {
		holder.e.Receive(t0, 1, &Msg[int]{Kind: KindGraft, ID: id, Round: 1, WantPayload: true})
	}
	out := holder.out()
	if g, n := only(out, KindGossip), only(out, KindNack); len(g) != 2 || len(n) != 1 || n[0].Msg.Retry <= 0 {
		t.Fatalf("3 grafts with a burst of 2: %d answered, Nacks %+v; want 2 and one not-now", len(g), n)
	}

	cfg.GraftMaxRetries = 0
	pe := newPaperEngine(t, cfg, 1, 2, 3, 4)
	a := sorted(pe.e.LazyPeers())[0]
	var miss []MessageID
	for i := range 5 {
		id := MessageID{7, byte(i)}
		miss = append(miss, id)
		pe.e.Receive(t0, a, &Msg[int]{Kind: KindIHave, Announcements: []Announcement{{ID: id, Round: 1}}})
	}
	now := t0.Add(cfg.GraftTimeout)
	pe.e.Tick(now)
	if g := only(pe.out(), KindGraft); len(g) != cfg.GraftRateLimitBurst {
		t.Fatalf("5 missing from one peer: %d grafts at once, want the burst %d", len(g), cfg.GraftRateLimitBurst)
	}
	// The peer refuses one for now: with GraftMaxRetries 0 it is still
	// asked again after the wait, not given up.
	pe.e.Receive(now, a, &Msg[int]{Kind: KindNack, ID: miss[0], Retry: 300 * time.Millisecond})
	pe.e.Tick(now.Add(299 * time.Millisecond))
	for _, s := range only(pe.out(), KindGraft) {
		if MessageID(s.Msg.ID) == miss[0] {
			t.Fatal("grafted again before the wait the Nack asked for")
		}
	}
	asked := false
	for at := now.Add(300 * time.Millisecond); at.Before(now.Add(2 * time.Second)); at = at.Add(50 * time.Millisecond) {
		pe.e.Tick(at)
		for _, s := range only(pe.out(), KindGraft) {
			asked = asked || MessageID(s.Msg.ID) == miss[0]
		}
	}
	if !asked {
		t.Fatal("a graft refused for now was never asked again")
	}
}

// Overlay maintenance: with the sets at their target, the shuffle takes a
// member that is not a neighbour in as a lazy neighbour, greets it, and
// counts it in Stats; the sets stay within their caps. Catches: the
// shuffle made a no-op (sets that froze never re-merged a partition).
func TestShuffleTakesOutsiderIn(t *testing.T) {
	cfg := testConfig()
	cfg.ShuffleInterval = time.Second
	members := make([]int, 30)
	for i := range members {
		members[i] = i + 1
	}
	pe := newPaperEngine(t, cfg, members...)
	before := append(pe.e.EagerPeers(), pe.e.LazyPeers()...)
	for at := t0; at.Before(t0.Add(10 * time.Second)); at = at.Add(100 * time.Millisecond) {
		pe.e.Tick(at)
		if err := pe.e.checkInvariants(); err != nil {
			t.Fatal(err)
		}
	}
	st := pe.e.Stats()
	if st.Shuffles == 0 {
		t.Fatal("no shuffle in 10 intervals")
	}
	after := append(pe.e.EagerPeers(), pe.e.LazyPeers()...)
	newcomers := 0
	for _, p := range after {
		found := false
		for _, q := range before {
			found = found || p == q
		}
		if !found {
			newcomers++
		}
	}
	if newcomers == 0 {
		t.Fatalf("%d shuffles, but the neighbours are the same: %v", st.Shuffles, after)
	}
}

// A peer may answer a graft with one Nack: more (a peer repeating "not
// now") must not push the attempt count below zero, where the backoff's
// shift went negative and panicked, and GraftMaxRetries never applied.
// Catches: every Nack counted.
func TestNackOncePerGraft(t *testing.T) {
	cfg := testConfig()
	pe := newPaperEngine(t, cfg, 1, 2, 3, 4)
	lazy := sorted(pe.e.LazyPeers())
	id := MessageID{5, 5}
	pe.e.Receive(t0, lazy[0], &Msg[int]{Kind: KindIHave, Announcements: []Announcement{{ID: id, Round: 1}}})
	pe.e.Receive(t0, lazy[1], &Msg[int]{Kind: KindIHave, Announcements: []Announcement{{ID: id, Round: 2}}})
	now := t0.Add(cfg.GraftTimeout)
	pe.e.Tick(now)
	pe.out()
	for range 5 {
		pe.e.Receive(now, lazy[0], &Msg[int]{Kind: KindNack, ID: id, Retry: 10 * time.Second})
	}
	if mm := pe.e.missing[id]; mm == nil || mm.attempt < 0 {
		t.Fatalf("after 5 Nacks for one graft the entry is %+v", mm)
	}
	for at := now; at.Before(now.Add(time.Minute)); at = at.Add(100 * time.Millisecond) {
		pe.e.Tick(at) // panicked with a negative shift
		pe.out()
	}
}
