package gossip

import (
	"slices"
	"testing"
	"time"
)

// Half the exchanges to neighbours go to one of the neighbours heard from
// most lately. A node whose neighbours across a partition went silent
// (its membership did not notice the partition) otherwise sent most of
// its summaries where nothing answers (transport/chaos
// TestClusterUnderChaos: 8 of a node's 9 exchanges in 16 s went across the
// cut). Most lately, not within a fixed time: after the partition's
// broadcasts the cluster falls quiet, and the neighbours on the node's
// own side are still the ones it heard from last. The other exchanges go
// to any neighbour and to members outside the neighbours: they find
// silent neighbours again and merge the sides after a heal.
func TestExchangePrefersHeardNeighbours(t *testing.T) {
	cfg := exchangeConfig()
	cfg.ExchangeInterval = time.Second
	cfg.ShuffleInterval = 0 // the neighbours stay the ones named below
	cfg.LazyFanout, cfg.MaxLazyPeers, cfg.MaxPeers = 6, 8, 12
	members := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	pe := newPaperEngine(t, cfg, members...)
	id, err := pe.e.Broadcast(t0, Payload{Data: []byte("x")}, nil) // something to summarise
	if err != nil {
		t.Fatal(err)
	}
	pe.out()
	neighbours := append(pe.e.EagerPeers(), pe.e.LazyPeers()...)
	if len(neighbours) < cfg.EagerFanout+2 || len(neighbours) == len(members) {
		t.Fatalf("neighbours %v of members %v: the test needs more than EagerFanout neighbours, and outsiders", neighbours, members)
	}
	p := prefixOf(id.Incarnation())
	frame := &Msg[int]{Kind: KindExchange, Ranges: []Range{{Prefix: p, First: id.Seq(), N: 1}}}
	// Every neighbour is heard from once; then, for 20 intervals, only
	// the last EagerFanout of them ("this side"); then none at all for 20.
	for _, n := range neighbours {
		pe.e.Receive(t0, n, frame)
	}
	side := neighbours[len(neighbours)-cfg.EagerFanout:]
	const ticks = 400 // 40 exchange intervals, 10 ticks each
	var toSide, toOther, toOutsider [2]int
	for k := range ticks {
		now := t0.Add(time.Duration(k+1) * cfg.ExchangeInterval / 10)
		phase := k * 2 / ticks
		if phase == 0 && k%5 == 0 {
			for _, n := range side {
				pe.e.Receive(now, n, frame)
			}
		}
		pe.e.Tick(now)
		for _, s := range only(pe.out(), KindExchange) {
			switch {
			case slices.Contains(side, s.To):
				toSide[phase]++
			case slices.Contains(neighbours, s.To):
				toOther[phase]++
			default:
				toOutsider[phase]++
			}
		}
		if n := len(pe.e.heard); n > len(neighbours) {
			t.Fatalf("the engine holds %d heard peers, more than its %d neighbours", n, len(neighbours))
		}
	}
	for phase, name := range []string{"while this side sends", "once all is quiet"} {
		total := toSide[phase] + toOther[phase] + toOutsider[phase]
		t.Logf("%s: %d exchanges, %d to the %d neighbours heard from last, %d to the %d others, %d to outsiders",
			name, total, toSide[phase], len(side), toOther[phase], len(neighbours)-len(side), toOutsider[phase])
		if total < 15 {
			t.Fatalf("%s: only %d exchanges in %d intervals", name, total, ticks/20)
		}
		// Every other exchange to a neighbour goes to one heard from
		// last, and a share of the others: about 3 in 4 (1 in 4 at random).
		if toNeighbours := toSide[phase] + toOther[phase]; toSide[phase] < toNeighbours/2 {
			t.Errorf("%s: %d of %d exchanges to neighbours went to the %d heard from last, want at least half", name, toSide[phase], toNeighbours, len(side))
		}
		if toOther[phase] == 0 || toOutsider[phase] == 0 {
			t.Errorf("%s: no exchange to another neighbour (%d) or to an outsider (%d): nothing would find them again", name, toOther[phase], toOutsider[phase])
		}
	}
}

// With the exchange off nothing would ever forget the neighbours heard
// from (exchange does), so nothing is noted: a node that runs for days,
// its neighbours changing with every shuffle, would keep them all.
func TestHeardNotKeptWithoutExchange(t *testing.T) {
	cfg := testConfig() // ExchangeInterval 0
	pe := newPaperEngine(t, cfg, 1, 2, 3, 4)
	for _, n := range append(pe.e.EagerPeers(), pe.e.LazyPeers()...) {
		pe.e.Receive(t0, n, &Msg[int]{Kind: KindIHave, Announcements: []Announcement{{ID: makeID(0x56, 1), Round: 1}}})
	}
	if n := len(pe.e.heard); n != 0 {
		t.Fatalf("with the exchange off the engine noted %d neighbours heard from, want none", n)
	}
}
