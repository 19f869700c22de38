package gossip

import (
	"slices"
	"testing"
	"time"
)

// A graft is answered but refused as a tree edge when the answering node's
// tree for the origin is at MaxEagerPeers (onGraft: the payload, then a
// Prune). The grafter then has no parent for the origin. Its next graft of
// the origin's messages must go to another announcer: the one with the
// fewest hops is the origin itself, which refuses again, and the node
// would get every message of that origin by a graft, a GraftTimeout late
// (seen in package topic's TestIsolation, 10 nodes: an origin's tree full
// of the nodes that grafted its first message, one node orphaned by the
// first messages' prunes on the shared tree). The answer goes by datagram
// and the Prune by stream, so the Prune may come first: both orders.
// Catches: the refusal not remembered (refusedBy a no-op), not used by
// the first graft's choice, or noticed only after the answer (on 50 nodes
// with datagram jitter, a node grafted every message of an origin from
// the origin, which refused each time).
func TestRefusedGraftGoesElsewhere(t *testing.T) {
	for _, pruneFirst := range []bool{false, true} {
		name := "answer then Prune"
		if pruneFirst {
			name = "Prune then answer"
		}
		t.Run(name, func(t *testing.T) { refusedGraftGoesElsewhere(t, pruneFirst) })
	}
}

