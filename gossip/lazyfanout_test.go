package gossip

import (
	"slices"
	"testing"
	"time"
)

// lazyFanoutEngine returns an engine with LANConfig's fanouts (3 eager, 6
// lazy) among 15 members and 12 lazy neighbours: the 6 it picked and 6 that
// picked it (links go both ways). Announcements leave one per IHave frame.
func lazyFanoutEngine(t *testing.T, seed uint64) (*paperEngine, Config) {
	t.Helper()
	cfg := LANConfig()
	cfg.IHaveBatchSize = 1
	cfg.ExchangeInterval = 0
	members := make([]int, 15)
	for i := range members {
		members[i] = i + 1
	}
	pe := &paperEngine{t: t}
	e, err := NewEngine(EngineOptions[int]{Self: 0, Config: cfg, Seed: seed,
		Deliver: func(d RawDelivery[int]) bool { pe.delivered = append(pe.delivered, d); return true }})
	if err != nil {
		t.Fatal(err)
	}
	pe.e = e
	e.SetMembers(t0, members)
	for _, m := range members {
		if !e.eager.has(m) && !e.lazy.has(m) {
			// A node that picked this one greets it: it becomes lazy.
			e.Receive(t0, m, &Msg[int]{Kind: KindIHave})
		}
	}
	e.Outbox()
	if e.eager.len() != 3 || e.lazy.len() != 12 {
		t.Fatalf("%d eager and %d lazy neighbours, want 3 and 12", e.eager.len(), e.lazy.len())
	}
	return pe, cfg
}

// announced maps each message to the peers its announcements went to.
func announced(t *testing.T, sends []Send[int]) map[MessageID][]int {
	t.Helper()
	got := map[MessageID][]int{}
	for _, s := range only(sends, KindIHave) {
		for _, a := range s.Msg.Announcements {
			id := MessageID(a.ID)
			if slices.Contains(got[id], s.To) {
				t.Fatalf("message announced to %d twice", s.To)
			}
			got[id] = append(got[id], s.To)
		}
	}
	return got
}

// Each message is announced to at most LazyFanout lazy neighbours, a fresh
// random choice per IHaveInterval, not to every lazy neighbour: a node's
// lazy set also holds the nodes that picked it, about twice LazyFanout, and
// announcing everything to all of them made IHave the largest cost after
// the payloads. Over many windows every lazy neighbour hears of some, so
// every lazy link can still repair the tree.
func TestAnnouncementsCappedAtLazyFanout(t *testing.T) {
	pe, cfg := lazyFanoutEngine(t, 1)
	lazy := pe.e.LazyPeers()
	const count = 300
	perPeer := map[int]int{}
	for i := range count {
		id, err := pe.e.Broadcast(t0.Add(time.Duration(i)*cfg.IHaveInterval), Payload{Data: []byte("m")}, nil)
		if err != nil {
			t.Fatal(err)
		}
		to := announced(t, pe.out())[id]
		if len(to) != cfg.LazyFanout {
			t.Fatalf("message announced to %d peers %v, want LazyFanout (%d) of the 12 lazy ones", len(to), sorted(to), cfg.LazyFanout)
		}
		for _, p := range to {
			if !slices.Contains(lazy, p) {
				t.Fatalf("announcement to %d, not a lazy neighbour", p)
			}
			perPeer[p]++
		}
	}
	// Each lazy neighbour's share is binomial(300, 1/2): below 100 with a
	// probability under 1e-8; the choice is seeded, so the test is
	// deterministic anyway.
	for _, p := range lazy {
		if perPeer[p] < 100 {
			t.Errorf("lazy neighbour %d got %d of %d announcements, want about half", p, perPeer[p], count)
		}
	}
	t.Logf("announcements per lazy neighbour over %d messages: %v", count, perPeer)
}

// The messages of one IHaveInterval go to the same LazyFanout neighbours,
// so that they share IHave frames: chosen per message, 20 nodes at 100
// broadcasts/s sent an IHave to nearly every lazy neighbour every window.
// The next window draws again.
func TestAnnouncementsChosenPerWindow(t *testing.T) {
	pe, cfg := lazyFanoutEngine(t, 4)
	var first []int
	changed := false
	for w := range 20 {
		start := t0.Add(time.Duration(w) * cfg.IHaveInterval)
		var window []int
		for i := range 5 {
			at := start.Add(time.Duration(i) * cfg.IHaveInterval / 10)
			id, _ := pe.e.Broadcast(at, Payload{Data: []byte("m")}, nil)
			to := sorted(announced(t, pe.out())[id])
			if len(to) != cfg.LazyFanout {
				t.Fatalf("window %d: message announced to %v, want LazyFanout (%d) peers", w, to, cfg.LazyFanout)
			}
			if window == nil {
				window = to
			} else if !slices.Equal(to, window) {
				t.Fatalf("window %d: message %d announced to %v, the window's first to %v", w, i, to, window)
			}
		}
		if first == nil {
			first = window
		} else if !slices.Equal(window, first) {
			changed = true
		}
	}
	if !changed {
		t.Fatalf("20 windows announced to the same peers %v", first)
	}
}

