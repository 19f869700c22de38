package gossip

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// Tests of the engine against the rules of the paper (Leitão, Pereira,
// Rodrigues: Epidemic Broadcast Trees, SRDS 2007, Algorithm 1 and the
// optimization of Algorithm 2). Each test quotes the rule it checks.

var t0 = time.Unix(1_800_000_000, 0)

type paperEngine struct {
	t         *testing.T
	e         *Engine[int]
	delivered []RawDelivery[int]
}

func newPaperEngine(t *testing.T, cfg Config, members ...int) *paperEngine {
	t.Helper()
	return newPaperEngineAs(t, 0, cfg, members...)
}

func newPaperEngineAs(t *testing.T, self int, cfg Config, members ...int) *paperEngine {
	t.Helper()
	pe := &paperEngine{t: t}
	e, err := NewEngine(EngineOptions[int]{Self: self, Config: cfg, Seed: 1,
		Deliver: func(d RawDelivery[int]) bool { pe.delivered = append(pe.delivered, d); return true }})
	if err != nil {
		t.Fatal(err)
	}
	pe.e = e
	e.SetMembers(t0, members)
	e.Outbox()
	return pe
}

func testConfig() Config {
	c := DefaultConfig()
	c.EagerFanout, c.LazyFanout = 2, 2
	c.MaxEagerPeers, c.MaxLazyPeers, c.MaxPeers = 4, 4, 8
	c.ExchangeInterval = 0
	return c
}

func (pe *paperEngine) out() []Send[int] { return slices.Clone(pe.e.Outbox()) }

func only(sends []Send[int], k Kind) []Send[int] {
	var r []Send[int]
	for _, s := range sends {
		if s.Msg.Kind == k {
			r = append(r, s)
		}
	}
	return r
}

func targets(sends []Send[int]) []int {
	var r []int
	for _, s := range sends {
		r = append(r, s.To)
	}
	slices.Sort(r)
	return r
}

func sorted(ids []int) []int { ids = slices.Clone(ids); slices.Sort(ids); return ids }

func gossipMsg(id MessageID, round uint32) *Msg[int] {
	return &Msg[int]{Kind: KindGossip, ID: id, Round: round, Origin: 99, Timestamp: t0.UnixNano(), Payload: Payload{Data: []byte("m")}}
}

