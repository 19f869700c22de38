package gossip

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/plumtree-go/plumtree/codec"
	"github.com/plumtree-go/plumtree/internal/watchdog"
	"github.com/plumtree-go/plumtree/membership"
	"github.com/plumtree-go/plumtree/membership/static"
	"github.com/plumtree-go/plumtree/transport/mem"
)

// Options.Validate: a message it rejects is neither delivered nor
// forwarded, and is recorded as seen, so that later announcements of it
// (the origin's periodic exchange lists it for a while) are not grafted
// and Validate does not see it again.
func TestValidateRejects(t *testing.T) {
	watchdog.Test(t, func(t *testing.T) {
		const n = 4
		net := mem.NewNetwork(mem.Config{Latency: time.Millisecond})
		var members []membership.Member[string]
		for i := range n {
			id := fmt.Sprint("v", i)
			members = append(members, membership.Member[string]{ID: id, Addr: id})
		}
		var mu sync.Mutex
		calls := map[string]map[string]int{} // node -> message -> Validate calls
		delivered := map[string][]string{}
		var nodes []*Plumtree[string, []byte]
		for i := range n {
			id := members[i].ID
			calls[id] = map[string]int{}
			tr, err := net.Listen(id)
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			ms := static.New(members...)
			defer ms.Close()
			node, err := New(DefaultConfig(), Options[string, []byte]{ID: id, Transport: tr, Membership: ms, Codec: codec.Bytes(), Seed: 5,
				Validate: func(from string, m []byte) error {
					mu.Lock()
					defer mu.Unlock()
					calls[id][string(m)]++
					if string(m) == "bad" {
						return fmt.Errorf("refused")
					}
					return nil
				},
				OnDeliver: func(d Delivery[string, []byte]) {
					mu.Lock()
					defer mu.Unlock()
					delivered[id] = append(delivered[id], string(d.Value))
				}})
			if err != nil {
				t.Fatal(err)
			}
			defer node.Close()
			nodes = append(nodes, node)
		}
		for _, m := range []string{"bad", "good"} {
			if _, err := nodes[0].Broadcast(context.Background(), []byte(m)); err != nil {
				t.Fatal(err)
			}
		}
		// Several exchanges (ExchangeInterval 2 s) list both messages.
		watchdog.Waiting(t, "20 s of virtual time for deliveries and exchanges")
		time.Sleep(20 * time.Second)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, node := range members[1:] {
			if got := delivered[node.ID]; len(got) != 1 || got[0] != "good" {
				t.Errorf("%s delivered %q, want only \"good\"", node.ID, got)
			}
			// The first node to get "bad" refuses it and does not forward
			// it: others may never see it, but none more than once.
			if c := calls[node.ID]["bad"]; c > 1 {
				t.Errorf("%s: Validate saw the rejected message %d times, want at most once (it is seen after the first)", node.ID, c)
			}
		}
	})
}
