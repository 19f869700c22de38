package gossip

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"

	"github.com/plumtree-go/plumtree/internal/watchdog"
	"github.com/plumtree-go/plumtree/transport/mem"
)

// TestManySendersSettle: 50 nodes on 1-3 ms links, broadcasts from random
// origins at 50 per second. The one shared tree must settle: over the last
// five seconds of fifteen, no duplicate payload and no graft, and every
// broadcast delivered once by every other node.
//
// When the hold on grafted links (Engine.tie) was added, this seed never
// settled without it (RMR about 0.45, about 10 grafts per broadcast). Later
// engine changes (announcements to a grafting peer, the duplicate rule's
// time window) settle it without the hold as well: with tie made a no-op it
// passed 3 runs of 3 (issue 24). The hold itself is checked by
// TestGraftedLinkHeldFromPruning.
func TestManySendersSettle(t *testing.T) {
	settle(t, 2)
}

func settle(t *testing.T, seed uint64) {
	watchdog.Test(t, func(t *testing.T) {
		const n, rate, secs = 50, 50, 15
		c := newCluster(t, n, LANConfig(), mem.Config{Latency: time.Millisecond, Jitter: 2 * time.Millisecond}, seed)
		defer c.close()
		rng := rand.New(rand.NewPCG(seed, 2))
		gap := time.Second / rate
		var sent []MessageID
		var from []*testNode
		watchdog.Waiting(t, "%d broadcasts from random origins at %d/s", secs*rate, rate)
		for i := range secs * rate {
			if i == (secs-5)*rate {
				synctest.Wait()
				c.tally.reset()
			}
			node := c.nodes[rng.IntN(n)]
			id, err := node.pt.Broadcast(context.Background(), []byte(fmt.Sprint("m", i)))
			if err != nil {
				t.Fatal(err)
			}
			sent, from = append(sent, id), append(from, node)
			time.Sleep(gap)
		}
		time.Sleep(3 * time.Second)
		synctest.Wait()
		dups, grafts, delivered := c.tally.count(EventDuplicate), c.tally.count(EventGraftSent), c.tally.count(EventDelivered)
		// Every broadcast reached every other node, once.
		for i, id := range sent {
			for _, node := range c.nodes {
				if node == from[i] {
					continue
				}
				if k := node.count(id); k != 1 {
					t.Fatalf("broadcast %d (from %s) delivered %d times at %s, want once", i, from[i].id, k, node.id)
				}
			}
		}
		if failed := c.tally.count(EventGraftFailed); failed != 0 {
			t.Errorf("%d messages given up", failed)
		}
		if dups != 0 || grafts != 0 {
			t.Errorf("the tree did not settle: in the last five seconds %d duplicates (RMR %.3f) and %d grafts", dups, float64(dups)/float64(max(delivered, 1)), grafts)
		}
	})
}

// reset forgets what the tally counted.
func (t *tally) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(t.payloads)
	clear(t.eagerSent)
	clear(t.events)
}

// count returns how many events of kind the tally counted.
func (t *tally) count(kind EventKind) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.events[kind]
}
