package topic

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/plumtree-go/plumtree/gossip"
	"github.com/plumtree-go/plumtree/internal/watchdog"
	"github.com/plumtree-go/plumtree/transport/mem"
)

// TestSubscribeDuringTraffic: a node that subscribes while a topic carries
// traffic delivers everything broadcast from 1 s after it subscribed; a
// node that unsubscribes is sent nothing more of the topic within the
// graft horizon (GraftTimeout after its Close), counted at the transport.
// Without Options.Backfill the late node delivers nothing broadcast before
// it subscribed; a second late node with Backfill delivers what the others
// still cache.
func TestSubscribeDuringTraffic(t *testing.T) {
	watchdog.Test(t, func(t *testing.T) {
		cfg := gossip.DefaultConfig()
		c := newCluster(t, 20, 2, cfg, mem.Config{Latency: 5 * time.Millisecond, Jitter: 2 * time.Millisecond}, 21)
		const late, backfiller, leaver = 19, 18, 3
		for i := range 15 {
			c.subscribe(i, 0)
		}
		for i := 10; i < 20; i++ {
			c.subscribe(i, 1) // the other topic, on the late node too
		}
		time.Sleep(time.Second)
		start := time.Now()
		var joinedAt, leftAt time.Time
		var lateTopic *Topic[string, []byte]
		watchdog.Waiting(t, "traffic with a subscribe at 2 s and an unsubscribe at 3 s")
		for n := 0; time.Since(start) < 6*time.Second; n++ {
			switch {
			case joinedAt.IsZero() && time.Since(start) >= 2*time.Second:
				lateTopic = c.subscribe(late, 0)
				c.subscribeWith(backfiller, 0, true)
				joinedAt = time.Now()
			case leftAt.IsZero() && time.Since(start) >= 3*time.Second:
				c.unsubscribe(leaver, 0)
				leftAt = time.Now()
			}
			subs := c.subscribers(0)
			from := subs[c.rng.IntN(len(subs))]
			for (from == late || from == backfiller) && time.Since(joinedAt) < time.Second {
				from = subs[c.rng.IntN(len(subs))]
			}
			c.broadcast(from, 0, 100)
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()

		var after, before, early, backfilled int
		for n, m := range c.sent {
			if m.origin == late || m.origin == backfiller {
				continue
			}
			got := c.delivered(late, m.id)
			switch {
			case m.at.Before(joinedAt):
				before += got
				backfilled += c.delivered(backfiller, m.id)
			case m.at.Before(joinedAt.Add(time.Second)):
				early += got
			default:
				after++
				if got != 1 {
					t.Errorf("broadcast %d, %v after the late node subscribed: delivered %d times, want 1", n, m.at.Sub(joinedAt), got)
				}
			}
		}
		if before != 0 {
			t.Errorf("the late node (no Backfill) delivered %d broadcasts from before it subscribed, want 0", before)
		}
		if backfilled == 0 {
			t.Errorf("the late node with Backfill delivered none of the %d broadcasts the others cached from before it subscribed", countBefore(c.sent, joinedAt))
		}
		tag := Tag(c.names[0])
		stopped := c.w.lastAt(c.nodes[leaver].id, tag).Sub(leftAt)
		if stopped > cfg.GraftTimeout {
			t.Errorf("the node that unsubscribed was sent frames of the topic until %v after it left, want at most the graft horizon %v", stopped, cfg.GraftTimeout)
		}
		s := c.nodes[leaver].host.Stats()
		t.Logf("late subscriber: %d broadcasts from 1 s after it subscribed all delivered once; %d delivered of those in its first second; %d of the %d broadcast before it subscribed (%d skipped); with Backfill %d of them",
			after, early, before, countBefore(c.sent, joinedAt), lateTopic.Skipped(), backfilled)
		t.Logf("unsubscribed node: last frame of the topic sent to it %v after it left; %d frames refused for unknown topics", stopped, s.RefusedUnknownTopic)
	})
}

func countBefore(sent []sentMsg, at time.Time) int {
	n := 0
	for _, m := range sent {
		if m.at.Before(at) {
			n++
		}
	}
	return n
}