// A forwarded message is not announced to its origin, which has it.
func TestAnnouncementsSkipOrigin(t *testing.T) {
	pe, _ := lazyFanoutEngine(t, 5)
	parent := pe.e.EagerPeers()[0]
	lazy := sorted(pe.e.LazyPeers())
	for i := range 40 {
		origin := lazy[i%len(lazy)]
		var id MessageID
		id[0], id[1] = byte(i), 0xBB
		m := gossipMsg(id, 2)
		m.Origin = origin
		pe.e.Receive(t0.Add(time.Duration(i)*time.Second), parent, m)
		for _, p := range announced(t, pe.out())[id] {
			if p == origin {
				t.Fatalf("message %d announced to its origin %d", i, origin)
			}
		}
	}
}

// A forwarded message is announced to at most LazyFanout lazy neighbours
// that do not have it: not to the neighbours that announced it before its
// payload came, nor to the sender.
func TestAnnouncementsSkipPeersThatHaveIt(t *testing.T) {
	pe, cfg := lazyFanoutEngine(t, 2)
	lazy := sorted(pe.e.LazyPeers())
	parent := pe.e.EagerPeers()[0]
	for i := range 50 {
		var id MessageID
		id[0], id[1] = byte(i), 0xAA
		// Four lazy neighbours announce it; then the parent pushes it.
		had := slices.Clone(lazy[i%8 : i%8+4])
		for _, p := range had {
			pe.e.Receive(t0, p, &Msg[int]{Kind: KindIHave, Announcements: []Announcement{{ID: id, Round: 3}}})
		}
		pe.e.Receive(t0, parent, gossipMsg(id, 3))
		to := announced(t, pe.out())[id]
		if len(to) != cfg.LazyFanout {
			t.Fatalf("message announced to %v, want LazyFanout (%d) of the 8 lazy neighbours without it", sorted(to), cfg.LazyFanout)
		}
		for _, p := range to {
			if slices.Contains(had, p) || p == parent {
				t.Fatalf("message announced to %d, which has it (announcers %v, parent %d)", p, had, parent)
			}
		}
	}
}

// A lazy neighbour that grafted this node (say its eager picks had no room
// for it, so no one pushes to it) hears of every message for
// MessageCacheTTL, on top of the random choice among the others: left to
// the choice, it missed whole messages until the periodic exchange.
func TestAnnouncementsToPeerThatGrafted(t *testing.T) {
	pe, cfg := lazyFanoutEngine(t, 3)
	lazy := sorted(pe.e.LazyPeers())
	needy := lazy[0]
	m0, _ := pe.e.Broadcast(t0, Payload{Data: []byte("m0")}, nil)
	pe.out()
	pe.e.Receive(t0, needy, &Msg[int]{Kind: KindGraft, ID: m0, WantPayload: true})
	pe.out()
	if tr := pe.e.trees[pe.e.self]; pe.e.inTree(tr, needy) {
		// LANConfig has room: the graft made it eager in this origin's
		// tree. Push it back out, as a duplicate would; the mark stays.
		pe.e.prune(t0, tr, pe.e.self, needy)
		pe.out()
	}
	at := t0
	for i := range 100 {
		at = t0.Add(time.Duration(i) * 100 * time.Millisecond)
		id, _ := pe.e.Broadcast(at, Payload{Data: []byte("m")}, nil)
		to := announced(t, pe.out())[id]
		if !slices.Contains(to, needy) {
			t.Fatalf("message %d announced to %v, not to %d, which grafted this node", i, sorted(to), needy)
		}
		if len(to) != cfg.LazyFanout {
			t.Fatalf("message %d announced to %d peers %v, want LazyFanout (%d)", i, len(to), sorted(to), cfg.LazyFanout)
		}
	}
	// The mark expires MessageCacheTTL after the graft: the neighbour is
	// back in the random choice, and some messages pass it by.
	skipped := 0
	for i := range 50 {
		// One message per IHaveInterval: each window draws its own choice.
		id, _ := pe.e.Broadcast(t0.Add(cfg.MessageCacheTTL+time.Duration(i)*cfg.IHaveInterval), Payload{Data: []byte("late")}, nil)
		if !slices.Contains(announced(t, pe.out())[id], needy) {
			skipped++
		}
	}
	if skipped == 0 {
		t.Fatalf("after MessageCacheTTL %d still heard of all 50 messages", needy)
	}
}

