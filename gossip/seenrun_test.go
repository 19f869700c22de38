package gossip

import (
	"math"
	"slices"
	"testing"
	"time"
)

// prefixOf is incarnation inc's prefix, as an exchange's Range names it.
func prefixOf(inc uint64) (p [8]byte) {
	id := makeID(inc, 0)
	copy(p[:], id[:8])
	return p
}

// countDropped counts, from now on, the IDs e's IHave rate limit drops.
func countDropped[ID comparable](e *Engine[ID]) *int {
	n := new(int)
	e.obs = ObserverFunc(func(ev Event) {
		if ev.Kind == EventIHaveDropped {
			*n += ev.Count
		}
	})
	return n
}

// runsOf is a copy of e's runs of incarnation inc.
func runsOf[ID comparable](e *Engine[ID], inc uint64) []seenRun {
	if rs := e.runs[inc]; rs != nil {
		return slices.Clone(rs.ivs)
	}
	return nil
}

// An exchange covers every message its sender caches, one range per
// origin incarnation: at 100 broadcasts/s and a minute of cache, 6,000
// IDs a second that a node has nearly all seen. Looked up one by one,
// each cost the sender's IHave rate limit, so that the few IDs a node
// really lacked, at the far end of a range, were dropped with the rest
// every time (and counted as dropped announcements). The run of IDs a
// node has all seen is skipped at no cost.
func TestExchangeSkipsTheRunAlreadySeen(t *testing.T) {
	cfg := testConfig()
	cfg.IHaveRateLimitPerSecond, cfg.IHaveRateLimitBurst = 100, 100
	pe := newPaperEngine(t, cfg, 1, 2, 3, 4)
	const inc, n = 0xABCD, 300
	at := t0
	for s := uint64(1); s <= n; s++ {
		if s == 150 {
			continue // a hole
		}
		pe.e.Receive(at, 1, gossipMsg(makeID(inc, s), 2))
	}
	pe.out()
	if got, want := runsOf(pe.e, inc), []seenRun{{1, 150}, {151, n + 1}}; !slices.Equal(got, want) {
		t.Fatalf("runs %v, want %v: apart at the hole at 150", got, want)
	}
	pe.e.Receive(at, 1, gossipMsg(makeID(inc, 150), 2)) // the hole fills
	if got, want := runsOf(pe.e, inc), []seenRun{{1, n + 1}}; !slices.Equal(got, want) {
		t.Fatalf("runs %v after the hole filled, want %v", got, want)
	}
	pe.out()
	// A peer's exchange names the 300 and one more: only that one is looked
	// at, within a burst of 100.
	p := prefixOf(inc)
	dropped := countDropped(pe.e)
	pe.e.Receive(at, 2, &Msg[int]{Kind: KindExchange, Ranges: []Range{{Prefix: p, First: 1, N: n + 1}}})
	if *dropped > 0 {
		t.Fatalf("%d IDs dropped by the rate limit", *dropped)
	}
	if pe.e.missing[makeID(inc, n+1)] == nil {
		t.Fatalf("message %d of the exchange not taken as missing", n+1)
	}
	// Below the run, IDs are looked at one by one: an older message this
	// node never had is missing too.
	pe.e.Receive(at.Add(time.Second), 3, &Msg[int]{Kind: KindExchange, Ranges: []Range{{Prefix: p, First: 0, N: 2}}})
	if pe.e.missing[makeID(inc, 0)] == nil {
		t.Fatal("message 0, below the run, not taken as missing")
	}
	if !pe.e.hasSeen(makeID(inc, 1), at) || pe.e.hasSeen(makeID(inc, n+1), at) {
		t.Fatal("hasSeen disagrees with the run")
	}
}

// A range that straddles the run is looked at on both sides of it, and
// only there.
func TestExchangeAroundTheRun(t *testing.T) {
	pe := newPaperEngine(t, testConfig(), 1, 2, 3, 4)
	const inc = 0x77
	for s := uint64(5); s < 10; s++ {
		pe.e.Receive(t0, 1, gossipMsg(makeID(inc, s), 2))
	}
	pe.out()
	p := prefixOf(inc)
	pe.e.Receive(t0, 2, &Msg[int]{Kind: KindExchange, Ranges: []Range{{Prefix: p, First: 1, N: 12}}})
	for s := uint64(0); s < 15; s++ {
		want := s >= 1 && s < 13 && (s < 5 || s >= 10)
		if got := pe.e.missing[makeID(inc, s)] != nil; got != want {
			t.Errorf("message %d missing: %v, want %v", s, got, want)
		}
	}
}

