package gossip

import (
	"slices"
	"testing"
	"time"
)

// Engine-level tests of the deviations from the paper that the cluster
// tests cannot pin down (an audit planted each bug below in engine.go and
// no test failed): the hold on a grafted link, a rejected message counted
// as seen, the Recovered mark, the timed sweep, the repeated greetings.
// Each test names the bug it catches.

// graftFrom has pe receive an IHave for id from lazy peer p and lets the
// graft timer fire: pe grafts p (the link is tied from now + GraftTimeout).
// It returns the time of the graft.
func (pe *paperEngine) graftFrom(p int, id MessageID, at time.Time) time.Time {
	pe.t.Helper()
	pe.e.Receive(at, p, &Msg[int]{Kind: KindIHave, Announcements: []Announcement{{ID: id, Round: 1}}})
	now := at.Add(pe.e.cfg.GraftTimeout)
	pe.e.Tick(now)
	if g := only(pe.out(), KindGraft); len(g) != 1 || g[0].To != p {
		pe.t.Fatalf("no graft to %d for %x: %+v", p, id[:2], g)
	}
	return now
}

// Two messages of one origin in flight at once each see the edge the
// other came by as redundant: a's copy of m1 first and b's second prunes
// b, while b's copy of m2 (sent before the Prune reached b) first and a's
// second would prune a, and the node would have no parent left
// (riak_core#378). Within GraftTimeout of a prune, only duplicates of the
// message that pruned may prune again (Engine.mayPrune). Catches: the
// window made a no-op.
func TestPruneWindowInFlight(t *testing.T) {
	cfg := testConfig()
	pe := newPaperEngine(t, cfg, 1, 2, 3, 4)
	eager := sorted(pe.e.EagerPeers())
	a, b := eager[0], eager[1]
	pe.e.Receive(t0, a, gossipMsg(MessageID{1, 0}, 1)) // the origin's first: its tree is young
	pe.out()
	now := t0.Add(time.Second)
	pe.e.Receive(now, a, gossipMsg(MessageID{1, 1}, 1))
	pe.e.Receive(now.Add(time.Millisecond), b, gossipMsg(MessageID{1, 1}, 2))
	if p := only(pe.out(), KindPrune); len(p) != 1 || p[0].To != b || p[0].Msg.Origin != 99 {
		t.Fatalf("m1's duplicate from %d gave prunes %+v, want one to it for origin 99", b, p)
	}
	pe.e.Receive(now.Add(2*time.Millisecond), b, gossipMsg(MessageID{1, 2}, 1))
	pe.e.Receive(now.Add(3*time.Millisecond), a, gossipMsg(MessageID{1, 2}, 2))
	if p := only(pe.out(), KindPrune); len(p) != 0 {
		t.Fatalf("m2, in flight with m1, pruned the other parent too: %+v", p)
	}
	// Past the window, duplicates prune again.
	later := now.Add(cfg.GraftTimeout + time.Millisecond)
	pe.e.Receive(later, a, gossipMsg(MessageID{1, 3}, 1))
	pe.e.Receive(later.Add(time.Millisecond), b, gossipMsg(MessageID{1, 3}, 2))
	if p := only(pe.out(), KindPrune); len(p) != 1 || p[0].To != b {
		t.Fatalf("after the window, m3's duplicate from %d gave prunes %+v, want one", b, p)
	}
}

// Deliver's contract: a message it rejects is recorded as seen, so that a
// later copy is a duplicate: not offered to the application (or to
// Options.Validate) again, not forwarded, and not grafted when announced.
// Catches: a rejected message left out of the seen set.
func TestRejectedMessageIsSeen(t *testing.T) {
	cfg := testConfig()
	pe := &paperEngine{t: t}
	offered := 0
	e, err := NewEngine(EngineOptions[int]{Self: 0, Config: cfg, Seed: 1,
		Deliver: func(RawDelivery[int]) bool { offered++; return false }})
	if err != nil {
		t.Fatal(err)
	}
	pe.e = e
	e.SetMembers(t0, []int{1, 2, 3, 4})
	e.Outbox()
	eager, lazy := e.EagerPeers(), e.LazyPeers()
	id := MessageID{9}
	e.Receive(t0, eager[0], gossipMsg(id, 1))
	if out := pe.out(); offered != 1 || len(only(out, KindGossip)) != 0 {
		t.Fatalf("offered %d times, forwarded %d: want once, not forwarded", offered, len(only(out, KindGossip)))
	}
	e.Receive(t0.Add(time.Millisecond), eager[1], gossipMsg(id, 2))
	e.Receive(t0.Add(2*time.Millisecond), lazy[0], &Msg[int]{Kind: KindIHave, Announcements: []Announcement{{ID: id, Round: 1}}})
	e.Tick(t0.Add(time.Hour))
	out := pe.out()
	if offered != 1 {
		t.Errorf("a rejected message was offered again when a second copy came: %d offers", offered)
	}
	if n := len(only(out, KindGossip)); n != 0 {
		t.Errorf("a rejected message was forwarded %d times", n)
	}
	if g := only(out, KindGraft); len(g) != 0 {
		t.Errorf("a rejected message was grafted when announced: %+v", g)
	}
}

