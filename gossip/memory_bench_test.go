package gossip_test

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/plumtree-go/plumtree/gossip"
)

// The memory a node spends per message it remembers, for the cache sizing
// formula in docs/TUNING.md:
//
//	go test -run '^$' -bench Memory -benchtime 3x ./gossip/
//
// Each iteration fills a fresh Engine through its public API and reports the
// live heap it grew by (after a GC), divided by the number of messages:
//
//   - BenchmarkCacheMemory: messages this node broadcast, so each is in
//     the payload cache and in the seen set (a relayed message costs the
//     same); B/msg includes the payload, overhead-B/msg does not.
//   - BenchmarkSeenMemory: messages the application rejected (Deliver
//     returned false), so each is only in the seen set: what a message costs
//     after its cache entry expired, until SeenTTL.

const memoryMessages = 10_000 // DefaultConfig().MessageCacheMaxSize

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func liveHeap() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func BenchmarkCacheMemory(b *testing.B) {
	for _, size := range []int{64, 256, 1024, 16 << 10} {
		b.Run(fmt.Sprintf("payload=%d", size), func(b *testing.B) {
			var perMsg float64
			for b.Loop() {
				cfg := gossip.DefaultConfig()
				cfg.MessageCacheMaxSize = memoryMessages
				e, err := gossip.NewEngine(gossip.EngineOptions[int]{Self: 0, Config: cfg, Seed: 1})
				if err != nil {
					b.Fatal(err)
				}
				e.SetMembers(t0, nil)
				before := liveHeap()
				now := t0
				for range memoryMessages {
					now = now.Add(time.Millisecond)
					if _, err := e.Broadcast(now, gossip.Payload{Data: make([]byte, size)}, nil); err != nil {
						b.Fatal(err)
					}
					e.Outbox()
				}
				after := liveHeap()
				if st := e.Stats(); st.CacheSize != memoryMessages || st.SeenSize != memoryMessages {
					b.Fatalf("cache %d, seen %d; want %d each", st.CacheSize, st.SeenSize, memoryMessages)
				}
				perMsg = float64(int64(after)-int64(before)) / memoryMessages
				runtime.KeepAlive(e)
			}
			b.ReportMetric(perMsg, "B/msg")
			b.ReportMetric(perMsg-float64(size), "overhead-B/msg")
		})
	}
}

func BenchmarkSeenMemory(b *testing.B) {
	var perMsg float64
	for b.Loop() {
		e, err := gossip.NewEngine(gossip.EngineOptions[int]{
			Self: 0, Config: gossip.DefaultConfig(), Seed: 1,
			Deliver: func(gossip.RawDelivery[int]) bool { return false },
		})
		if err != nil {
			b.Fatal(err)
		}
		e.SetMembers(t0, []int{1})
		e.Outbox()
		data := make([]byte, 64)
		before := liveHeap()
		now := t0
		for i := range memoryMessages {
			now = now.Add(time.Millisecond)
			m := gossip.Msg[int]{Kind: gossip.KindGossip, Round: 1, Origin: 1, Timestamp: now.UnixNano(),
				ID: gossip.MessageID{byte(i), byte(i >> 8), byte(i >> 16), 7}, Payload: gossip.Payload{Data: data}}
			e.Receive(now, 1, &m)
			e.Outbox()
		}
		after := liveHeap()
		if st := e.Stats(); st.CacheSize != 0 || st.SeenSize != memoryMessages {
			b.Fatalf("cache %d, seen %d; want 0 and %d", st.CacheSize, st.SeenSize, memoryMessages)
		}
		perMsg = float64(int64(after)-int64(before)) / memoryMessages
		runtime.KeepAlive(e)
	}
	b.ReportMetric(perMsg, "B/msg")
}
