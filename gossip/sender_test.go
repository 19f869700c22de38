package gossip

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/plumtree-go/plumtree/transport/mem"
)

// A peer's stream sender runs only while its queue holds frames. With
// payloads by datagram a peer's stream carries a graft or an exchange now
// and then, and a goroutine per peer waiting on an empty queue was most of
// a node's goroutines (12 of 60 per node on 20 nodes, issue 18). Here every
// payload goes by stream, so the senders have work; once the cluster is
// idle none is left.
func TestStreamSendersExitWhenIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := LANConfig()
		cfg.GossipDatagramMaxSize = 0 // every payload by stream
		c := newCluster(t, 8, cfg, mem.Config{}, 1)
		ids := c.broadcastMany(30, 5*time.Millisecond)
		c.settleFor(3 * time.Second) // exchanges too, every second
		for _, id := range ids {
			if m := c.missing(id, c.nodes); len(m) > 0 {
				t.Fatalf("message %x missing at %v", id[:4], m)
			}
		}
		var started int64
		for _, n := range c.nodes {
			started += n.pt.sendersStarted.Load()
			if live := n.pt.sendersLive.Load(); live != 0 {
				t.Errorf("%s: %d stream senders still running on an idle cluster, want 0 (they exit when their queue is empty)", n.id, live)
			}
		}
		if started == 0 {
			t.Fatal("no stream sender ever started: the test sent nothing by stream")
		}
		t.Logf("stream senders started: %d in all", started)
	})
}