// Sequence numbers at the ends of the range never wrap a run: the last
// number next to a run that starts at 0 is no neighbour of it.
func TestSeenRunDoesNotWrap(t *testing.T) {
	pe := newPaperEngine(t, testConfig(), 1, 2, 3, 4)
	const inc = 0x99
	pe.e.Receive(t0, 1, gossipMsg(makeID(inc, 0), 2))
	pe.e.Receive(t0, 1, gossipMsg(makeID(inc, math.MaxUint64), 2))
	if got, want := runsOf(pe.e, inc), []seenRun{{0, 1}}; !slices.Equal(got, want) {
		t.Fatalf("runs %v, want %v", got, want)
	}
	if pe.e.hasSeen(makeID(inc, 5), t0) {
		t.Fatal("message 5, never seen, taken as seen")
	}
}

// A message lost for good (its origin was cut off, and every cache forgot
// it before the cut healed) leaves a hole that never fills. The IDs after
// it start a run of their own, so that an exchange still skips what this
// node has seen on both sides of the hole. With one run per incarnation,
// the run stopped at the hole and every later ID was looked at one by one
// in each exchange, a token of the sender's IHave rate limit each: the
// IDs really missing, at the far end of the range, were dropped with the
// rest for as long as the incarnation lived.
func TestExchangePastAPermanentHole(t *testing.T) {
	cfg := testConfig()
	cfg.IHaveRateLimitPerSecond, cfg.IHaveRateLimitBurst = 100, 100
	pe := newPaperEngine(t, cfg, 1, 2, 3, 4)
	const inc, hole, n = 0xBEEF, 50, 400
	for s := uint64(1); s <= n; s++ {
		if s != hole {
			pe.e.Receive(t0, 1, gossipMsg(makeID(inc, s), 2))
		}
	}
	pe.out()
	p := prefixOf(inc)
	dropped := countDropped(pe.e)
	// The sender caches what came after the hole, and two more.
	for k, at := range []time.Time{t0.Add(time.Second), t0.Add(2 * time.Second)} {
		pe.e.Receive(at, 2, &Msg[int]{Kind: KindExchange, Ranges: []Range{{Prefix: p, First: hole + 1, N: n - hole + 2}}})
		if *dropped > 0 {
			t.Fatalf("exchange %d: %d IDs dropped by the rate limit", k+1, *dropped)
		}
		for _, s := range []uint64{n + 1, n + 2} {
			if pe.e.missing[makeID(inc, s)] == nil {
				t.Fatalf("exchange %d: message %d, past the hole, not taken as missing", k+1, s)
			}
		}
	}
	if !pe.e.hasSeen(makeID(inc, hole+1), t0) || pe.e.hasSeen(makeID(inc, hole), t0) {
		t.Fatal("hasSeen disagrees with the runs")
	}
}

// Runs grow at both ends and merge when the hole between them fills,
// whatever order the IDs come in, and never claim an ID not seen.
func TestSeenRunsMerge(t *testing.T) {
	pe := newPaperEngine(t, testConfig(), 1, 2, 3, 4)
	const inc = 0x55
	for _, s := range []uint64{10, 12, 14, 11, 9, 16, 13} {
		pe.e.Receive(t0, 1, gossipMsg(makeID(inc, s), 2))
	}
	pe.out()
	if got, want := runsOf(pe.e, inc), []seenRun{{9, 15}, {16, 17}}; !slices.Equal(got, want) {
		t.Fatalf("runs %v, want %v", got, want)
	}
	pe.e.Receive(t0, 1, gossipMsg(makeID(inc, 15), 2))
	if got, want := runsOf(pe.e, inc), []seenRun{{9, 17}}; !slices.Equal(got, want) {
		t.Fatalf("runs %v after 15, want %v", got, want)
	}
	for s := uint64(0); s < 20; s++ {
		if got, want := pe.e.hasSeen(makeID(inc, s), t0), s >= 9 && s < 17; got != want {
			t.Errorf("hasSeen(%d) = %v, want %v", s, got, want)
		}
	}
	// Past maxSeenRuns, an ID next to no run starts none, and is still
	// seen (the seen set has it).
	for k := range maxSeenRuns {
		pe.e.Receive(t0, 1, gossipMsg(makeID(inc, 100+2*uint64(k)), 2))
	}
	if got := len(runsOf(pe.e, inc)); got != maxSeenRuns {
		t.Fatalf("%d runs, want at most %d", got, maxSeenRuns)
	}
	if !pe.e.hasSeen(makeID(inc, 100+2*(maxSeenRuns-1)), t0) {
		t.Fatal("an ID outside every run is not seen")
	}
}
