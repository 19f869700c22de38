package gossip

import (
	"math"
	"testing"
	"time"
)

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
	if run := pe.e.runs[inc]; run == nil || run.first != 1 || run.next != 150 {
		t.Fatalf("run %+v, want 1 up to the hole at 150", run)
	}
	pe.e.Receive(at, 1, gossipMsg(makeID(inc, 150), 2)) // the hole fills
	if run := pe.e.runs[inc]; run.first != 1 || run.next != n+1 {
		t.Fatalf("run %+v after the hole filled, want 1 up to %d", run, n+1)
	}
	pe.out()
	// A peer's exchange names the 300 and one more: only that one is looked
	// at, within a burst of 100.
	var p [8]byte
	id0 := makeID(inc, 0)
	copy(p[:], id0[:8])
	dropped := 0
	pe.e.obs = ObserverFunc(func(ev Event) {
		if ev.Kind == EventIHaveDropped {
			dropped += ev.Count
		}
	})
	pe.e.Receive(at, 2, &Msg[int]{Kind: KindExchange, Ranges: []Range{{Prefix: p, First: 1, N: n + 1}}})
	if dropped > 0 {
		t.Fatalf("%d IDs dropped by the rate limit", dropped)
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
	var p [8]byte
	id0 := makeID(inc, 0)
	copy(p[:], id0[:8])
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
	if run := pe.e.runs[inc]; run == nil || run.first != 0 || run.next != 1 {
		t.Fatalf("run %+v, want 0 up to 1", run)
	}
	if pe.e.hasSeen(makeID(inc, 5), t0) {
		t.Fatal("message 5, never seen, taken as seen")
	}
}
