package gossip

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/plumtree-go/plumtree/codec"
	"github.com/plumtree-go/plumtree/membership"
	"github.com/plumtree-go/plumtree/membership/static"
	"github.com/plumtree-go/plumtree/transport/mem"
)

// Issue 16's "What it must show", as cluster tests on transport/mem in
// synctest bubbles: partitions larger than the neighbour caps re-merge, a
// backlog after a cut is recovered whole, many senders keep a stable tree,
// a restarted node's IDs are new. They failed on the engine as it was when
// they were written (neighbour sets only topped up, one shared tree, IDs
// from the seed). The helpers (cut, heal, membership on each side,
// per-window RMR, restart) are meant for more such tests.

func needIssue16(t *testing.T) {}

// split returns the first k nodes and the rest.
func (c *cluster) split(k int) (a, b []*testNode) {
	return slices.Clone(c.nodes[:k]), slices.Clone(c.nodes[k:])
}

func ids(nodes []*testNode) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.id
	}
	return out
}

// cut partitions the network between a and b; with aware, each side's
// membership then declares the other side failed.
func (c *cluster) cut(a, b []*testNode, aware bool) {
	c.net.Partition(ids(a), ids(b))
	if !aware {
		return
	}
	for _, pair := range [][2][]*testNode{{a, b}, {b, a}} {
		for _, n := range pair[0] {
			for _, o := range pair[1] {
				n.mem.Fail(o.id)
			}
		}
	}
}

// heal removes the partition; with aware, each side's membership then
// reports the other side back.
func (c *cluster) heal(a, b []*testNode, aware bool) {
	c.net.Heal()
	if !aware {
		return
	}
	for _, pair := range [][2][]*testNode{{a, b}, {b, a}} {
		for _, n := range pair[0] {
			for _, o := range pair[1] {
				n.mem.Add(membership.Member[string]{ID: o.id, Addr: o.id})
			}
		}
	}
}

// missingCount counts, over ids, the (message, node) deliveries among the
// given nodes that have not happened (origins excepted).
func (c *cluster) missingCount(ids []MessageID, among []*testNode) int {
	c.t.Helper()
	k := 0
	for _, id := range ids {
		k += len(c.missing(id, among))
	}
	return k
}

// crossLinks counts the eager and lazy links from a node of a to a node of
// b and back.
func crossLinks(a, b []*testNode) int {
	side := map[string]int{}
	for _, n := range a {
		side[n.id] = 1
	}
	for _, n := range b {
		side[n.id] = 2
	}
	k := 0
	for _, n := range append(slices.Clone(a), b...) {
		if n.down {
			continue
		}
		eager, lazy, err := n.pt.Peers()
		if err != nil {
			continue
		}
		for _, p := range append(eager, lazy...) {
			if side[p] != side[n.id] {
				k++
			}
		}
	}
	return k
}

// Partition: 40 nodes split 20/20 and 60 split 45/15, the membership
// declaring the other side failed and then back. After the heal every
// broadcast reaches every node within 30 s, and every message broadcast
// during the cut reaches the other side while it is still cached.
func TestIssue16ClusterPartition(t *testing.T) {
	needIssue16(t)
	for _, tc := range []struct{ n, a int }{{40, 20}, {60, 45}} {
		t.Run(fmt.Sprintf("%d-%d", tc.a, tc.n-tc.a), func(t *testing.T) { partitionAware(t, tc.n, tc.a) })
	}
}

