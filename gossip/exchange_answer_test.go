package gossip

import (
	"testing"
	"time"
)

// exchangeConfig is testConfig with the exchange on.
func exchangeConfig() Config {
	c := testConfig()
	c.ExchangeInterval = 2 * time.Second
	return c
}

// exchangesTo is the peers that sends hold an exchange for, in order.
func exchangesTo(sends []Send[int]) []int {
	return targets(only(sends, KindExchange))
}

// The exchange is push-pull: a summary that lacks a message this node
// caches is answered with this node's summary, which names it. Without the
// answer, a node that lost a message's push and every announcement of it
// waited for a neighbour that has it to choose it for an exchange: in a
// cut of 5 nodes with 10% of datagrams lost (transport/chaos
// TestClusterUnderChaos), none did for 16 seconds, once in about 900 runs.
func TestExchangeIsAnswered(t *testing.T) {
	cfg := exchangeConfig()
	pe := newPaperEngine(t, cfg, 1, 2, 3, 4)
	const inc = 0x51
	p := prefixOf(inc)
	pe.e.Receive(t0, 1, gossipMsg(makeID(inc, 1), 2))
	pe.e.Receive(t0, 1, gossipMsg(makeID(inc, 2), 2))
	pe.out()

	// Within IHaveInterval plus GraftTimeout of its arrival, message 2 may
	// still be on its way to the peer, or its announcements recovering
	// it: no answer.
	lacks2 := &Msg[int]{Kind: KindExchange, Ranges: []Range{{Prefix: p, First: 1, N: 1}}}
	settle := cfg.IHaveInterval + cfg.GraftTimeout
	pe.e.Receive(t0.Add(settle-time.Millisecond), 2, lacks2)
	if got := exchangesTo(pe.out()); len(got) != 0 {
		t.Fatalf("exchange sent to %v for a message received %v ago", got, settle-time.Millisecond)
	}

	at := t0.Add(settle + time.Millisecond)
	// A summary that names everything cached here is not answered.
	pe.e.Receive(at, 3, &Msg[int]{Kind: KindExchange, Ranges: []Range{{Prefix: p, First: 0, N: 3}}})
	if got := exchangesTo(pe.out()); len(got) != 0 {
		t.Fatalf("a summary naming every cached message answered, to %v", got)
	}

	// One that lacks message 2 is, with a summary that names it.
	pe.e.Receive(at, 2, lacks2)
	out := only(pe.out(), KindExchange)
	if len(out) != 1 || out[0].To != 2 {
		t.Fatalf("summary lacking message 2: exchanges %v, want one to 2", targets(out))
	}
	if got := sortRanges(nil, out[0].Msg.Ranges); !covers(got, makeID(inc, 2)) || !covers(got, makeID(inc, 1)) {
		t.Fatalf("the answer %v does not name messages 1 and 2", out[0].Msg.Ranges)
	}
	if !out[0].Msg.ExchangeReply {
		t.Fatalf("the answer is not marked ExchangeReply: it would go by datagram (TestExchangeAnswerGoesByStream)")
	}

	// A peer answered within ExchangeInterval is not answered again, so
	// that answers end there.
	pe.e.Receive(at.Add(cfg.ExchangeInterval/2), 2, lacks2)
	if got := exchangesTo(pe.out()); len(got) != 0 {
		t.Fatalf("peer 2 answered twice within ExchangeInterval: %v", got)
	}
	pe.e.Receive(at.Add(cfg.ExchangeInterval), 2, lacks2)
	if got := exchangesTo(pe.out()); len(got) != 1 || got[0] != 2 {
		t.Fatalf("peer 2 not answered an ExchangeInterval later: %v", got)
	}

	// A periodic summary sent to a peer does not stop its answer: the
	// peer's summary that crosses it may lack what it named.
	pe.e.exchangeTo(at, 3)
	if periodic := only(pe.out(), KindExchange); len(periodic) != 1 || periodic[0].Msg.ExchangeReply {
		t.Fatalf("periodic summary %+v: want one, not marked ExchangeReply", periodic)
	}
	pe.e.Receive(at, 3, lacks2)
	if got := exchangesTo(pe.out()); len(got) != 1 || got[0] != 3 {
		t.Fatalf("peer 3, sent a summary just before, not answered: %v", got)
	}

	// A summary as long as ExchangeMaxIDs may be a turn of a longer one:
	// what it lacks proves nothing, and it is not answered.
	long := make([]Range, cfg.ExchangeMaxIDs)
	for i := range long {
		long[i] = Range{Prefix: prefixOf(uint64(1000 + i)), First: 1, N: 1}
	}
	pe.e.Receive(at, 4, &Msg[int]{Kind: KindExchange, Ranges: long})
	if got := exchangesTo(pe.out()); len(got) != 0 {
		t.Fatalf("a summary of ExchangeMaxIDs ranges answered, to %v", got)
	}

	// Near the far end of ExchangeWindow (the origin's clock), where the
	// peer's clock may have left the messages out, nothing is a reason.
	end := t0.Add(cfg.MessageCacheTTL - cfg.ExchangeInterval/2)
	pe.e.Receive(end, 4, &Msg[int]{Kind: KindExchange, Ranges: []Range{{Prefix: prefixOf(0x99), First: 1, N: 1}}})
	if got := exchangesTo(pe.out()); len(got) != 0 {
		t.Fatalf("a summary lacking messages at the window's far end answered, to %v", got)
	}
}