func refusedGraftGoesElsewhere(t *testing.T, pruneFirst bool) {
	cfg := testConfig() // MaxEagerPeers 4
	const origin, grafter, relay = 1, 0, 2
	o := newPaperEngineAs(t, origin, cfg, 0, 2, 3, 4, 5)
	g := newPaperEngineAs(t, grafter, cfg, 1, 2, 3, 4, 5)
	at := t0.Add(time.Second)

	// The origin's tree stops being young with its second message; then
	// grafts fill it to MaxEagerPeers with every member but the grafter.
	o.e.Broadcast(at, Payload{Data: []byte("m1")}, nil)
	m2, err := o.e.Broadcast(at.Add(time.Second), Payload{Data: []byte("m2")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	at = at.Add(2 * time.Second)
	for _, p := range []int{2, 3, 4, 5} {
		o.e.Receive(at, p, &Msg[int]{Kind: KindGraft, ID: m2, Round: 1, WantPayload: true})
	}
	o.out()
	if tree, _ := o.e.OriginEagerPeers(origin); len(tree) != cfg.MaxEagerPeers || slices.Contains(tree, grafter) {
		t.Fatalf("origin's tree %v, want %d members without %d", tree, cfg.MaxEagerPeers, grafter)
	}

	// missing has g hear of id from the origin (1 hop) and from the relay
	// (2 hops), lets the graft timer fire and returns whom g grafted.
	missing := func(id MessageID) int {
		t.Helper()
		g.e.Receive(at, origin, &Msg[int]{Kind: KindIHave, Announcements: []Announcement{{ID: id, Round: 1}}})
		g.e.Receive(at, relay, &Msg[int]{Kind: KindIHave, Announcements: []Announcement{{ID: id, Round: 2}}})
		at = at.Add(cfg.GraftTimeout + time.Millisecond)
		g.e.Tick(at)
		gr := only(g.out(), KindGraft)
		if len(gr) != 1 {
			t.Fatalf("grafts for %v: %+v, want one", id, gr)
		}
		return gr[0].To
	}
	// The grafter has had the origin's first two messages from the relay
	// (its tree for the origin is past young), then lost its parent.
	for _, id := range []MessageID{makeID(m2.Incarnation(), 1), m2} {
		g.e.Receive(at, relay, &Msg[int]{Kind: KindGossip, ID: id, Round: 2, Origin: origin, Timestamp: at.UnixNano(), Payload: Payload{Data: []byte("m")}})
		at = at.Add(10 * time.Millisecond)
	}
	g.out()

	m3, _ := o.e.Broadcast(at, Payload{Data: []byte("m3")}, nil)
	o.out()
	if to := missing(m3); to != origin {
		t.Fatalf("first graft of %v went to %d, want the origin (fewest hops)", m3, to)
	}
	// The origin answers and refuses: the payload, then a Prune.
	o.e.Receive(at, grafter, &Msg[int]{Kind: KindGraft, ID: m3, Round: 1, WantPayload: true})
	ans := o.out()
	if gs, ps := only(ans, KindGossip), only(ans, KindPrune); len(gs) != 1 || len(ps) != 1 || ps[0].To != grafter {
		t.Fatalf("origin with a full tree answered the graft with %+v, want the payload and a Prune", ans)
	}
	at = at.Add(10 * time.Millisecond)
	if pruneFirst {
		slices.Reverse(ans)
	}
	for _, s := range ans {
		m := s.Msg
		m.GraftReply = false // not on the wire
		g.e.Receive(at, origin, &m)
	}
	g.out()
	if tree, _ := o.e.OriginEagerPeers(origin); slices.Contains(tree, grafter) {
		t.Fatalf("the origin took the grafter in: %v", tree)
	}

	// The next message of the origin: the graft goes to the relay, which
	// has room, not to the origin again.
	at = at.Add(time.Second)
	m4, _ := o.e.Broadcast(at, Payload{Data: []byte("m4")}, nil)
	o.out()
	if to := missing(m4); to != relay {
		t.Fatalf("after the origin refused it, the graft of %v went to %d, want the relay %d", m4, to, relay)
	}

	// A refusal is kept MessageCacheTTL: then the fewest hops win again.
	at = at.Add(cfg.MessageCacheTTL)
	m5, _ := o.e.Broadcast(at, Payload{Data: []byte("m5")}, nil)
	o.out()
	if to := missing(m5); to != origin {
		t.Fatalf("MessageCacheTTL after the refusal, the graft of %v went to %d, want the origin", m5, to)
	}
}

// A Prune from a peer that answered a graft long before (GraftTimeout or
// more) is a duplicate's prune, not a refusal: the peer keeps its turn as
// the announcer with the fewest hops. Catches: every Prune from a grafted
// peer taken as a refusal.
func TestLatePruneIsNoRefusal(t *testing.T) {
	cfg := testConfig()
	const origin, relay = 1, 2
	g := newPaperEngine(t, cfg, 1, 2, 3, 4, 5)
	at := t0.Add(time.Second)
	inc := uint64(7)
	msg := func(seq uint64) *Msg[int] {
		return &Msg[int]{Kind: KindGossip, ID: makeID(inc, seq), Round: 2, Origin: origin, Timestamp: at.UnixNano(), Payload: Payload{Data: []byte("m")}}
	}
	g.e.Receive(at, relay, msg(1))
	g.e.Receive(at, relay, msg(2))
	graft := func(seq uint64) int {
		t.Helper()
		id := makeID(inc, seq)
		g.e.Receive(at, origin, &Msg[int]{Kind: KindIHave, Announcements: []Announcement{{ID: id, Round: 1}}})
		g.e.Receive(at, relay, &Msg[int]{Kind: KindIHave, Announcements: []Announcement{{ID: id, Round: 2}}})
		at = at.Add(cfg.GraftTimeout + time.Millisecond)
		g.e.Tick(at)
		gr := only(g.out(), KindGraft)
		if len(gr) != 1 {
			t.Fatalf("grafts %+v, want one", gr)
		}
		return gr[0].To
	}
	if to := graft(3); to != origin {
		t.Fatalf("graft to %d, want the origin", to)
	}
	m := msg(3)
	m.Round = 1
	g.e.Receive(at, origin, m)
	at = at.Add(cfg.GraftTimeout)
	g.e.Receive(at, origin, &Msg[int]{Kind: KindPrune, Origin: origin})
	g.out()
	if to := graft(4); to != origin {
		t.Fatalf("a Prune GraftTimeout after the answer moved the graft to %d, want the origin", to)
	}
}