// A payload that came through a graft, here or upstream, is marked
// Recovered: in the delivery, in what this node forwards, in what it
// answers a graft with. Catches: the mark dropped for a payload this node
// grafted (arriving unmarked, say by an eager push racing the graft), not
// kept in the cache, or missing from graft answers.
func TestRecoveredMarkKept(t *testing.T) {
	cfg := testConfig()
	pe := newPaperEngine(t, cfg, 1, 2, 3, 4)
	eager, lazy := sorted(pe.e.EagerPeers()), sorted(pe.e.LazyPeers())
	id := MessageID{0x11}
	at := pe.graftFrom(lazy[0], id, t0)
	// The payload comes by an eager push that raced the graft: unmarked.
	pe.e.Receive(at.Add(time.Millisecond), eager[0], gossipMsg(id, 4))
	if len(pe.delivered) != 1 || !pe.delivered[0].Recovered {
		t.Fatalf("delivery after a graft %+v, want Recovered", pe.delivered)
	}
	for _, s := range only(pe.out(), KindGossip) {
		if !s.Msg.Recovered {
			t.Errorf("forwarded to %d without the Recovered mark", s.To)
		}
	}
	// A graft for it from a neighbour is answered with the mark.
	pe.e.Receive(at.Add(time.Second), lazy[1], &Msg[int]{Kind: KindGraft, ID: id, Round: 5, WantPayload: true})
	if g := only(pe.out(), KindGossip); len(g) != 1 || !g[0].Msg.Recovered || !g[0].Msg.GraftReply {
		t.Errorf("graft answer %+v, want one payload marked Recovered", g)
	}
	// A graft answer for a message that came along the tree is marked too:
	// the asker got it through a graft.
	id2 := MessageID{0x12}
	pe.e.Receive(at.Add(2*time.Second), eager[0], gossipMsg(id2, 1))
	pe.out()
	pe.e.Receive(at.Add(3*time.Second), lazy[1], &Msg[int]{Kind: KindGraft, ID: id2, Round: 2, WantPayload: true})
	if g := only(pe.out(), KindGossip); len(g) != 1 || !g[0].Msg.Recovered {
		t.Errorf("graft answer for a tree message %+v, want it marked Recovered", g)
	}
}

// The optimization (a shorter announced path is grafted) is not run on a
// recovered payload: its hop count comes from a path chosen to recover
// it and says nothing about the tree. Catches: the optimization run on
// recovered payloads.
func TestOptimizationSkipsRecoveredPayloads(t *testing.T) {
	for _, tc := range []struct {
		name      string
		recovered bool
		graft     bool
	}{{"tree payload", false, true}, {"recovered upstream", true, false}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.OptimizationThreshold = 2
			pe := newPaperEngine(t, cfg, 1, 2, 3, 4)
			parent, announcer := pe.e.EagerPeers()[0], pe.e.LazyPeers()[0]
			// The origin's first message: its tree is young, and young
			// trees are never optimized.
			pe.e.Receive(t0, parent, gossipMsg(MessageID{6}, 6))
			pe.out()
			id := MessageID{7}
			pe.e.Receive(t0, announcer, &Msg[int]{Kind: KindIHave, Announcements: []Announcement{{ID: id, Round: 1}}})
			m := gossipMsg(id, 6)
			m.Recovered = tc.recovered
			pe.e.Receive(t0.Add(time.Millisecond), parent, m)
			g := only(pe.out(), KindGraft)
			if got := len(g) == 1 && g[0].To == announcer; got != tc.graft || len(g) > 1 {
				t.Fatalf("grafts %+v, want an optimization graft: %v", g, tc.graft)
			}
		})
	}
	t.Run("grafted here", func(t *testing.T) {
		cfg := testConfig()
		cfg.OptimizationThreshold = 2
		pe := newPaperEngine(t, cfg, 1, 2, 3, 4)
		lazy := sorted(pe.e.LazyPeers())
		id := MessageID{8}
		at := pe.graftFrom(lazy[0], id, t0)
		// A second announcer with a much shorter path; the payload then
		// arrives by the graft with a long hop count.
		pe.e.Receive(at, lazy[1], &Msg[int]{Kind: KindIHave, Announcements: []Announcement{{ID: id, Round: 1}}})
		pe.out()
		m := gossipMsg(id, 9)
		m.GraftReply = true
		pe.e.Receive(at.Add(time.Millisecond), lazy[0], m)
		if g := only(pe.out(), KindGraft); len(g) != 0 {
			t.Fatalf("optimization grafts %+v after a payload this node grafted", g)
		}
	})
}

