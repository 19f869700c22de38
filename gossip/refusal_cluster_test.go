package gossip

import (
	"testing"
	"time"

	"github.com/plumtree-go/plumtree/internal/watchdog"
	"github.com/plumtree-go/plumtree/transport/mem"
)

// TestClusterRefusalUnderJitter: on 20 nodes whose trees are capped at
// EagerFanout children (MaxEagerPeers 3), grafts during the warm-up fill
// some origins' trees, and a node they orphan is refused when it grafts the
// origin (answered, then pruned; see refusedBy). Datagrams have 20 µs of
// jitter and streams none, so the Prune overtakes the answer: counted from
// the answer alone, the refusal went unnoticed, and the orphan grafted each
// of the origin's messages from the origin again, a GraftTimeout late
// (16-86 grafts after the warm-up in 5 seeds of 6, up to 21 of an origin's
// 21 messages grafted; with the graft counted, 0 in 46 seeds of 48, and
// the other grafts one-off repairs: at most 3 of an origin's messages in
// 150 runs). Once the trees have formed, no origin may have more than a
// third of its messages grafted.
func TestClusterRefusalUnderJitter(t *testing.T) {
	for _, seed := range []uint64{2, 4} {
		watchdog.Test(t, func(t *testing.T) {
			const n, warmup, measured = 20, 200, 400
			cfg := DefaultConfig()
			cfg.MaxEagerPeers = cfg.EagerFanout
			c := newCluster(t, n, cfg, mem.Config{Latency: time.Millisecond, Jitter: 20 * time.Microsecond}, seed)
			c.broadcastMany(warmup, 50*time.Millisecond)
			after := c.broadcastMany(measured, 50*time.Millisecond)
			c.settleFor(graftHorizon(cfg))
			c.requireAllDelivered(c.sent, c.nodes)
			c.checkInvariants()

			c.tally.mu.Lock()
			defer c.tally.mu.Unlock()
			grafted := map[int]int{} // origin: its messages grafted after the warm-up
			sent := map[int]int{}    // origin: its messages after the warm-up
			total := 0
			for _, id := range after {
				sent[c.origin[id]]++
				if g := c.tally.grafts[id]; g > 0 {
					grafted[c.origin[id]]++
					total += g
				}
			}
			t.Logf("seed %d: %d grafts for %d broadcasts after %d of warm-up; messages grafted by origin %v", seed, total, measured, warmup, grafted)
			for o, k := range grafted {
				if 3*k > sent[o] {
					t.Errorf("seed %d: %d of origin %s's %d messages after the warm-up were grafted: a node its tree refused keeps grafting it (%d grafts in all)",
						seed, k, c.nodes[o].id, sent[o], total)
				}
			}
		})
	}
}