func TestPaperBroadcastEagerAndLazyPush(t *testing.T) {
	// "Broadcast(m): ... eagerPush(m, mID, 0, myself); lazyPush(m, mID, 0, myself)"
	pe := newPaperEngine(t, testConfig(), 1, 2, 3, 4)
	eager, lazy := sorted(pe.e.EagerPeers()), sorted(pe.e.LazyPeers())
	if len(eager) != 2 || len(lazy) != 2 {
		t.Fatalf("neighbour sets %v / %v, want two eager and two lazy", eager, lazy)
	}
	id, err := pe.e.Broadcast(t0, Payload{Data: []byte("hello")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := pe.out()
	if got := targets(only(out, KindGossip)); !slices.Equal(got, eager) {
		t.Fatalf("payload sent to %v, want the eager peers %v", got, eager)
	}
	if len(only(out, KindIHave)) != 0 {
		t.Fatal("announcements left before IHaveInterval")
	}
	pe.e.Tick(t0.Add(testConfig().IHaveInterval))
	ihaves := only(pe.out(), KindIHave)
	if got := targets(ihaves); !slices.Equal(got, lazy) {
		t.Fatalf("IHave sent to %v, want the lazy peers %v", got, lazy)
	}
	if a := ihaves[0].Msg.Announcements; len(a) != 1 || MessageID(a[0].ID) != id || a[0].Round != 1 {
		t.Fatalf("announcement %+v, want the message at round 1", a)
	}
	if len(pe.delivered) != 0 {
		t.Fatal("the origin delivered its own broadcast")
	}
}

func TestPaperIHaveBatching(t *testing.T) {
	// Lazy push is batched: a queue goes out when it holds IHaveBatchSize
	// announcements, or IHaveInterval after its first one.
	cfg := testConfig()
	cfg.IHaveBatchSize = 3
	pe := newPaperEngine(t, cfg, 1, 2, 3, 4)
	for range 3 {
		pe.e.Broadcast(t0, Payload{Data: []byte("x")}, nil)
	}
	ihaves := only(pe.out(), KindIHave)
	if len(ihaves) != 2 || len(ihaves[0].Msg.Announcements) != 3 {
		t.Fatalf("after 3 broadcasts with batch size 3: %d IHave frames, want one full batch per lazy peer", len(ihaves))
	}
	pe.e.Broadcast(t0, Payload{Data: []byte("y")}, nil)
	pe.out()
	pe.e.Tick(t0.Add(cfg.IHaveInterval - time.Nanosecond))
	if n := len(only(pe.out(), KindIHave)); n != 0 {
		t.Fatalf("%d IHave frames before the interval", n)
	}
	if d := pe.e.NextDeadline(); !d.Equal(t0.Add(cfg.IHaveInterval)) {
		t.Fatalf("next deadline %v, want the batch's %v", d, t0.Add(cfg.IHaveInterval))
	}
	pe.e.Tick(t0.Add(cfg.IHaveInterval))
	if n := len(only(pe.out(), KindIHave)); n != 2 {
		t.Fatalf("%d IHave frames at the interval, want one per lazy peer", n)
	}
}

func TestPaperFirstGossipDeliversForwardsAndMakesSenderEager(t *testing.T) {
	// "Receive(GOSSIP, m, mID, round, sender): if mID ∉ received: deliver;
	// eagerPush(round+1, sender); lazyPush(round+1, sender); eager ∪= {sender};
	// lazy \= {sender}"
	pe := newPaperEngine(t, testConfig(), 1, 2, 3, 4)
	sender := pe.e.LazyPeers()[0]
	id := MessageID{1}
	pe.e.Receive(t0, sender, gossipMsg(id, 3))
	if len(pe.delivered) != 1 || pe.delivered[0].Hops != 3 || pe.delivered[0].From != sender {
		t.Fatalf("deliveries %+v, want one at 3 hops from %d", pe.delivered, sender)
	}
	out := only(pe.out(), KindGossip)
	for _, s := range out {
		if s.To == sender || s.Msg.Round != 4 {
			t.Fatalf("forwarded %+v: must skip the sender and carry round+1", s)
		}
	}
	if !slices.Contains(pe.e.EagerPeers(), sender) || slices.Contains(pe.e.LazyPeers(), sender) {
		t.Fatalf("sender %d not moved to eager: eager %v lazy %v", sender, pe.e.EagerPeers(), pe.e.LazyPeers())
	}
	if err := pe.e.checkInvariants(); err != nil {
		t.Fatal(err)
	}
}

func TestPaperDuplicatePrunes(t *testing.T) {
	// "else: eager \= {sender}; lazy ∪= {sender}; Send(PRUNE, sender)"
	pe := newPaperEngine(t, testConfig(), 1, 2, 3, 4)
	eager := sorted(pe.e.EagerPeers())
	id := MessageID{2}
	pe.e.Receive(t0, eager[0], gossipMsg(id, 1))
	pe.out()
	pe.e.Receive(t0.Add(time.Millisecond), eager[1], gossipMsg(id, 2))
	if len(pe.delivered) != 1 {
		t.Fatalf("a duplicate was delivered: %d deliveries", len(pe.delivered))
	}
	prunes := only(pe.out(), KindPrune)
	if got := targets(prunes); !slices.Equal(got, []int{eager[1]}) {
		t.Fatalf("prunes to %v, want to the duplicate's sender %d", got, eager[1])
	}
	if !slices.Contains(pe.e.LazyPeers(), eager[1]) {
		t.Fatalf("duplicate sender %d not moved to lazy", eager[1])
	}
}

func TestPaperLateDuplicateDoesNotPrune(t *testing.T) {
	// Deviation (package doc): a duplicate arriving later than GraftTimeout
	// after the first copy is a recovered old message, not a redundant edge.
	cfg := testConfig()
	pe := newPaperEngine(t, cfg, 1, 2, 3, 4)
	eager := sorted(pe.e.EagerPeers())
	id := MessageID{3}
	pe.e.Receive(t0, eager[0], gossipMsg(id, 1))
	pe.out()
	pe.e.Receive(t0.Add(cfg.GraftTimeout), eager[1], gossipMsg(id, 5))
	if n := len(only(pe.out(), KindPrune)); n != 0 {
		t.Fatalf("a late duplicate caused %d prunes", n)
	}
	if !slices.Contains(pe.e.EagerPeers(), eager[1]) {
		t.Fatal("a late duplicate demoted a tree edge")
	}
}

func TestPaperPruneReceived(t *testing.T) {
	// "Receive(PRUNE, sender): eager \= {sender}; lazy ∪= {sender}", per
	// origin (package doc): a prune for one origin's tree takes the sender
	// out of that tree only, and out of the shared tree while that origin
	// is young (its first message).
	pe := newPaperEngine(t, testConfig(), 1, 2, 3, 4)
	eager := sorted(pe.e.EagerPeers())
	p, q := eager[0], eager[1]
	// Origin 99's first message came from q: its tree is young.
	pe.e.Receive(t0, q, gossipMsg(MessageID{1, 1}, 1))
	pe.e.Receive(t0, p, &Msg[int]{Kind: KindPrune, Origin: 99})
	if slices.Contains(pe.e.EagerPeers(), p) || !slices.Contains(pe.e.LazyPeers(), p) {
		t.Fatalf("after a prune from %d for a young origin: eager %v lazy %v", p, pe.e.EagerPeers(), pe.e.LazyPeers())
	}
	if tr, _ := pe.e.OriginEagerPeers(99); slices.Contains(tr, p) {
		t.Fatalf("after a prune from %d, origin 99's tree still pushes to it: %v", p, tr)
	}
	// Origin 99's second message: its tree is its own now. A prune for it
	// leaves the shared tree alone.
	pe.e.Receive(t0, q, gossipMsg(MessageID{1, 2}, 1))
	pe.e.Receive(t0, q, &Msg[int]{Kind: KindPrune, Origin: 99})
	if tr, _ := pe.e.OriginEagerPeers(99); slices.Contains(tr, q) {
		t.Fatalf("after a prune from %d, origin 99's tree still pushes to it: %v", q, tr)
	}
	if !slices.Contains(pe.e.EagerPeers(), q) {
		t.Fatalf("a prune for a settled origin's tree cut the shared tree: eager %v", pe.e.EagerPeers())
	}
	// A prune from a peer that is not a member must not re-insert it.
	pe.e.Receive(t0, 77, &Msg[int]{Kind: KindPrune, Origin: 99})
	pe.e.Receive(t0, 77, &Msg[int]{Kind: KindPrune, Shared: true})
	if slices.Contains(pe.e.LazyPeers(), 77) {
		t.Fatal("a prune from a non-member made it a neighbour")
	}
	// A shared prune takes the sender out of the shared tree.
	pe.e.Receive(t0, q, &Msg[int]{Kind: KindPrune, Shared: true})
	if slices.Contains(pe.e.EagerPeers(), q) {
		t.Fatalf("after a shared prune from %d: eager %v", q, pe.e.EagerPeers())
	}
}

func TestPaperIHaveTimerGraftAndRetries(t *testing.T) {
	// "Receive(IHAVE, mID, round, sender): if mID ∉ received: missing ∪=
	// {(mID, sender, round)}; if no timer for mID: setup Timer(mID, timeout1)"
	// "Timer(mID): setup Timer(mID, timeout2); (mID, node, round) ←
	// removeFirstAnnouncement(missing, mID); eager ∪= {node}; lazy \= {node};
	// Send(GRAFT, node, mID, round)"
	cfg := testConfig()
	cfg.GraftMaxRetries = 2
	pe := newPaperEngine(t, cfg, 1, 2, 3, 4)
	lazy := pe.e.LazyPeers()
	id := MessageID{4}
	pe.e.Receive(t0, lazy[0], &Msg[int]{Kind: KindIHave, Announcements: []Announcement{{ID: id, Round: 2}}})
	pe.e.Receive(t0.Add(time.Millisecond), lazy[1], &Msg[int]{Kind: KindIHave, Announcements: []Announcement{{ID: id, Round: 3}}})
	if d := pe.e.NextDeadline(); !d.Equal(t0.Add(cfg.GraftTimeout)) {
		t.Fatalf("graft timer at %v, want GraftTimeout after the first announcement (%v)", d, t0.Add(cfg.GraftTimeout))
	}
	pe.e.Tick(t0.Add(cfg.GraftTimeout - time.Nanosecond))
	if len(only(pe.out(), KindGraft)) != 0 {
		t.Fatal("grafted before the timeout")
	}
	now := t0.Add(cfg.GraftTimeout)
	pe.e.Tick(now)
	g := only(pe.out(), KindGraft)
	if len(g) != 1 || g[0].To != lazy[0] || g[0].Msg.Round != 2 || !g[0].Msg.WantPayload {
		t.Fatalf("first graft %+v, want to the first announcer %d for round 2 with payload", g, lazy[0])
	}
	// Backoff: the next graft waits GraftTimeout, then twice that.
	waits := []time.Duration{cfg.GraftTimeout, 2 * cfg.GraftTimeout}
	wantTo := []int{lazy[1], lazy[0]}
	for i, w := range waits {
		pe.e.Tick(now.Add(w - time.Nanosecond))
		if len(only(pe.out(), KindGraft)) != 0 {
			t.Fatalf("retry %d came before its backoff of %v", i+1, w)
		}
		now = now.Add(w)
		pe.e.Tick(now)
		g := only(pe.out(), KindGraft)
		if len(g) != 1 || g[0].To != wantTo[i] {
			t.Fatalf("retry %d: %+v, want one graft to %d", i+1, g, wantTo[i])
		}
	}
	// GraftMaxRetries = 2 retries are spent: the message is given up.
	pe.e.Tick(now.Add(time.Hour))
	if len(only(pe.out(), KindGraft)) != 0 || pe.e.Stats().Missing != 0 {
		t.Fatalf("still grafting after GraftMaxRetries; missing = %d", pe.e.Stats().Missing)
	}
}

func TestPaperGossipCancelsGraft(t *testing.T) {
	// "Receive(GOSSIP...): cancel Timer(mID)"
	cfg := testConfig()
	pe := newPaperEngine(t, cfg, 1, 2, 3, 4)
	id := MessageID{5}
	pe.e.Receive(t0, pe.e.LazyPeers()[0], &Msg[int]{Kind: KindIHave, Announcements: []Announcement{{ID: id, Round: 2}}})
	pe.e.Receive(t0.Add(time.Millisecond), pe.e.EagerPeers()[0], gossipMsg(id, 1))
	pe.out()
	pe.e.Tick(t0.Add(time.Hour))
	if n := len(only(pe.out(), KindGraft)); n != 0 {
		t.Fatalf("%d grafts for a message that arrived", n)
	}
}

func TestPaperGraftReceived(t *testing.T) {
	// "Receive(GRAFT, mID, round, sender): eager ∪= {sender}; lazy \= {sender};
	// if mID ∈ received: Send(GOSSIP, sender, m, mID, round)"
	cfg := testConfig()
	cfg.GraftRateLimitBurst, cfg.GraftRateLimitPerSecond = 1, 1
	pe := newPaperEngine(t, cfg, 1, 2, 3, 4)
	id, _ := pe.e.Broadcast(t0, Payload{Data: []byte("cached")}, nil)
	pe.out()
	p := pe.e.LazyPeers()[0]
	pe.e.Receive(t0, p, &Msg[int]{Kind: KindGraft, ID: id, Round: 1, WantPayload: true})
	g := only(pe.out(), KindGossip)
	if len(g) != 1 || g[0].To != p || string(g[0].Msg.Payload.Data) != "cached" || g[0].Msg.Round != 1 || !g[0].Msg.GraftReply {
		t.Fatalf("graft answer %+v, want the cached payload to %d at round 1", g, p)
	}
	if !slices.Contains(pe.e.EagerPeers(), p) {
		t.Fatal("the grafting peer was not made eager")
	}
	// The per-peer rate limit (burst 1) refuses a second graft at once.
	pe.e.Receive(t0, p, &Msg[int]{Kind: KindGraft, ID: id, Round: 1, WantPayload: true})
	if n := len(only(pe.out(), KindGossip)); n != 0 {
		t.Fatalf("rate limit passed %d answers", n)
	}
	// After the cache TTL the graft is a miss; the seen set still knows it.
	later := t0.Add(cfg.MessageCacheTTL + time.Second)
	pe.e.Receive(later, p, &Msg[int]{Kind: KindGraft, ID: id, Round: 1, WantPayload: true})
	if n := len(only(pe.out(), KindGossip)); n != 0 {
		t.Fatal("answered a graft from an expired cache entry")
	}
	pe.e.Receive(later, pe.e.EagerPeers()[0], gossipMsg(id, 4))
	if len(pe.delivered) != 0 {
		t.Fatal("the seen set did not outlive the cache: an old message was delivered again")
	}
}

func TestPaperNeighbourDownMovesGraft(t *testing.T) {
	// "NeighborDown(node): eager \= {node}; lazy \= {node}; for each (i, n, r)
	// ∈ missing: if n = node: missing \= {(i, n, r)}" and a graft in flight to
	// it goes to the next announcer at once.
	cfg := testConfig()
	pe := newPaperEngine(t, cfg, 1, 2, 3, 4)
	lazy := pe.e.LazyPeers()
	id := MessageID{6}
	for i, p := range lazy {
		pe.e.Receive(t0, p, &Msg[int]{Kind: KindIHave, Announcements: []Announcement{{ID: id, Round: uint32(2 + i)}}})
	}
	now := t0.Add(cfg.GraftTimeout)
	pe.e.Tick(now)
	if g := only(pe.out(), KindGraft); len(g) != 1 || g[0].To != lazy[0] {
		t.Fatalf("first graft %+v", g)
	}
	pe.e.PeerDown(now, lazy[0])
	if slices.Contains(pe.e.EagerPeers(), lazy[0]) || slices.Contains(pe.e.LazyPeers(), lazy[0]) {
		t.Fatal("a departed peer stayed a neighbour")
	}
	pe.e.Tick(now)
	if g := only(pe.out(), KindGraft); len(g) != 1 || g[0].To != lazy[1] {
		t.Fatalf("after the grafted peer left: %+v, want a graft to %d at once", g, lazy[1])
	}
	if err := pe.e.checkInvariants(); err != nil {
		t.Fatal(err)
	}
	// "NeighborUp(node): eager ∪= {node}" (while below EagerFanout).
	pe.e.PeerUp(now, 9)
	if !slices.Contains(pe.e.EagerPeers(), 9) && !slices.Contains(pe.e.LazyPeers(), 9) {
		t.Fatal("a new member did not fill the free neighbour slot")
	}
}

func TestPaperOptimizationThreshold(t *testing.T) {
	// Algorithm 2: "if ∃(id, node, r) ∈ missing: id = mID ∧ r < round ∧
	// round - r ≥ threshold: Send(GRAFT(null, r), node)". Both sides of the
	// boundary, per origin: the origin's first message (its tree is young
	// and changes the shared tree) is never optimized.
	for _, tc := range []struct {
		gap   uint32
		young bool
		graft bool
	}{{3, false, true}, {2, false, false}, {3, true, false}} {
		cfg := testConfig()
		cfg.OptimizationThreshold = 3
		pe := newPaperEngine(t, cfg, 1, 2, 3, 4)
		parent, announcer := pe.e.EagerPeers()[0], pe.e.LazyPeers()[0]
		if !tc.young {
			pe.e.Receive(t0, parent, gossipMsg(MessageID{7, 0}, 2))
			pe.out()
		}
		id := MessageID{7, 1}
		pe.e.Receive(t0, announcer, &Msg[int]{Kind: KindIHave, Announcements: []Announcement{{ID: id, Round: 2}}})
		pe.e.Receive(t0.Add(time.Millisecond), parent, gossipMsg(id, 2+tc.gap))
		g := only(pe.out(), KindGraft)
		if got := len(g) == 1 && g[0].To == announcer && !g[0].Msg.WantPayload; got != tc.graft {
			t.Fatalf("gap %d with threshold 3 (young %v): grafts %+v, want graft=%v", tc.gap, tc.young, g, tc.graft)
		}
		if tc.graft && slices.Contains(pe.e.EagerPeers(), announcer) {
			t.Fatal("the optimization of one origin's tree changed the shared tree")
		}
	}
}

// The optimization also acts on an announcement that comes after the
// payload (batched announcements usually do): the announcer's path is
// shorter by the same rule, and each announcer is tried once per
// MessageCacheTTL, so that a pair whose hop counts and latencies disagree
// cannot flap.
func TestOptimizationOnLateAnnouncement(t *testing.T) {
	cfg := testConfig()
	cfg.OptimizationThreshold = 3
	pe := newPaperEngine(t, cfg, 1, 2, 3, 4)
	parent, announcer := pe.e.EagerPeers()[0], pe.e.LazyPeers()[0]
	pe.e.Receive(t0, parent, gossipMsg(MessageID{7, 0}, 6))
	pe.e.Receive(t0, parent, gossipMsg(MessageID{7, 1}, 6))
	pe.out()
	pe.e.Receive(t0, announcer, &Msg[int]{Kind: KindIHave, Announcements: []Announcement{{ID: MessageID{7, 1}, Round: 4}}})
	if g := only(pe.out(), KindGraft); len(g) != 0 {
		t.Fatalf("gap 2 grafted: %+v", g)
	}
	pe.e.Receive(t0, announcer, &Msg[int]{Kind: KindIHave, Announcements: []Announcement{{ID: MessageID{7, 1}, Round: 3}}})
	g := only(pe.out(), KindGraft)
	if len(g) != 1 || g[0].To != announcer || g[0].Msg.WantPayload {
		t.Fatalf("gap 3 after the payload: grafts %+v, want one to %d without payload", g, announcer)
	}
	// The new edge turned out slower: its duplicate prunes it...
	pe.e.Receive(t0.Add(time.Second), parent, gossipMsg(MessageID{7, 2}, 6))
	pe.e.Receive(t0.Add(time.Second+time.Millisecond), announcer, gossipMsg(MessageID{7, 2}, 3))
	pe.out()
	// ...and the same announcer is not tried again within the TTL.
	pe.e.Receive(t0.Add(2*time.Second), announcer, &Msg[int]{Kind: KindIHave, Announcements: []Announcement{{ID: MessageID{7, 2}, Round: 2}}})
	if g := only(pe.out(), KindGraft); len(g) != 0 {
		t.Fatalf("the optimization tried the same announcer again: %+v", g)
	}
}

func TestPaperMessageTooLarge(t *testing.T) {
	cfg := testConfig()
	cfg.MaxMessageSize = 10
	pe := newPaperEngine(t, cfg, 1, 2)
	_, err := pe.e.Broadcast(t0, Payload{Data: make([]byte, 11)}, nil)
	var tl *MessageTooLargeError
	if !errors.As(err, &tl) || tl.Limit != 10 || tl.Size != 11 {
		t.Fatalf("got %v, want a MessageTooLargeError with size 11 and limit 10", err)
	}
	if len(pe.out()) != 0 {
		t.Fatal("a refused broadcast sent frames")
	}
}

func TestExchangeRunsAndRecovers(t *testing.T) {
	// The periodic exchange (package doc) really runs, and a node that missed
	// a message grafts it from the exchange.
	cfg := testConfig()
	cfg.ExchangeInterval = time.Second
	a := newPaperEngine(t, cfg, 1, 2, 3, 4)
	id, _ := a.e.Broadcast(t0, Payload{Data: []byte("x")}, nil)
	a.out()
	var ex []Send[int]
	for now := t0; now.Before(t0.Add(3*time.Second)) && len(ex) == 0; now = now.Add(100 * time.Millisecond) {
		a.e.Tick(now)
		ex = only(a.out(), KindExchange)
	}
	want := Range{First: id.Seq(), N: 1}
	copy(want.Prefix[:], id[:8])
	if len(ex) != 1 || len(ex[0].Msg.Ranges) != 1 || ex[0].Msg.Ranges[0] != want {
		t.Fatalf("no exchange listing the message within 3 intervals: %+v", ex)
	}
	b := newPaperEngineAs(t, ex[0].To, cfg, 0, 1, 2, 3, 4)
	b.e.Receive(t0, 0, &ex[0].Msg)
	b.e.Tick(t0.Add(cfg.GraftTimeout))
	if g := only(b.out(), KindGraft); len(g) != 1 || g[0].To != 0 || MessageID(g[0].Msg.ID) != id {
		t.Fatalf("receiver of the exchange did not graft the missing message: %+v", g)
	}
}

func TestConfigValidateNamesField(t *testing.T) {
	c := DefaultConfig()
	c.MaxEagerPeers = 1
	c.SeenTTL = time.Second
	err := c.Validate()
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want a ConfigError", err)
	}
	for _, f := range []string{"MaxEagerPeers", "SeenTTL"} {
		if !containsField(err, f) {
			t.Errorf("error %q does not name %s", err, f)
		}
	}
	for name, p := range map[string]Config{"Default": DefaultConfig(), "LAN": LANConfig(), "WAN": WANConfig(), "LargeCluster": LargeClusterConfig()} {
		if err := p.Validate(); err != nil {
			t.Errorf("preset %s is invalid: %v", name, err)
		}
	}
}

func containsField(err error, field string) bool {
	var ce *ConfigError
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		if errors.As(e, &ce) && ce.Field == field {
			return true
		}
	}
	return false
}

