package chaos_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/plumtree-go/plumtree/codec"
	"github.com/plumtree-go/plumtree/gossip"
	"github.com/plumtree-go/plumtree/membership"
	"github.com/plumtree-go/plumtree/membership/static"
	"github.com/plumtree-go/plumtree/transport"
	"github.com/plumtree-go/plumtree/transport/chaos"
	"github.com/plumtree-go/plumtree/transport/mem"
)

// graftHorizon is the longest a node can take to recover a message it was
// told of: the announcement's batching, then every graft and its wait.
func graftHorizon(cfg gossip.Config) time.Duration {
	d := cfg.IHaveInterval + cfg.GraftTimeout
	for k := range cfg.GraftMaxRetries + 1 {
		d += min(cfg.GraftTimeout<<k, cfg.GraftMaxBackoff)
	}
	return d
}

// The engine over chaos: ten nodes on transport/mem, each wrapped by one
// chaos.Network that loses 10% of the datagrams on every link. Broadcasts
// before, during and after a partition into two halves all reach every node
// exactly once: during the cut each half delivers only its own; after Heal
// the exchange carries them across.
func TestClusterUnderChaos(t *testing.T) {
	synctest.Test(t, func(t *testing.T) { clusterUnderChaos(t, 2026) })
}

// clusterUnderChaos runs the scenario of TestClusterUnderChaos with the
// chaos seed given. Call it inside a synctest bubble.
func clusterUnderChaos(t *testing.T, seed uint64) {
	const n = 10
	cfg := gossip.DefaultConfig()
	mn := mem.NewNetwork(mem.Config{Latency: time.Millisecond, Seed: 1})
	cn, err := chaos.New(chaos.Config{Seed: seed, Rules: []chaos.Rule{{Path: transport.PathDatagram, Drop: 0.10}}})
	if err != nil {
		t.Fatal(err)
	}

	var members []membership.Member[string]
	for i := range n {
		id := fmt.Sprintf("n%02d", i)
		members = append(members, membership.Member[string]{ID: id, Addr: id})
	}
	var mu sync.Mutex
	delivered := make(map[string]map[gossip.MessageID]int) // node → message → times
	nodes := make([]*gossip.Plumtree[string, []byte], n)
	for i, m := range members {
		inner, err := mn.Listen(m.Addr)
		if err != nil {
			t.Fatal(err)
		}
		tr, err := cn.Wrap(inner)
		if err != nil {
			t.Fatal(err)
		}
		ms := static.New(members...)
		delivered[m.ID] = make(map[gossip.MessageID]int)
		pt, err := gossip.New(cfg, gossip.Options[string, []byte]{
			ID: m.ID, Transport: tr, Membership: ms, Codec: codec.Bytes(), Seed: uint64(i) + 1,
			OnDeliver: func(d gossip.Delivery[string, []byte]) {
				mu.Lock()
				delivered[m.ID][d.ID]++
				mu.Unlock()
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		nodes[i] = pt
		t.Cleanup(func() {
			pt.Close()
			tr.Close()
			ms.Close()
		})
	}

	origin := make(map[gossip.MessageID]int)
	broadcast := func(i, k int) gossip.MessageID {
		id, err := nodes[i].Broadcast(context.Background(), []byte(fmt.Sprintf("message %d from %s", k, members[i].ID)))
		if err != nil {
			t.Fatalf("broadcast from %s: %v", members[i].ID, err)
		}
		origin[id] = i
		return id
	}
	// missing lists the nodes other than the origin that have not
	// delivered id; a node that delivered it twice fails the test.
	missing := func(id gossip.MessageID) []int {
		mu.Lock()
		defer mu.Unlock()
		var miss []int
		for i, m := range members {
			k := delivered[m.ID][id]
			switch {
			case i == origin[id] && k != 0:
				t.Fatalf("origin %s delivered its own message %d times", m.ID, k)
			case i == origin[id]:
			case k == 0:
				miss = append(miss, i)
			case k > 1:
				t.Fatalf("%s delivered message %s %d times", m.ID, id, k)
			}
		}
		return miss
	}

	var all []gossip.MessageID
	for k := range 30 {
		all = append(all, broadcast(k%n, k))
		time.Sleep(50 * time.Millisecond)
	}

	left, right := members[:n/2], members[n/2:]
	var leftAddrs, rightAddrs []string
	for _, m := range left {
		leftAddrs = append(leftAddrs, m.Addr)
	}
	for _, m := range right {
		rightAddrs = append(rightAddrs, m.Addr)
	}
	cn.Partition(leftAddrs, rightAddrs)
	var during []gossip.MessageID
	for k := range 20 {
		during = append(during, broadcast((k*3)%n, 100+k))
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(graftHorizon(cfg))
	for _, id := range during {
		miss := missing(id)
		sameSide := origin[id] < n/2
		for _, i := range miss {
			if (i < n/2) == sameSide {
				t.Fatalf("during the partition, message %s from %s did not reach %s on its own side", id, members[origin[id]].ID, members[i].ID)
			}
		}
		if len(miss) != n/2 {
			t.Fatalf("during the partition, message %s reached %d nodes of the other side", id, n/2-len(miss))
		}
	}

	cn.Heal()
	healedAt := time.Now()
	for k := range 20 {
		all = append(all, broadcast((k*7)%n, 200+k))
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(cfg.MessageCacheTTL / 2)
	synctest.Wait()
	all = append(all, during...)
	for _, id := range all {
		if miss := missing(id); len(miss) > 0 {
			t.Fatalf("message %s from %s not delivered by %d nodes after the heal: %v", id, members[origin[id]].ID, len(miss), miss)
		}
	}
	s := cn.Stats()
	t.Logf("%d broadcasts delivered everywhere, checked %v after the heal; faults %+v; network %+v", len(all), time.Since(healedAt), s, mn.Stats())
	if s.Dropped == 0 || s.Partitioned == 0 {
		t.Fatalf("no datagram dropped or no frame partitioned (%+v): the test proves nothing", s)
	}
}
