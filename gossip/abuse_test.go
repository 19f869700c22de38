package gossip

import (
	"math"
	"slices"
	"testing"
	"time"
)

// Abuse limits at the engine: a peer flooding Graft or IHave frames gets at
// most burst + rate×elapsed of them acted upon, the rest are refused and
// counted, and what the node sends back to it is bounded by the same figure.
// The engine is driven directly with virtual time, so every count is exact.

// eventCounter counts events by kind, and the Count they carry.
type eventCounter struct {
	n     map[EventKind]int
	count map[EventKind]int
}

func newEventCounter() *eventCounter {
	return &eventCounter{n: map[EventKind]int{}, count: map[EventKind]int{}}
}

func (c *eventCounter) Observe(e Event) {
	c.n[e.Kind]++
	c.count[e.Kind] += e.Count
}

// newAbuseEngine is an engine (self 0) with members 1..4 and an event
// counter; the outbox is emptied.
func newAbuseEngine(t *testing.T, cfg Config) (*Engine[int], *eventCounter) {
	t.Helper()
	ev := newEventCounter()
	e, err := NewEngine(EngineOptions[int]{Self: 0, Config: cfg, Seed: 7, Observer: ev})
	if err != nil {
		t.Fatal(err)
	}
	e.SetMembers(t0, []int{1, 2, 3, 4})
	e.Outbox()
	return e, ev
}

// allowance is the most a token bucket of burst and rate can pass over
// elapsed, as an integer (the float sum may land a hair under an integer).
func allowance(burst int, rate float64, elapsed time.Duration) int {
	return burst + int(math.Floor(rate*elapsed.Seconds()+1e-9))
}

// sentTo sorts what the engine sent to peer by kind.
func sentTo(sends []Send[int], peer int) map[Kind]int {
	m := map[Kind]int{}
	for _, s := range sends {
		if s.To == peer {
			m[s.Msg.Kind]++
		}
	}
	return m
}