// The timed sweep expires cache and seen entries once their TTL is past,
// long before the caps would evict them. Catches: the sweep made a no-op
// (the caches then only shrink at their caps).
func TestSweepExpiresBeforeCaps(t *testing.T) {
	cfg := testConfig()
	cfg.MessageCacheTTL = 10 * time.Second
	cfg.MessageCacheMaxSize = 10_000
	pe := newPaperEngine(t, cfg, 1, 2, 3, 4)
	parent := pe.e.EagerPeers()[0]
	const k = 50
	for i := range k {
		pe.e.Receive(t0, parent, gossipMsg(MessageID{0x20, byte(i)}, 1))
	}
	pe.out()
	if s := pe.e.Stats(); s.CacheSize != k || s.SeenSize != k {
		t.Fatalf("after %d messages: cache %d, seen %d", k, s.CacheSize, s.SeenSize)
	}
	// Run the engine's own deadlines until past both TTLs and the longest
	// sweep gap.
	end := t0.Add(cfg.seenTTL() + cfg.MessageCacheTTL + 2*cfg.CleanupMaxInterval)
	ticks := 0
	for now := t0; ; ticks++ {
		d := pe.e.NextDeadline()
		if d.IsZero() || d.After(end) {
			break
		}
		if !d.After(now) && ticks > 0 {
			t.Fatalf("deadline %v not after the last tick %v", d, now)
		}
		now = d
		pe.e.Tick(now)
		pe.out()
	}
	s := pe.e.Stats()
	if s.CacheSize != 0 || s.SeenSize != 0 {
		t.Fatalf("%d ticks to %v past the TTLs: cache %d, seen %d entries left, want 0 (caps %d and %d are far)",
			ticks, end.Sub(t0), s.CacheSize, s.SeenSize, cfg.MessageCacheMaxSize, cfg.seenMaxSize())
	}
	// The cache expired at its TTL, not only at the end.
	pe2 := newPaperEngine(t, cfg, 1, 2, 3, 4)
	pe2.e.Receive(t0, pe2.e.EagerPeers()[0], gossipMsg(MessageID{0x30}, 1))
	byTTL := t0.Add(cfg.MessageCacheTTL + cfg.CleanupMaxInterval)
	for now := t0; ; {
		d := pe2.e.NextDeadline()
		if d.IsZero() || d.After(byTTL) {
			break
		}
		now = d
		pe2.e.Tick(now)
	}
	if s := pe2.e.Stats(); s.CacheSize != 0 {
		t.Fatalf("cache still holds %d entries %v after the message (TTL %v)", s.CacheSize, byTTL.Sub(t0), cfg.MessageCacheTTL)
	}
}

