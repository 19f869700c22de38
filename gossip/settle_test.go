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
// five seconds of fifteen, no duplicate payload and no graft. Without the
// hold on grafted links (Engine.tie) this run kept flapping: RMR about 0.45
// and about 10 grafts per broadcast.
func TestManySendersSettle(t *testing.T) {
	// Seed 2 is one of the five seeds of six that never settled without
	// the hold; with it all six settle.
	settle(t, 2)
}

func settle(t *testing.T, seed uint64) {
	watchdog.Test(t, func(t *testing.T) {
		const n, rate, secs = 50, 50, 15
		c := newCluster(t, n, LANConfig(), mem.Config{Latency: time.Millisecond, Jitter: 2 * time.Millisecond}, seed)
		defer c.close()
		rng := rand.New(rand.NewPCG(seed, 2))
		gap := time.Second / rate
		for i := range secs * rate {
			if i == (secs-5)*rate {
				synctest.Wait()
				c.tally.reset()
			}
			if _, err := c.nodes[rng.IntN(n)].pt.Broadcast(context.Background(), []byte(fmt.Sprint("m", i))); err != nil {
				t.Fatal(err)
			}
			time.Sleep(gap)
		}
		time.Sleep(3 * time.Second)
		synctest.Wait()
		dups, grafts, delivered := c.tally.count(EventDuplicate), c.tally.count(EventGraftSent), c.tally.count(EventDelivered)
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