// Answers over all peers are bounded: 8 at once, then 4 an
// ExchangeInterval, so that a flood of exchanges costs a bounded number of
// cache walks and frames.
func TestExchangeAnswersAreBounded(t *testing.T) {
	cfg := exchangeConfig()
	cfg.LazyFanout = 6 // room for 16 neighbours (softCap)
	cfg.MaxLazyPeers, cfg.MaxPeers = 30, 30
	var members []int
	for i := 1; i <= 12; i++ {
		members = append(members, i)
	}
	pe := newPaperEngine(t, cfg, members...)
	const inc = 0x52
	pe.e.Receive(t0, 1, gossipMsg(makeID(inc, 1), 2))
	empty := &Msg[int]{Kind: KindExchange, Ranges: []Range{{Prefix: prefixOf(0x53), First: 1, N: 1}}}
	// Every member becomes a neighbour (a new one is sent a summary at once).
	for _, m := range members {
		pe.e.Receive(t0, m, empty)
	}
	pe.out()
	if n := pe.e.neighbours(); n != len(members) {
		t.Fatalf("%d neighbours, want %d", n, len(members))
	}

	at := t0.Add(10 * cfg.ExchangeInterval) // the budget full again
	answered := func(at time.Time) int {
		for _, m := range members {
			pe.e.Receive(at, m, empty)
		}
		return len(exchangesTo(pe.out()))
	}
	if n := answered(at); n != 8 {
		t.Fatalf("12 summaries at once lacking a cached message: %d answered, want the burst of 8", n)
	}
	if n := answered(at.Add(cfg.ExchangeInterval)); n != 4 {
		t.Fatalf("an ExchangeInterval later: %d answered, want 4", n)
	}
}