// A node greets each neighbour it picked (fill), and greets it again at
// each exchange, greetings times in all after the first, until the
// neighbour sends something: the first greeting may arrive before the
// neighbour knows this node. Catches: greetings never repeated.
func TestGreetingsRepeatedUntilAnswered(t *testing.T) {
	cfg := testConfig()
	cfg.ExchangeInterval = time.Second
	pe := &paperEngine{t: t}
	e, err := NewEngine(EngineOptions[int]{Self: 0, Config: cfg, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	pe.e = e
	e.SetMembers(t0, []int{1, 2, 3, 4})
	first := pe.out()
	picked := targets(first)
	if len(picked) != cfg.EagerFanout+cfg.LazyFanout {
		t.Fatalf("greetings to %v, want one to each of the %d neighbours picked", picked, cfg.EagerFanout+cfg.LazyFanout)
	}
	answered := picked[0]
	e.Receive(t0, answered, &Msg[int]{Kind: KindIHave}) // it answers: greet it no more
	pe.out()
	again := map[int]int{}
	for now, end := t0, t0.Add(20*cfg.ExchangeInterval); ; {
		d := e.NextDeadline()
		if d.IsZero() || d.After(end) {
			break
		}
		now = d
		e.Tick(now)
		for _, s := range pe.out() {
			if s.Msg.Kind == KindIHave && len(s.Msg.Announcements) == 0 {
				again[s.To]++
			}
		}
	}
	for _, p := range picked {
		want := greetings
		if p == answered {
			want = 0
		}
		if again[p] != want {
			t.Errorf("neighbour %d greeted again %d times over 20 exchanges, want %d (greeted again: %v)", p, again[p], want, again)
		}
	}
}

// A node that joins learns the membership from one member at once and
// greets the neighbours it picks before they have heard of it: the
// greeting comes from a sender that is not a member yet. It is held, and
// taken up when the sender becomes a member (PeerUp or SetMembers): an
// eager pick's greeting (a graft with no message) makes the newcomer an
// eager neighbour, an empty IHave a lazy one. A held greeting expires
// after MessageCacheTTL, and at most MaxPeers are held. Catches: a
// greeting from a sender not yet a member dropped (the newcomer then had
// every origin's first message by a graft: TestColdStartGreetingsBeforeMembership).
func TestGreetingBeforeMembershipHeld(t *testing.T) {
	cfg := testConfig()
	cfg.ShuffleInterval = 0 // no random take-in of a new member: only the greeting links it
	pe := newPaperEngine(t, cfg, 1, 2, 3, 4)
	if n := len(pe.e.EagerPeers()) + len(pe.e.LazyPeers()); n != cfg.EagerFanout+cfg.LazyFanout {
		t.Fatalf("%d neighbours, want the %d picks", n, cfg.EagerFanout+cfg.LazyFanout)
	}
	greet := &Msg[int]{Kind: KindGraft}
	pe.e.Receive(t0, 9, greet)                      // an eager pick's greeting, 9 not a member yet
	pe.e.Receive(t0, 8, &Msg[int]{Kind: KindIHave}) // a lazy pick's
	pe.e.Receive(t0, 7, greet)
	pe.e.Receive(t0, 6, greet)
	if out := pe.out(); len(out) != 0 {
		t.Fatalf("greetings from non-members answered: %+v", out)
	}
	now := t0.Add(time.Second)
	pe.e.PeerUp(now, 9)
	pe.e.PeerUp(now, 8)
	pe.e.SetMembers(now, []int{1, 2, 3, 4, 6, 8, 9})
	eager, lazy := pe.e.EagerPeers(), pe.e.LazyPeers()
	for _, p := range []int{9, 6} {
		if !slices.Contains(eager, p) {
			t.Errorf("%d greeted as an eager pick before it was a member, then joined: not eager (eager %v, lazy %v)", p, eager, lazy)
		}
	}
	if !slices.Contains(lazy, 8) {
		t.Errorf("8 greeted as a lazy pick before it was a member, then joined: not lazy (eager %v, lazy %v)", eager, lazy)
	}
	// 7's greeting expired before it joined.
	pe.e.PeerUp(t0.Add(cfg.MessageCacheTTL), 7)
	if slices.Contains(pe.e.EagerPeers(), 7) || slices.Contains(pe.e.LazyPeers(), 7) {
		t.Errorf("a greeting MessageCacheTTL old was taken up")
	}
	if err := pe.e.checkInvariants(); err != nil {
		t.Fatal(err)
	}
	// Bounded: a flood of greetings from made-up senders holds MaxPeers.
	for i := range 5 * cfg.MaxPeers {
		pe.e.Receive(now, 1000+i, greet)
	}
	if n := len(pe.e.early); n != cfg.MaxPeers {
		t.Errorf("%d greetings held after %d from made-up senders, want MaxPeers (%d)", n, 5*cfg.MaxPeers, cfg.MaxPeers)
	}
}
