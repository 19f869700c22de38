package gossip

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/plumtree-go/plumtree/codec"
	"github.com/plumtree-go/plumtree/gossip/internal/cache"
	"github.com/plumtree-go/plumtree/gossip/internal/wire"
	"github.com/plumtree-go/plumtree/internal/watchdog"
	"github.com/plumtree-go/plumtree/membership"
	"github.com/plumtree-go/plumtree/membership/static"
	"github.com/plumtree-go/plumtree/transport/mem"
)

// The unique-message flood: a hostile member sends floodMessages unique,
// well-formed Gossip frames (floodPayload bytes each) to one node, all at one
// virtual instant, so that no entry ever expires and only the count caps
// bound the node. The node delivers or counts every one, its cache and seen
// set never pass their caps, and its live heap stays under floodHeapBound.
// floodMessages and the caps are 1,000,000 and DefaultConfig's without the
// race detector (flood_norace_test.go), fewer and smaller under it
// (flood_race_test.go), where every step is many times slower.

const floodPayload = 100

// Per-entry costs on a 64-bit platform, for floodHeapBound.
const (
	// A cache slot: key 16 + time 24 + cached[string] 96 bytes; the ring
	// grows by doubling, so up to twice the cap in slots.
	cacheSlotBytes = 2 * (16 + 24 + 96)
	// A seen slot: key 16 + time 24; doubled likewise.
	seenSlotBytes = 2 * (16 + 24)
	// A map entry of either index (16-byte key, 8-byte value, a control
	// byte), at the lowest load a map reaches before it doubles, rounded up.
	indexEntryBytes = 64
	// What a frame in flight or a delivery holds besides its bytes: a
	// transport.Message or a Delivery, and the decoded origin string.
	perFrameBytes = 128
	// The runtime, the test, the nodes' fixed structures.
	floodSlackBytes = 4 << 20
)

// floodFrameBytes is the size class of one received frame: a cached payload
// aliases the frame it arrived in, so each cache entry keeps a whole frame.
func floodFrameBytes(frameLen int) int { return (frameLen + 15) &^ 15 }

// floodHeapBound is the most live heap the flood may add to a node with
// cfg, whatever the number of messages: each cache entry (slot, index entry,
// the frame its payload aliases), each seen entry (slot, index entry), and
// the frames that may wait in bounded queues: the delivery buffer, the
// node's receive queue, and the datagram queue of an eager peer that does
// not read (each a queue of mem.DefaultQueueSize).
func floodHeapBound(cfg Config, frameLen int) int {
	frame := floodFrameBytes(frameLen)
	seenCap := cache.SeenShards * ((cfg.seenMaxSize() + cache.SeenShards - 1) / cache.SeenShards)
	return cfg.MessageCacheMaxSize*(cacheSlotBytes+indexEntryBytes+frame+perFrameBytes) +
		seenCap*(seenSlotBytes+indexEntryBytes) +
		(cfg.DeliveryBuffer+2*mem.DefaultQueueSize)*(frame+perFrameBytes) +
		floodSlackBytes
}

