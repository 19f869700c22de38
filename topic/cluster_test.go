package topic

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/plumtree-go/plumtree/gossip"
	"github.com/plumtree-go/plumtree/internal/watchdog"
	"github.com/plumtree-go/plumtree/transport/mem"
)

// TestManyTopics is the scale check: 50 nodes, 100 topics, each
// node subscribed to 10 at random, 1,000 broadcasts from random
// subscribers. Every subscriber delivers every message of its topics
// exactly once; a node carries nothing of a topic it does not subscribe to
// (counted at the transport, by the tag in the host prefix); per-topic RMR
// stays at or under 0.05 after warm-up. Trees are per origin (gossip
// keeps one per origin), so the warm-up is three broadcasts from every
// subscriber of every topic, before the 1,000 that are measured.
func TestManyTopics(t *testing.T) {
	if testing.Short() {
		t.Skip("50 nodes and 500 subscriptions")
	}
	const (
		nodes, topics, perNode = 50, 100, 10
		broadcasts             = 1000
		warmRounds             = 3
	)
	watchdog.Test(t, func(t *testing.T) {
		c := newCluster(t, nodes, topics, gossip.DefaultConfig(), mem.Config{Latency: 5 * time.Millisecond, Jitter: 2 * time.Millisecond}, 20)
		for i := range nodes {
			for _, k := range c.rng.Perm(topics)[:perNode] {
				c.subscribe(i, k)
			}
		}
		watchdog.Waiting(t, "subscriptions to spread")
		time.Sleep(time.Second)
		synctest.Wait()
		// Every host knows every subscription.
		for i, nd := range c.nodes {
			want := 0
			for j := range c.nodes {
				if j != i {
					want += len(c.nodes[j].topics)
				}
			}
			if s := nd.host.Stats(); s.Subscriptions != want {
				t.Fatalf("%s knows %d subscriptions of others, want %d", nd.id, s.Subscriptions, want)
			}
		}
		var byTopic [topics][]int
		for k := range topics {
			byTopic[k] = c.subscribers(k)
		}
		watchdog.Waiting(t, "warm-up broadcasts")
		for range warmRounds {
			for k := range topics {
				if len(byTopic[k]) < 2 {
					continue
				}
				for _, i := range byTopic[k] {
					c.broadcast(i, k, 200)
					time.Sleep(2 * time.Millisecond)
				}
			}
		}
		time.Sleep(2 * time.Second)
		warmup := len(c.sent)
		watchdog.Waiting(t, "%d broadcasts", broadcasts)
		for range broadcasts {
			k := c.rng.IntN(topics)
			for len(byTopic[k]) < 2 {
				k = c.rng.IntN(topics)
			}
			c.broadcast(byTopic[k][c.rng.IntN(len(byTopic[k]))], k, 200)
			time.Sleep(10 * time.Millisecond)
		}
		watchdog.Waiting(t, "the broadcasts to settle")
		time.Sleep(5 * time.Second)
		synctest.Wait()

		bad := 0
		perTopic := make([][]gossip.MessageID, topics)
		for n, m := range c.sent {
			if n >= warmup {
				perTopic[m.topic] = append(perTopic[m.topic], m.id)
			}
			for _, i := range byTopic[m.topic] {
				want := 1
				if i == m.origin {
					want = 0
				}
				if got := c.delivered(i, m.id); got != want && bad < 10 {
					bad++
					t.Errorf("%s delivered broadcast %d on %s %d times, want %d", c.nodes[i].id, n, c.names[m.topic], got, want)
				}
			}
		}
		var leaked uint64
		for i, nd := range c.nodes {
			for k := range topics {
				if !c.subscribed(i, k) {
					leaked += c.w.get(nd.id, Tag(c.names[k]))
				}
			}
		}
		if leaked != 0 {
			t.Errorf("non-subscribers were sent %d bytes of topics they do not subscribe to, want 0", leaked)
		}
		var worst, sum float64
		var counted int
		for k := range topics {
			r, d := c.tallies[k].rmr(perTopic[k])
			if d == 0 {
				continue
			}
			counted++
			sum += r
			if r > worst {
				worst = r
			}
			if r > 0.05 {
				t.Errorf("%s: RMR %.3f after warm-up (%d deliveries), want <= 0.05", c.names[k], r, d)
			}
		}
		var refused, ctl uint64
		for _, nd := range c.nodes {
			refused += nd.host.Stats().RefusedUnknownTopic
		}
		c.w.mu.Lock()
		ctl = c.w.ctl
		c.w.mu.Unlock()
		t.Logf("%d broadcasts on %d topics after %d warm-up broadcasts: per-topic RMR max %.4f, mean %.4f; bytes to non-subscribers %d; frames refused for unknown topics %d; control bytes %d",
			len(c.sent)-warmup, counted, warmup, worst, sum/float64(counted), leaked, refused, ctl)
	})
}
