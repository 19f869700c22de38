package gossip

import (
	"fmt"
	"testing"
	"time"

	"github.com/plumtree-go/plumtree/codec"
	"github.com/plumtree-go/plumtree/internal/watchdog"
	"github.com/plumtree-go/plumtree/membership"
	"github.com/plumtree-go/plumtree/membership/static"
	"github.com/plumtree-go/plumtree/transport/mem"
)

// 100 nodes start at once with the tuning guide's large-cluster caps
// (EagerFanout 4, MaxEagerPeers 5). Before the first broadcast the nodes
// average at least 4 eager neighbours and at most 2 of them have fewer
// than 2, so the first broadcasts prune a graph with short paths rather
// than a near-tree. Each node's own picks fill its eager set but one, so
// most greetings are refused: a refused pick used to be dropped for good,
// and on seeds 1 to 4, 6 to 16 of the 100 nodes were left with fewer than
// 2 eager neighbours (1 to 5 with none), 3.6 to 3.8 on average; with the
// refused picks replaced (Engine.repick), 0 to 2, and 4.6 on average.
func TestClusterTightEagerCapDegrees(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		watchdog.Test(t, func(t *testing.T) {
			const n = 100
			cfg := LargeClusterConfig()
			cfg.Compression = Compression{}
			cfg.MaxEagerPeers = 5
			net := mem.NewNetwork(mem.Config{Seed: seed, Latency: time.Millisecond})
			var members []membership.Member[string]
			for i := range n {
				id := fmt.Sprintf("n%02d", i)
				members = append(members, membership.Member[string]{ID: id, Addr: id})
			}
			nodes := make([]*Plumtree[string, []byte], n)
			for i := range n {
				tr, err := net.Listen(members[i].ID)
				if err != nil {
					t.Fatal(err)
				}
				defer tr.Close()
				ms := static.New(members...)
				defer ms.Close()
				nodes[i], err = New(cfg, Options[string, []byte]{ID: members[i].ID, Transport: tr, Membership: ms,
					Codec: codec.Bytes(), Seed: seed*1000 + uint64(i), OnDeliver: func(Delivery[string, []byte]) {}})
				if err != nil {
					t.Fatal(err)
				}
				defer nodes[i].Close()
			}
			time.Sleep(3 * time.Second) // greetings, refusals and replacements, at 1 ms a hop
			degrees := map[int]int{}
			sum, few := 0, 0
			for i := range n {
				eager, _, err := nodes[i].Peers()
				if err != nil {
					t.Fatal(err)
				}
				degrees[len(eager)]++
				sum += len(eager)
				if len(eager) < 2 {
					few++
				}
			}
			t.Logf("seed %d: nodes by eager neighbours: %v", seed, degrees)
			if few > 2 || sum < 4*n {
				t.Errorf("seed %d: before the first broadcast %d nodes with fewer than 2 eager neighbours and %.2f on average (all: %v); want at most 2 and at least 4",
					seed, few, float64(sum)/n, degrees)
			}
		})
	}
}