func liveHeapBytes() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func TestAbuseUniqueMessageFlood(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MessageCacheMaxSize = floodCacheMax
	seenCap := cache.SeenShards * ((cfg.seenMaxSize() + cache.SeenShards - 1) / cache.SeenShards)
	wall := time.Now()
	defer func() { t.Logf("wall time %v", time.Since(wall).Round(time.Millisecond)) }()
	watchdog.Test(t, func(t *testing.T) {
		base := liveHeapBytes()
		net := mem.NewNetwork(mem.Config{})
		v, _ := net.Listen("v")
		evil, _ := net.Listen("evil")
		quiet, _ := net.Listen("quiet") // an eager neighbour that never reads
		defer v.Close()
		defer evil.Close()
		defer quiet.Close()
		ms := static.New(membership.Member[string]{ID: "v", Addr: "v"}, membership.Member[string]{ID: "evil", Addr: "evil"},
			membership.Member[string]{ID: "quiet", Addr: "quiet"})
		defer ms.Close()
		var delivered atomic.Int64
		node, err := New(cfg, Options[string, []byte]{ID: "v", Transport: v, Membership: ms, Codec: codec.Bytes(), Seed: 1,
			OnDeliver: func(Delivery[string, []byte]) { delivered.Add(1) }})
		if err != nil {
			t.Fatal(err)
		}
		defer node.Close()
		// Drain what the node sends the flooder (greetings): it is not
		// part of the node's memory.
		go func() {
			for range evil.Frames() {
			}
		}()
		go func() {
			for range evil.Datagrams() {
			}
		}()

		f := wire.Frame{Type: wire.TypeGossip, Sender: []byte("evil"), Origin: []byte("evil"), Round: 1,
			Timestamp: time.Now().UnixNano(), Payload: make([]byte, floodPayload)}
		buf, _ := wire.Append(nil, &f)
		bound := floodHeapBound(cfg, len(buf))
		var peak uint64
		start := time.Now() // virtual: the whole flood is at one instant
		// Random IDs, as honest nodes make them, spread over the seen set's
		// shards: the set fills to its whole cap, the most memory it holds.
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range floodMessages {
			binary.LittleEndian.PutUint64(f.ID[:8], rng.Uint64())
			binary.LittleEndian.PutUint64(f.ID[8:], rng.Uint64())
			buf, _ = wire.Append(buf[:0], &f)
			if err := evil.SendFrame(context.Background(), "v", buf); err != nil {
				t.Fatal(err)
			}
			if i%floodCheckEvery != floodCheckEvery-1 {
				continue
			}
			st, err := node.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if st.CacheSize > cfg.MessageCacheMaxSize || st.SeenSize > seenCap {
				t.Fatalf("after %d messages: cache %d (cap %d), seen %d (cap %d)", i+1, st.CacheSize, cfg.MessageCacheMaxSize, st.SeenSize, seenCap)
			}
			if i%floodHeapEvery == floodHeapEvery-1 {
				h := liveHeapBytes()
				peak = max(peak, h)
				if h > base+uint64(bound) {
					t.Fatalf("after %d messages: live heap %d bytes, %d over the %d before the flood; bound %d",
						i+1, h, h-base, base, bound)
				}
			}
		}
		synctest.Wait()
		st, err := node.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if time.Since(start) != 0 {
			t.Fatalf("virtual time moved by %v: entries may have expired", time.Since(start))
		}
		if got := uint64(delivered.Load()) + st.DeliveriesDropped; got != floodMessages || st.DecodeErrors != 0 {
			t.Fatalf("%d delivered + %d dropped for the application != %d sent (%d decode errors)",
				delivered.Load(), st.DeliveriesDropped, floodMessages, st.DecodeErrors)
		}
		if st.CacheSize != cfg.MessageCacheMaxSize || st.SeenSize > seenCap || st.SeenSize < cfg.seenMaxSize()-cache.SeenShards {
			t.Fatalf("at the end: cache %d (cap %d), seen %d (cap %d): the caps were not reached or not held",
				st.CacheSize, cfg.MessageCacheMaxSize, st.SeenSize, seenCap)
		}
		t.Logf("%d unique %d-byte frames (%d bytes on the wire): %d delivered, %d dropped for the application; cache %d/%d, seen %d/%d; live heap before %.1f MiB, peak %.1f MiB (+%.1f MiB), bound +%.1f MiB",
			floodMessages, floodPayload, len(buf), delivered.Load(), st.DeliveriesDropped,
			st.CacheSize, cfg.MessageCacheMaxSize, st.SeenSize, seenCap,
			mib(base), mib(peak), mib(peak-min(peak, base)), float64(bound)/(1<<20))
	})
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