// With LazyFanout 0 there is no cap: every lazy neighbour (here: the ones
// that picked this node) hears of every message.
func TestAnnouncementsUncappedAtLazyFanoutZero(t *testing.T) {
	cfg := LANConfig()
	cfg.LazyFanout, cfg.IHaveBatchSize, cfg.ExchangeInterval = 0, 1, 0
	pe := newPaperEngine(t, cfg, 1, 2, 3, 4, 5, 6, 7)
	for p := 1; p <= 7; p++ {
		if !pe.e.eager.has(p) {
			pe.e.Receive(t0, p, &Msg[int]{Kind: KindIHave}) // it picked this node
		}
	}
	pe.out()
	lazy := sorted(pe.e.LazyPeers())
	if len(lazy) != 4 {
		t.Fatalf("lazy neighbours %v, want 4", lazy)
	}
	id, _ := pe.e.Broadcast(t0, Payload{Data: []byte("m")}, nil)
	if to := sorted(announced(t, pe.out())[id]); !slices.Equal(to, lazy) {
		t.Fatalf("announced to %v, want every lazy neighbour %v", to, lazy)
	}
}

// The choice is the engine's seeded randomness only: two engines with the
// same seed and inputs announce alike (the simulator's runs repeat), and
// choosing allocates nothing once the scratch space has grown.
func TestAnnouncementChoiceDeterministicAndFree(t *testing.T) {
	run := func() [][]int {
		pe, _ := lazyFanoutEngine(t, 7)
		var r [][]int
		for range 20 {
			id, _ := pe.e.Broadcast(t0, Payload{Data: []byte("m")}, nil)
			r = append(r, announced(t, pe.out())[id])
		}
		return r
	}
	a, b := run(), run()
	if !slices.EqualFunc(a, b, slices.Equal) {
		t.Fatalf("same seed, different announcements:\n%v\n%v", a, b)
	}
	pe, _ := lazyFanoutEngine(t, 7)
	tr := pe.e.tree(t0, pe.e.self)
	if allocs := testing.AllocsPerRun(100, func() { pe.e.announceTargets(t0, tr, -2, -1, nil) }); allocs != 0 {
		t.Fatalf("%v allocations per choice, want 0", allocs)
	}
}

// A window's announcements leave together when the window ends, one IHave
// frame per target, however late in the window a target's first
// announcement came: sent IHaveInterval after each queue's first
// announcement instead, a target added midway (here: the window's first
// choice sent the message itself) got a frame of its own in the next
// window.
func TestAnnouncementQueuesSentAtWindowEnd(t *testing.T) {
	pe, cfg := lazyFanoutEngine(t, 4)
	pe.e.cfg.IHaveBatchSize = 64
	m1, _ := pe.e.Broadcast(t0, Payload{Data: []byte("m1")}, nil)
	if sends := only(pe.out(), KindIHave); len(sends) != 0 {
		t.Fatalf("announcements sent before the window ended: %v", sends)
	}
	first := slices.Clone(pe.e.targets)
	if len(first) != cfg.LazyFanout {
		t.Fatalf("m1 queued for %v, want LazyFanout (%d) targets", first, cfg.LazyFanout)
	}
	// Midway, the first target pushes a message of another origin: it is
	// not announced back to it, so one more neighbour is queued.
	var m2 MessageID
	m2[0], m2[1] = 2, 0xCC
	msg := gossipMsg(m2, 2)
	msg.Origin = 14
	mid := t0.Add(cfg.IHaveInterval / 2)
	pe.e.Receive(mid, first[0], msg)
	pe.out()
	if got := pe.e.NextDeadline(); !got.Equal(t0.Add(cfg.IHaveInterval)) {
		t.Fatalf("next deadline %v after the start, want the window's end %v", got.Sub(t0), cfg.IHaveInterval)
	}
	pe.e.Tick(t0.Add(cfg.IHaveInterval - time.Nanosecond))
	if sends := only(pe.out(), KindIHave); len(sends) != 0 {
		t.Fatalf("announcements sent before the window ended: %v", sends)
	}
	pe.e.Tick(t0.Add(cfg.IHaveInterval))
	sends := only(pe.out(), KindIHave)
	to := map[int]int{}
	for _, s := range sends {
		to[s.To]++
	}
	got := announced(t, sends)
	if len(got[m1]) != cfg.LazyFanout || len(got[m2]) != cfg.LazyFanout {
		t.Fatalf("at the window's end m1 announced to %v and m2 to %v, want %d each", got[m1], got[m2], cfg.LazyFanout)
	}
	if slices.Contains(got[m2], first[0]) {
		t.Fatalf("m2 announced to %d, which sent it", first[0])
	}
	for p, n := range to {
		if n != 1 {
			t.Fatalf("%d IHave frames to %d in one window, want 1", n, p)
		}
	}
	if len(to) != cfg.LazyFanout+1 {
		t.Fatalf("frames to %d peers, want the %d targets and the one added midway", len(to), cfg.LazyFanout+1)
	}
	if pe.e.Tick(t0.Add(2 * cfg.IHaveInterval)); len(only(pe.out(), KindIHave)) != 0 {
		t.Fatal("announcements sent again after the window ended")
	}
}
