package topic

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/plumtree-go/plumtree/gossip"
	"github.com/plumtree-go/plumtree/internal/watchdog"
	"github.com/plumtree-go/plumtree/transport/mem"
)

// TestThousandTopics: 1,000 topics in the cluster and 100 per node. Each
// host's 100-topic set travels as one datagram (mem's 1,400 bytes), every
// host learns every other's set within a second, and a broadcast on a
// topic reaches its subscribers. (10 nodes, so that 1,000 Plumtrees fit a
// test; the announcements do not depend on the node count.)
func TestThousandTopics(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 subscriptions")
	}
	const nodes, topics, perNode = 10, 1000, 100
	watchdog.Test(t, func(t *testing.T) {
		cfg := gossip.DefaultConfig()
		cfg.DeliveryBuffer, cfg.SendQueueSize = 64, 64
		c := newCluster(t, nodes, topics, cfg, mem.Config{Latency: 5 * time.Millisecond}, 24)
		for i := range nodes {
			for _, k := range c.rng.Perm(topics)[:perNode] {
				c.subscribe(i, k)
			}
		}
		time.Sleep(time.Second)
		synctest.Wait()
		for _, nd := range c.nodes {
			s := nd.host.Stats()
			if want := (nodes - 1) * perNode; s.Subscriptions != want {
				t.Errorf("%s knows %d subscriptions of others, want %d", nd.id, s.Subscriptions, want)
			}
			if s.AnnounceErrors != 0 {
				t.Errorf("%s: %d announcements refused by the transport", nd.id, s.AnnounceErrors)
			}
		}
		c.w.mu.Lock()
		ctl := c.w.ctl
		c.w.mu.Unlock()
		var sent int
		for k := range topics {
			subs := c.subscribers(k)
			if len(subs) < 2 || sent == 50 {
				continue
			}
			c.broadcast(subs[0], k, 100)
			sent++
		}
		time.Sleep(3 * time.Second)
		synctest.Wait()
		for _, m := range c.sent {
			for _, i := range c.subscribers(m.topic) {
				if want := map[bool]int{true: 0, false: 1}[i == m.origin]; c.delivered(i, m.id) != want {
					t.Errorf("%s delivered a broadcast on %s %d times, want %d", c.nodes[i].id, c.names[m.topic], c.delivered(i, m.id), want)
				}
			}
		}
		t.Logf("%d nodes × %d of %d topics: every host knew every set after 1 s, %d control bytes in that second (%d per node); %d broadcasts on %d topics delivered to every subscriber once",
			nodes, perNode, topics, ctl, ctl/nodes, len(c.sent), sent)
	})
}