// TestCoversRanges checks the lookup answerExchange makes for each message
// it caches: in a summary's ranges, unsorted as they may come, across
// incarnations whose prefixes sort differently as bytes and as integers
// would not (they must not), at each range's ends and just outside.
func TestCoversRanges(t *testing.T) {
	prefix := prefixOf
	ranges := []Range{
		{Prefix: prefix(1 << 63), First: 10, N: 5}, // 10..14
		{Prefix: prefix(7), First: 100, N: 1},      // 100
		{Prefix: prefix(7), First: 1, N: 3},        // 1..3
		{Prefix: prefix(0xff), First: 0, N: 2},     // 0..1
	}
	sorted := sortRanges(nil, ranges)
	for _, c := range []struct {
		inc, seq uint64
		want     bool
	}{
		{1 << 63, 9, false}, {1 << 63, 10, true}, {1 << 63, 14, true}, {1 << 63, 15, false},
		{7, 0, false}, {7, 1, true}, {7, 3, true}, {7, 4, false}, {7, 99, false}, {7, 100, true}, {7, 101, false},
		{0xff, 0, true}, {0xff, 1, true}, {0xff, 2, false},
		{8, 1, false}, {0, 0, false}, {1<<63 + 1, 10, false},
	} {
		if got := covers(sorted, makeID(c.inc, c.seq)); got != c.want {
			t.Errorf("covers(incarnation %#x, seq %d) = %v, want %v (ranges %v)", c.inc, c.seq, got, c.want, sorted)
		}
	}
	if covers(nil, makeID(7, 1)) {
		t.Errorf("no ranges cover a message")
	}
}

// Within ExchangeInterval of an answer to a peer, a summary from it that
// lacks a message cached since that answer is answered again; one that
// lacks only what the last answer named is not (answers must not
// ping-pong). A node that answered a peer and then broadcast otherwise
// ignored the peer's next summary, which lacked the broadcast, until an
// interval had passed; on a 4-node side of an unnoticed partition with
// 20% of datagrams lost, no other exchange between the two came through
// for 14 s.
func TestExchangeAnsweredAgainForANewMessage(t *testing.T) {
	cfg := exchangeConfig()
	pe := newPaperEngine(t, cfg, 1, 2, 3, 4)
	const inc = 0x54
	p := prefixOf(inc)
	settle := cfg.IHaveInterval + cfg.GraftTimeout
	pe.e.Receive(t0, 1, gossipMsg(makeID(inc, 1), 2))
	pe.out()

	lacks1 := &Msg[int]{Kind: KindExchange, Ranges: []Range{{Prefix: prefixOf(0x55), First: 1, N: 1}}}
	t1 := t0.Add(settle + time.Millisecond)
	pe.e.Receive(t1, 2, lacks1)
	if got := exchangesTo(pe.out()); len(got) != 1 || got[0] != 2 {
		t.Fatalf("a summary lacking message 1: exchanges to %v, want one answer to 2", got)
	}

	pe.e.Receive(t1.Add(10*time.Millisecond), 1, gossipMsg(makeID(inc, 2), 2))
	pe.out()
	t2 := t1.Add(10*time.Millisecond + settle + time.Millisecond)
	if t2.Sub(t1) >= cfg.ExchangeInterval {
		t.Fatalf("the test needs settle (%v) well within ExchangeInterval (%v)", settle, cfg.ExchangeInterval)
	}
	// Lacking only message 1, which the answer named: no answer.
	pe.e.Receive(t2, 2, &Msg[int]{Kind: KindExchange, Ranges: []Range{{Prefix: p, First: 2, N: 1}}})
	if got := exchangesTo(pe.out()); len(got) != 0 {
		t.Fatalf("a summary lacking only what the last answer named, %v after it: answered to %v", t2.Sub(t1), got)
	}
	// Lacking message 2, cached since the answer: answered.
	pe.e.Receive(t2, 2, &Msg[int]{Kind: KindExchange, Ranges: []Range{{Prefix: p, First: 1, N: 1}}})
	out := only(pe.out(), KindExchange)
	if len(out) != 1 || out[0].To != 2 {
		t.Fatalf("a summary lacking message 2, cached after the last answer: exchanges to %v, want an answer to 2", targets(out))
	}
	if got := sortRanges(nil, out[0].Msg.Ranges); !covers(got, makeID(inc, 2)) {
		t.Fatalf("the answer %v does not name message 2", out[0].Msg.Ranges)
	}
}