func partitionAware(t *testing.T, n, k int) {
	synctest.Test(t, func(t *testing.T) {
		cfg := DefaultConfig()
		c := newCluster(t, n, cfg, mem.Config{Latency: 2 * time.Millisecond}, 1600+uint64(n))
		c.broadcastMany(30, 50*time.Millisecond)
		a, b := c.split(k)

		cutAt := time.Now()
		c.cut(a, b, true)
		var during []MessageID
		for i := range 40 {
			side := a
			if i%2 == 1 {
				side = b
			}
			during = append(during, c.broadcast(side[(i/2)%len(side)]))
			time.Sleep(100 * time.Millisecond)
		}
		// Longer than every graft's retries.
		time.Sleep(graftHorizon(cfg))
		synctest.Wait()
		t.Logf("during the cut (%v): links across %d", time.Since(cutAt).Round(time.Millisecond), crossLinks(a, b))

		healAt := time.Now()
		c.heal(a, b, true)
		var after []MessageID
		for range 30 {
			after = append(after, c.broadcast(nil))
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(30 * time.Second)
		synctest.Wait()
		missAfter := c.missingCount(after, c.nodes)
		t.Logf("30 s after the last of %d broadcasts after the heal: %d deliveries missing; links across %d",
			len(after), missAfter, crossLinks(a, b))

		// Still cached: the first message of the cut stays in its origin's
		// cache for MessageCacheTTL.
		if d := cutAt.Add(cfg.MessageCacheTTL - time.Second).Sub(time.Now()); d > 0 {
			time.Sleep(d)
		}
		synctest.Wait()
		missCut := c.missingCount(during, c.nodes)
		crossed := 0
		for _, id := range during {
			if len(c.missing(id, c.nodes)) == 0 {
				crossed++
			}
		}
		t.Logf("%v after the heal (cut messages still cached): %d of %d cut messages reached every node, %d deliveries missing",
			time.Since(healAt).Round(time.Millisecond), crossed, len(during), missCut)
		if missAfter > 0 {
			t.Errorf("%d/%d: %d deliveries of the %d broadcasts after the heal missing 30 s after the last", k, n-k, missAfter, len(after))
		}
		if missCut > 0 {
			t.Errorf("%d/%d: only %d of %d cut messages crossed while cached (%d deliveries missing)", k, n-k, crossed, len(during), missCut)
		}
		c.checkInvariants()
	})
}

// Backlog: 20 nodes, LAN preset, a 10 s cut at 100 broadcasts a second
// with the membership unaware (the links drop everything between the
// halves): 70 s after the heal nothing is missing, with and without
// traffic after the heal.
func TestIssue16ClusterBacklog(t *testing.T) {
	needIssue16(t)
	for _, traffic := range []bool{true, false} {
		t.Run(fmt.Sprintf("traffic=%v", traffic), func(t *testing.T) { backlog(t, traffic, 100, 10) })
	}
}

// backlog cuts 20 nodes in halves for cutSecs seconds at rate broadcasts a
// second.
func backlog(t *testing.T, traffic bool, rate, cutSecs int) {
	synctest.Test(t, func(t *testing.T) {
		const n = 20
		cfg := LANConfig()
		c := newCluster(t, n, cfg, mem.Config{Latency: time.Millisecond}, 1620)
		gap := time.Second / time.Duration(rate)
		c.broadcastMany(2*rate, gap)
		a, b := c.split(n / 2)
		c.cut(a, b, false)
		during := c.broadcastMany(cutSecs*rate, gap)
		healAt := time.Now()
		c.heal(a, b, false)
		if traffic {
			c.broadcastMany(cutSecs*rate, gap)
		}
		// Poll once a second for 70 s after the heal: when was the cut's
		// backlog recovered?
		var recovered time.Duration
		for time.Since(healAt) < 70*time.Second {
			time.Sleep(time.Second)
			synctest.Wait()
			if recovered == 0 && c.missingCount(during, c.nodes) == 0 {
				recovered = time.Since(healAt)
			}
		}
		lost := 0
		for _, id := range during {
			if len(c.missing(id, c.nodes)) > 0 {
				lost++
			}
		}
		all := c.missingCount(c.sent, c.nodes)
		t.Logf("traffic after the heal %v: %d of %d cut messages never crossed (%d deliveries missing over all %d broadcasts) 70 s after the heal; recovered after %v (0: never)",
			traffic, lost, len(during), all, len(c.sent), recovered)
		if lost > 0 || all > 0 {
			t.Errorf("%d cut messages lost for good (%d deliveries missing in all)", lost, all)
		}
	})
}

// Many senders: 50 nodes, 1 ms latency plus up to 2 ms jitter, every node
// sending, 400 broadcasts a second in all. From a cold start RMR is at most
// 0.2 in every 5 s window after the first 10 s; a 2 s burst of 5% datagram
// loss leaves RMR back under 0.2 within 5 s.
//
// About 13,000 broadcasts: run it without -race (about 55 s on two
// cores; several minutes under the race detector).
func TestIssue16ClusterManySenders(t *testing.T) {
	needIssue16(t)
	if hotPathRace {
		t.Skip("400 broadcasts a second for 32 s of virtual time: run without -race")
	}
	synctest.Test(t, func(t *testing.T) {
		const n, rate = 50, 400
		c := newCluster(t, n, LANConfig(), mem.Config{Latency: time.Millisecond, Jitter: 2 * time.Millisecond}, 1650)
		rng := rand.New(rand.NewPCG(1650, 2))
		gap := time.Second / rate
		seq := 0
		// send broadcasts for d from random nodes.
		send := func(d time.Duration) {
			for end := time.Now().Add(d); time.Now().Before(end); seq++ {
				if _, err := c.nodes[rng.IntN(n)].pt.Broadcast(context.Background(), fmt.Appendf(nil, "m%d", seq)); err != nil {
					t.Fatal(err)
				}
				time.Sleep(gap)
			}
		}
		// window sends for 5 s and returns the RMR of that window:
		// duplicate payloads over first deliveries.
		window := func(name string) float64 {
			synctest.Wait()
			c.tally.reset()
			send(5 * time.Second)
			synctest.Wait()
			dups, deliv, grafts := c.tally.count(EventDuplicate), c.tally.count(EventDelivered), c.tally.count(EventGraftSent)
			rmr := float64(dups) / float64(max(deliv, 1))
			t.Logf("%s: RMR %.3f (%d duplicates, %d deliveries), %.2f grafts per broadcast", name, rmr, dups, deliv, float64(grafts)/float64(5*rate))
			return rmr
		}
		send(10 * time.Second)
		for i, w := range []string{"10-15 s", "15-20 s"} {
			if rmr := window("cold, " + w); rmr > 0.2 {
				t.Errorf("cold start, window %d (%s): RMR %.3f, want at most 0.2", i, w, rmr)
			}
		}
		c.net.SetDropRate(0.05)
		send(2 * time.Second)
		c.net.SetDropRate(0)
		send(5 * time.Second)
		if rmr := window("5-10 s after the burst"); rmr > 0.2 {
			t.Errorf("5-10 s after the burst: RMR %.3f, want at most 0.2", rmr)
		}
		time.Sleep(graftHorizon(LANConfig()))
		synctest.Wait()
		if f := c.tally.count(EventGraftFailed); f > 0 {
			t.Errorf("%d messages given up", f)
		}
	})
}

// Restart: a node restarted with the same Options.Seed and ID broadcasts,
// and every peer delivers it.
func TestIssue16ClusterRestart(t *testing.T) {
	needIssue16(t)
	synctest.Test(t, func(t *testing.T) {
		const n = 10
		cfg := DefaultConfig()
		const seed = 1666
		c := newCluster(t, n, cfg, mem.Config{Latency: time.Millisecond}, seed)
		r := c.nodes[3]
		first := c.broadcast(r) // the first ID of the first process
		c.broadcastMany(10, 50*time.Millisecond)
		time.Sleep(graftHorizon(cfg))
		synctest.Wait()
		c.requireAllDelivered(c.sent, c.nodes)

		c.crash(r)
		c.restart(3, seed+3+1) // newCluster's seed for node 3
		synctest.Wait()
		again := c.broadcast(r)
		// No peer can have it yet (1 ms links, no time has passed): what
		// they count now is what they delivered before, under this ID.
		before := map[string]int{}
		for _, p := range c.nodes {
			before[p.id] = p.count(again)
		}
		time.Sleep(graftHorizon(cfg))
		synctest.Wait()
		var miss []string
		for _, p := range c.nodes {
			if p != r && p.count(again) != before[p.id]+1 {
				miss = append(miss, p.id)
			}
		}
		t.Logf("first process's first ID %s, restarted process's first ID %s; not delivered at %d of %d peers", first, again, len(miss), n-1)
		if len(miss) > 0 {
			t.Errorf("the restarted node's broadcast (ID %s, the first process's first was %s) did not reach %d of %d peers: %v",
				again, first, len(miss), n-1, miss)
		}
	})
}

// restart starts node i again, under its ID and address, with the engine
// seed given; the others still list it as a member.
func (c *cluster) restart(i int, seed uint64) {
	c.t.Helper()
	node := c.nodes[i]
	var members []membership.Member[string]
	for _, o := range c.nodes {
		members = append(members, membership.Member[string]{ID: o.id, Addr: o.id})
	}
	tr, err := c.net.Listen(node.id)
	if err != nil {
		c.t.Fatal(err)
	}
	node.mu.Lock()
	node.delivered = map[MessageID]int{}
	node.hops = map[MessageID]uint32{}
	node.mu.Unlock()
	node.tr, node.mem, node.down = tr, static.New(members...), false
	node.pt, err = New(c.cfg, Options[string, []byte]{
		ID: node.id, Transport: tr, Membership: node.mem, Codec: codec.Bytes(),
		Observer: c.tally, Seed: seed,
		OnDeliver: func(d Delivery[string, []byte]) {
			node.mu.Lock()
			node.delivered[d.ID]++
			node.hops[d.ID] = d.Hops
			node.mu.Unlock()
		},
	})
	if err != nil {
		c.t.Fatal(err)
	}
}
