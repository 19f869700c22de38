package topic

import (
	"fmt"
	"runtime"
	"testing"
	"testing/synctest"
	"time"

	"github.com/plumtree-go/plumtree/gossip"
	"github.com/plumtree-go/plumtree/internal/watchdog"
	"github.com/plumtree-go/plumtree/transport/mem"
)

// TestTopicCost measures what a topic costs: on the wire, the host prefix
// on every frame and the announcement of a node's set (100 topics must fit
// one datagram of transport/udp's default 1232 bytes); in memory, the heap
// and goroutines of one subscription on an idle node.
func TestTopicCost(t *testing.T) {
	const perNode = 100
	id := "node-0042" // a typical short node name
	tags := make([]uint64, perNode)
	for i := range tags {
		tags[i] = Tag(fmt.Sprintf("topic-%d", i))
	}
	ann := appendAnnouncement(nil, &announcement{sender: []byte(id), incarnation: 1, version: 1 << 20, tags: tags})
	if len(ann) != announcementSize(len(id), perNode, 1<<20) {
		t.Errorf("announcement is %d bytes, announcementSize says %d", len(ann), announcementSize(len(id), perNode, 1<<20))
	}
	if len(ann) > 1232 {
		t.Errorf("an announcement of %d topics is %d bytes: over transport/udp's default datagram of 1232", perNode, len(ann))
	}
	a, err := decodeControl(ann[PrefixLen:])
	if err != nil || len(a.tags) != perNode {
		t.Fatalf("decoding the announcement: %v", err)
	}
	t.Logf("wire: %d bytes of host prefix per frame; an announcement of %d topics (ID %q) is %d bytes (%d + 8 per topic)",
		PrefixLen, perNode, id, len(ann), len(ann)-8*perNode)

	small := gossip.DefaultConfig()
	small.DeliveryBuffer, small.SendQueueSize = 64, 64
	for _, tc := range []struct {
		name string
		cfg  gossip.Config
	}{{"DefaultConfig", gossip.DefaultConfig()}, {"DefaultConfig with DeliveryBuffer and SendQueueSize 64", small}} {
		watchdog.Test(t, func(t *testing.T) { measureTopicMemory(t, tc.name, tc.cfg) })
	}
}

func measureTopicMemory(t *testing.T, name string, cfg gossip.Config) {
	{
		const nodes, topics = 4, 50
		c := newCluster(t, nodes, topics, cfg, mem.Config{Latency: time.Millisecond}, 23)
		time.Sleep(time.Second)
		synctest.Wait()
		var before, after runtime.MemStats
		settleHeap()
		runtime.ReadMemStats(&before)
		g0 := runtime.NumGoroutine()
		for i := range nodes {
			for k := range topics {
				c.subscribe(i, k)
			}
		}
		time.Sleep(time.Second)
		synctest.Wait()
		settleHeap()
		runtime.ReadMemStats(&after)
		g1 := runtime.NumGoroutine()
		subs := nodes * topics
		perTopic := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / int64(subs)
		if perTopic <= 0 {
			t.Fatalf("heap did not grow with %d subscriptions (%d → %d bytes)", subs, before.HeapAlloc, after.HeapAlloc)
		}
		t.Logf("memory, %s: %d bytes of heap and %.1f goroutines per subscription (%d nodes × %d topics, each topic on every node, idle)",
			name, perTopic, float64(g1-g0)/float64(subs), nodes, topics)
	}
}

// settleHeap collects until the heap stops shrinking: what the tests
// before this one left (sync.Pool's buffers survive one collection in its
// victim cache, and a finished test's goroutines may still be ending)
// must be gone before the heap is read, or it is counted against the
// subscriptions, or freed during them (the heap then seemed to shrink
// with 200 subscriptions: 145 MB before, 43 MB after, after TestManyTopics).
func settleHeap() {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	for last := ms.HeapAlloc + 1; ms.HeapAlloc < last; {
		last = ms.HeapAlloc
		runtime.GC()
		runtime.ReadMemStats(&ms)
	}
}