func TestGraftRetryTriesALaterAnnouncer(t *testing.T) {
	// "then the others in turn": an announcer that speaks up after the first
	// graft is the next one grafted, before the first is tried again.
	cfg := testConfig()
	pe := newPaperEngine(t, cfg, 1, 2, 3, 4)
	lazy := pe.e.LazyPeers()
	id := MessageID{8}
	pe.e.Receive(t0, lazy[0], &Msg[int]{Kind: KindIHave, Announcements: []Announcement{{ID: id, Round: 2}}})
	now := t0.Add(cfg.GraftTimeout)
	pe.e.Tick(now)
	if g := only(pe.out(), KindGraft); len(g) != 1 || g[0].To != lazy[0] {
		t.Fatalf("first graft %+v, want to %d", g, lazy[0])
	}
	pe.e.Receive(now, lazy[1], &Msg[int]{Kind: KindIHave, Announcements: []Announcement{{ID: id, Round: 2}}})
	pe.e.Tick(now.Add(cfg.GraftTimeout))
	if g := only(pe.out(), KindGraft); len(g) != 1 || g[0].To != lazy[1] {
		t.Fatalf("retry %+v, want the later announcer %d", g, lazy[1])
	}
}

func TestMissingShareOfOnePeer(t *testing.T) {
	// One peer announcing made-up IDs fills at most a quarter of MaxMissing,
	// so an honest announcement is still tracked.
	cfg := testConfig()
	cfg.MaxMissing = 40
	pe := newPaperEngine(t, cfg, 1, 2, 3, 4)
	lazy := pe.e.LazyPeers()
	var flood []Announcement
	for i := range 100 {
		flood = append(flood, Announcement{ID: [16]byte{9, byte(i)}, Round: 1})
	}
	pe.e.Receive(t0, lazy[0], &Msg[int]{Kind: KindIHave, Announcements: flood})
	if got := pe.e.Stats().Missing; got != cfg.MaxMissing/4 {
		t.Fatalf("a flooding peer created %d missing entries, want its share %d", got, cfg.MaxMissing/4)
	}
	honest := MessageID{10}
	pe.e.Receive(t0, lazy[1], &Msg[int]{Kind: KindIHave, Announcements: []Announcement{{ID: honest, Round: 2}}})
	pe.e.Tick(t0.Add(cfg.GraftTimeout))
	found := false
	for _, s := range only(pe.out(), KindGraft) {
		found = found || (s.To == lazy[1] && MessageID(s.Msg.ID) == honest)
	}
	if !found {
		t.Fatal("the honest announcement was dropped while one peer flooded")
	}
}