// A peer that floods WantPayload grafts, for cached and for unknown IDs, has
// at most GraftRateLimitBurst + GraftRateLimitPerSecond×elapsed of them
// looked up; each of the others is refused and reported as
// EventGraftRateLimited. The payloads sent back to it are exactly the
// grafts answered, never more than that allowance.
func TestAbuseGraftFloodRateLimited(t *testing.T) {
	cfg := testConfig()
	cfg.GraftRateLimitBurst, cfg.GraftRateLimitPerSecond = 20, 10
	e, ev := newAbuseEngine(t, cfg)
	var cached []MessageID
	for i := range 50 {
		id, err := e.Broadcast(t0, Payload{Data: []byte{byte(i)}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		cached = append(cached, id)
	}
	e.Outbox()
	flooder := e.LazyPeers()[0]
	const grafts = 5000 // one a millisecond for five seconds
	var sent map[Kind]int = map[Kind]int{}
	last := t0
	for i := range grafts {
		now := t0.Add(time.Duration(i) * time.Millisecond)
		id := MessageID{0xee, byte(i >> 8), byte(i)} // unknown
		if i%2 == 0 {
			id = cached[i/2%len(cached)]
		}
		e.Receive(now, flooder, &Msg[int]{Kind: KindGraft, ID: id, Round: 1, WantPayload: true})
		for k, n := range sentTo(e.Outbox(), flooder) {
			sent[k] += n
		}
		last = now
	}
	limit := allowance(cfg.GraftRateLimitBurst, cfg.GraftRateLimitPerSecond, last.Sub(t0))
	answered, miss, limited := ev.n[EventGraftAnswered], ev.n[EventGraftMiss], ev.n[EventGraftRateLimited]
	t.Logf("%d grafts over %v: %d answered, %d missed, %d rate limited (allowance %d); sent back %v",
		grafts, last.Sub(t0), answered, miss, limited, limit, sent)
	if answered+miss+limited != grafts {
		t.Fatalf("answered %d + missed %d + rate limited %d != %d grafts", answered, miss, limited, grafts)
	}
	if answered+miss > limit || answered+miss < limit-1 {
		t.Fatalf("%d grafts looked up, want the allowance %d", answered+miss, limit)
	}
	if sent[KindGossip] != answered {
		t.Fatalf("%d payloads sent to the flooder, %d grafts answered", sent[KindGossip], answered)
	}
	if n := sent[KindPrune] + sent[KindIHave] + sent[KindGraft] + sent[KindExchange]; n != 0 {
		t.Fatalf("the node sent the flooder %d other frames: %v", n, sent)
	}
	if answered == 0 || miss == 0 {
		t.Fatalf("the flood should have had both cached (%d answered) and unknown (%d missed) IDs looked up", answered, miss)
	}
}

// A peer that floods IHave announcements (many frames, many IDs each) has at
// most IHaveRateLimitBurst + IHaveRateLimitPerSecond×elapsed announcements
// processed; the rest are dropped and counted in EventIHaveDropped. The
// node's grafts back to it are bounded by what was processed (and by its
// share of MaxMissing) times the attempts per message.
func TestAbuseIHaveFloodRateLimited(t *testing.T) {
	cfg := testConfig()
	cfg.IHaveRateLimitBurst, cfg.IHaveRateLimitPerSecond = 400, 200
	cfg.MaxMissing = 4000
	e, ev := newAbuseEngine(t, cfg)
	flooder := e.LazyPeers()[0]
	const frames, perFrame = 2000, 50 // 100,000 announcements over two seconds
	next := 0
	grafts := 0
	last := t0
	for i := range frames {
		now := t0.Add(time.Duration(i) * time.Millisecond)
		anns := make([]Announcement, perFrame)
		for j := range anns {
			anns[j] = Announcement{ID: [16]byte{0xaa, byte(next >> 16), byte(next >> 8), byte(next)}, Round: 1}
			next++
		}
		e.Receive(now, flooder, &Msg[int]{Kind: KindIHave, Announcements: anns})
		e.Tick(now)
		grafts += sentTo(e.Outbox(), flooder)[KindGraft]
		last = now
	}
	limit := allowance(cfg.IHaveRateLimitBurst, cfg.IHaveRateLimitPerSecond, last.Sub(t0))
	total := frames * perFrame
	dropped := ev.count[EventIHaveDropped]
	processed := total - dropped
	t.Logf("%d announcements in %d frames over %v: %d dropped and counted, allowance %d, missing %d, %d grafts to the flooder",
		total, frames, last.Sub(t0), dropped, limit, e.Stats().Missing, grafts)
	if processed > limit {
		t.Fatalf("%d announcements processed, allowance %d", processed, limit)
	}
	// Each processed announcement created a missing entry (the allowance is
	// under the peer's share of MaxMissing), so every drop counted was the
	// rate limit's, and the count is exact.
	if share := max(1, cfg.MaxMissing/4); limit >= share {
		t.Fatalf("allowance %d is not under the share %d: the test cannot tell the drops apart", limit, share)
	}
	if e.Stats().Missing != processed || processed < limit-1 {
		t.Fatalf("%d missing entries for %d announcements processed, allowance %d", e.Stats().Missing, processed, limit)
	}
	if grafts > processed*(1+cfg.GraftMaxRetries) {
		t.Fatalf("%d grafts sent for %d processed announcements", grafts, processed)
	}
}

// lazyPeer stands for the engine's first lazy peer in a test table.
const lazyPeer = -1

// Frames that cost the node nothing to refuse must not make it send
// without bound: empty IHaves (greetings), Prunes, grafts and Gossip from a
// node that is not a member, duplicates, and grafts past the eager cap each
// get at most one Prune per GraftTimeout back, however many arrive. (Before
// the Prune throttle, duplicates and grafts past the eager cap got one Prune
// each: 10,000 frames in, 9,900 and 10,000 back.)
func TestAbuseNoReflection(t *testing.T) {
	for _, tt := range []struct {
		name string
		from int
		msg  func(i int) *Msg[int]
	}{
		{"empty ihave from a member", 1, func(int) *Msg[int] { return &Msg[int]{Kind: KindIHave} }},
		{"empty ihave from a stranger", 99, func(int) *Msg[int] { return &Msg[int]{Kind: KindIHave} }},
		{"prune from a member", 1, func(int) *Msg[int] { return &Msg[int]{Kind: KindPrune} }},
		{"greeting graft from a member", 1, func(int) *Msg[int] { return &Msg[int]{Kind: KindGraft} }},
		{"graft from a stranger", 99, func(i int) *Msg[int] {
			return &Msg[int]{Kind: KindGraft, ID: MessageID{1, byte(i)}, WantPayload: true}
		}},
		{"duplicate gossip from a member", 1, func(i int) *Msg[int] {
			// A new message every 100 frames, then duplicates of it.
			return &Msg[int]{Kind: KindGossip, ID: MessageID{3, byte(i / 100 >> 8), byte(i / 100)}, Round: 1, Origin: 1,
				Timestamp: t0.UnixNano(), Payload: Payload{Data: []byte("x")}}
		}},
		{"graft without payload from a lazy member, eager set full", lazyPeer, func(i int) *Msg[int] {
			return &Msg[int]{Kind: KindGraft, ID: MessageID{4, byte(i >> 8), byte(i)}}
		}},
		{"gossip from a stranger", 99, func(i int) *Msg[int] {
			return &Msg[int]{Kind: KindGossip, ID: MessageID{2, byte(i >> 8), byte(i)}, Round: 1, Origin: 99,
				Timestamp: t0.UnixNano(), Payload: Payload{Data: []byte("x")}}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.MaxEagerPeers = cfg.EagerFanout // full from the start
			e, _ := newAbuseEngine(t, cfg)
			from := tt.from
			if from == lazyPeer {
				from = e.LazyPeers()[0]
			}
			const n = 10_000
			back := 0
			for i := range n {
				now := t0.Add(time.Duration(i) * time.Millisecond)
				e.Receive(now, from, tt.msg(i))
				e.Tick(now)
				back += len(slices.DeleteFunc(e.Outbox(), func(s Send[int]) bool { return s.To != from }))
			}
			// A Prune goes to one peer at most once per GraftTimeout.
			bound := 1 + int(time.Duration(n)*time.Millisecond/cfg.GraftTimeout)
			t.Logf("%d frames in over %v, %d frames back to the sender (bound %d)", n, time.Duration(n)*time.Millisecond, back, bound)
			if back > bound {
				t.Fatalf("%d frames back for %d received: the node reflects this frame", back, n)
			}
		})
	}
}
