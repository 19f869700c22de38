package gossip

import (
	"testing"
	"time"
)

// Benchmarks of the engine's hot paths: go test -bench . -benchmem ./gossip/

func benchEngine(b *testing.B) *Engine[int] {
	cfg := DefaultConfig()
	cfg.MessageCacheMaxSize = 1 << 16
	e, err := NewEngine(EngineOptions[int]{Self: 0, Config: cfg, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	members := make([]int, 50)
	for i := range members {
		members[i] = i + 1
	}
	e.SetMembers(t0, members)
	e.Outbox()
	return e
}

func BenchmarkReceiveGossip(b *testing.B) {
	e := benchEngine(b)
	from := e.EagerPeers()[0]
	m := Msg[int]{Kind: KindGossip, Round: 2, Origin: 7, Timestamp: t0.UnixNano(), Payload: Payload{Data: make([]byte, 256)}}
	now := t0
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		m.ID = MessageID{byte(i), byte(i >> 8), byte(i >> 16), byte(i >> 24), 1}
		now = now.Add(time.Microsecond)
		e.Receive(now, from, &m)
		e.Outbox()
		if i%1024 == 0 {
			e.Tick(now.Add(time.Second))
			e.Outbox()
		}
	}
}

func BenchmarkReceiveIHave(b *testing.B) {
	e := benchEngine(b)
	from := e.LazyPeers()[0]
	anns := make([]Announcement, 16)
	m := Msg[int]{Kind: KindIHave, Announcements: anns}
	now := t0
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		for j := range anns {
			k := i*16 + j
			anns[j] = Announcement{ID: [16]byte{byte(k), byte(k >> 8), byte(k >> 16), byte(k >> 24), 2}, Round: 3}
		}
		now = now.Add(10 * time.Millisecond)
		e.Receive(now, from, &m)
		// Deliver the announced messages so the missing set stays small.
		e.Tick(now)
		e.Outbox()
		for j := range anns {
			e.Receive(now, from, &Msg[int]{Kind: KindGossip, ID: anns[j].ID, Round: 3, Origin: 7, Payload: Payload{Data: []byte("x")}})
		}
		e.Outbox()
	}
	b.ReportMetric(16, "announcements/op")
}

func BenchmarkBroadcast(b *testing.B) {
	e := benchEngine(b)
	p := Payload{Data: make([]byte, 256)}
	now := t0
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		now = now.Add(time.Microsecond)
		if _, err := e.Broadcast(now, p, nil); err != nil {
			b.Fatal(err)
		}
		e.Outbox()
		if i%1024 == 0 {
			e.Tick(now.Add(time.Second))
			e.Outbox()
		}
	}
}
