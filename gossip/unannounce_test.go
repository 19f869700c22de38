package gossip

import (
	"slices"
	"testing"
)

// A lazy neighbour that announced a message, or sent its payload, has it:
// the node takes the message out of the announcements queued for that
// neighbour (an IHave would tell it nothing), and sends no IHave frame at
// all when none is left. Announcements to other neighbours are untouched.
func TestNoAnnouncementToPeerThatHasIt(t *testing.T) {
	cfg := testConfig()
	pe := newPaperEngine(t, cfg, 1, 2, 3, 4)
	lazy := sorted(pe.e.LazyPeers())
	if len(lazy) != 2 {
		t.Fatalf("lazy peers %v, want two", lazy)
	}
	l1, l2 := lazy[0], lazy[1]
	m1, _ := pe.e.Broadcast(t0, Payload{Data: []byte("one")}, nil)
	m2, _ := pe.e.Broadcast(t0, Payload{Data: []byte("two")}, nil)
	pe.out()
	// l1 announces m1; l2 pushes m2's payload.
	pe.e.Receive(t0, l1, &Msg[int]{Kind: KindIHave, Announcements: []Announcement{{ID: m1, Round: 1}}})
	pe.e.Receive(t0, l2, gossipMsg(m2, 1))
	pe.out()
	pe.e.Tick(t0.Add(cfg.IHaveInterval))
	got := map[int][]MessageID{}
	for _, s := range only(pe.out(), KindIHave) {
		for _, a := range s.Msg.Announcements {
			got[s.To] = append(got[s.To], a.ID)
		}
	}
	if !slices.Equal(got[l1], []MessageID{m2}) || !slices.Equal(got[l2], []MessageID{m1}) {
		t.Fatalf("announced %v to %d and %v to %d; want only %v to %d and only %v to %d",
			got[l1], l1, got[l2], l2, m2, l1, m1, l2)
	}

	// Both lazy neighbours announce m3 first: no IHave frame goes out (an
	// empty one would be a greeting).
	m3, _ := pe.e.Broadcast(t0.Add(cfg.IHaveInterval), Payload{Data: []byte("three")}, nil)
	pe.out()
	for _, l := range lazy {
		pe.e.Receive(t0.Add(cfg.IHaveInterval), l, &Msg[int]{Kind: KindIHave, Announcements: []Announcement{{ID: m3, Round: 2}}})
	}
	pe.out()
	pe.e.Tick(t0.Add(3 * cfg.IHaveInterval))
	if ihaves := only(pe.out(), KindIHave); len(ihaves) != 0 {
		t.Fatalf("%d IHave frames (to %v) for a message both lazy neighbours announced", len(ihaves), targets(ihaves))
	}
}
