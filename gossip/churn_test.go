package gossip_test

// The core's behaviour on churn (issue 6), through the public API: members
// that join become eager or lazy neighbours within the caps; members that
// fail leave the eager and lazy sets at once and a graft waiting on one of
// them moves to another announcer at once; a member that comes back is a
// neighbour again. Each cluster runs on transport/mem with one
// membership/static per node, inside a synctest bubble.

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/plumtree-go/plumtree/codec"
	"github.com/plumtree-go/plumtree/gossip"
	"github.com/plumtree-go/plumtree/gossip/internal/wire"
	"github.com/plumtree-go/plumtree/internal/watchdog"
	"github.com/plumtree-go/plumtree/membership"
	"github.com/plumtree-go/plumtree/membership/static"
	"github.com/plumtree-go/plumtree/transport/mem"
)

// sent is one frame a node handed to its transport.
type sent struct {
	to  string
	typ wire.Type
	at  time.Time
}

// filterTransport is a mem.Transport that can lose the Gossip frames
// (payloads) sent to one address, and that records the Grafts sent through it on
// a channel when asked to.
type filterTransport struct {
	*mem.Transport
	deaf   *atomic.Value // string: the address whose payloads are lost, "" for none
	record chan<- sent   // nil: record nothing
}

func (f *filterTransport) lose(addr string, b []byte) bool {
	// Grafts for a message, not the greetings (a graft with no message)
	// a node sends the eager neighbours it picks.
	var fr wire.Frame
	if f.record != nil && len(b) > 1 && wire.Type(b[1]) == wire.TypeGraft &&
		wire.Decode(b, &fr, wire.DefaultLimits) == nil && fr.ID != ([16]byte{}) {
		select {
		case f.record <- sent{to: addr, typ: wire.Type(b[1]), at: time.Now()}:
		default:
		}
	}
	return len(b) > 1 && wire.Type(b[1]) == wire.TypeGossip && f.deaf.Load().(string) == addr
}

func (f *filterTransport) SendDatagram(ctx context.Context, addr string, b []byte) error {
	if f.lose(addr, b) {
		return nil // lost on the way
	}
	return f.Transport.SendDatagram(ctx, addr, b)
}

func (f *filterTransport) SendFrame(ctx context.Context, addr string, b []byte) error {
	if f.lose(addr, b) {
		return nil
	}
	return f.Transport.SendFrame(ctx, addr, b)
}

type churnNode struct {
	id  string
	tr  *filterTransport
	mem *static.Static[string]
	pt  *gossip.Plumtree[string, []byte]
	up  bool

	mu        sync.Mutex
	delivered map[gossip.MessageID]time.Time
}

type churnCluster struct {
	t     *testing.T
	cfg   gossip.Config
	net   *mem.Network
	deaf  *atomic.Value
	nodes []*churnNode
	seed  uint64
}

func newChurnCluster(t *testing.T, cfg gossip.Config, seed uint64) *churnCluster {
	deaf := new(atomic.Value)
	deaf.Store("")
	c := &churnCluster{t: t, cfg: cfg, net: mem.NewNetwork(mem.Config{Latency: time.Millisecond, Seed: seed}), deaf: deaf, seed: seed}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			c.crash(n)
		}
	})
	return c
}

func (c *churnCluster) member(n *churnNode) membership.Member[string] {
	return membership.Member[string]{ID: n.id, Addr: n.id}
}

// start starts node id (new, or one that crashed) knowing the members
// given, and tells every running node's membership that it joined.
func (c *churnCluster) start(id string, record chan<- sent) *churnNode {
	c.t.Helper()
	var n *churnNode
	for _, o := range c.nodes {
		if o.id == id {
			n = o
		}
	}
	if n == nil {
		n = &churnNode{id: id}
		c.nodes = append(c.nodes, n)
	}
	n.delivered = map[gossip.MessageID]time.Time{}
	tr, err := c.net.Listen(id)
	if err != nil {
		c.t.Fatal(err)
	}
	n.tr = &filterTransport{Transport: tr, deaf: c.deaf, record: record}
	members := []membership.Member[string]{c.member(n)}
	for _, o := range c.up() {
		members = append(members, c.member(o))
	}
	n.mem = static.New(members...)
	n.pt, err = gossip.New(c.cfg, gossip.Options[string, []byte]{
		ID: id, Transport: n.tr, Membership: n.mem, Codec: codec.Bytes(), Seed: c.seed + uint64(len(c.nodes)),
		OnDeliver: func(d gossip.Delivery[string, []byte]) {
			n.mu.Lock()
			n.delivered[d.ID] = time.Now()
			n.mu.Unlock()
		},
	})
	if err != nil {
		c.t.Fatal(err)
	}
	for _, o := range c.up() {
		o.mem.Add(c.member(n))
	}
	n.up = true
	return n
}

func (c *churnCluster) up() []*churnNode {
	var out []*churnNode
	for _, n := range c.nodes {
		if n.up {
			out = append(out, n)
		}
	}
	return out
}

// crash stops n without telling anyone.
func (c *churnCluster) crash(n *churnNode) {
	if !n.up {
		return
	}
	n.up = false
	n.pt.Close()
	n.tr.Close()
	n.mem.Close()
}

// fail crashes n and has every running node's membership report it failed.
func (c *churnCluster) fail(n *churnNode) {
	c.crash(n)
	for _, o := range c.up() {
		o.mem.Fail(n.id)
	}
}

func (c *churnCluster) broadcast(from *churnNode, i int) gossip.MessageID {
	c.t.Helper()
	id, err := from.pt.Broadcast(context.Background(), []byte(fmt.Sprintf("message %d", i)))
	if err != nil {
		c.t.Fatalf("broadcast from %s: %v", from.id, err)
	}
	return id
}

// requireDelivered fails unless every running node but the origin delivered
// id.
func (c *churnCluster) requireDelivered(when string, id gossip.MessageID, origin *churnNode) {
	c.t.Helper()
	var miss []string
	for _, n := range c.up() {
		n.mu.Lock()
		_, ok := n.delivered[id]
		n.mu.Unlock()
		if !ok && n != origin {
			miss = append(miss, n.id)
		}
	}
	if len(miss) > 0 {
		c.t.Fatalf("%s: message %s from %s not delivered by %v", when, id, origin.id, miss)
	}
}

// checkSets checks every running node's neighbour sets against the
// membership and the caps: eager and lazy are disjoint, hold only running
// members other than the node, stay within MaxEagerPeers, MaxLazyPeers and
// MaxPeers, and hold at least min(EagerFanout+LazyFanout, running-1)
// neighbours. It returns, per node, its neighbours.
func (c *churnCluster) checkSets(when string) map[string][]string {
	c.t.Helper()
	up := c.up()
	running := map[string]bool{}
	for _, n := range up {
		running[n.id] = true
	}
	want := min(c.cfg.EagerFanout+c.cfg.LazyFanout, len(up)-1)
	out := map[string][]string{}
	for _, n := range up {
		eager, lazy, err := n.pt.Peers()
		if err != nil {
			c.t.Fatal(err)
		}
		for _, id := range slices.Concat(eager, lazy) {
			if !running[id] || id == n.id {
				c.t.Errorf("%s: node %s has %s as a neighbour (eager %v, lazy %v), which is not a running member", when, n.id, id, eager, lazy)
			}
			if slices.Contains(eager, id) && slices.Contains(lazy, id) {
				c.t.Errorf("%s: node %s has %s both eager and lazy", when, n.id, id)
			}
		}
		if len(eager) > c.cfg.MaxEagerPeers || len(lazy) > c.cfg.MaxLazyPeers || len(eager)+len(lazy) > c.cfg.MaxPeers {
			c.t.Errorf("%s: node %s has %d eager and %d lazy neighbours, past the caps %d, %d, %d",
				when, n.id, len(eager), len(lazy), c.cfg.MaxEagerPeers, c.cfg.MaxLazyPeers, c.cfg.MaxPeers)
		}
		if len(eager)+len(lazy) < want {
			c.t.Errorf("%s: node %s has %d neighbours (eager %v, lazy %v), want at least %d", when, n.id, len(eager)+len(lazy), eager, lazy, want)
		}
		out[n.id] = slices.Concat(eager, lazy)
	}
	if c.t.Failed() {
		c.t.FailNow()
	}
	return out
}

// settle lets every message and graft in flight finish.
func settle(cfg gossip.Config) {
	time.Sleep(cfg.IHaveInterval + cfg.GraftTimeout*time.Duration(cfg.GraftMaxRetries+2))
	synctest.Wait()
}

// TestChurn: nodes join, fail and come back while broadcasts go on.
func TestChurn(t *testing.T) {
	roomy := gossip.DefaultConfig() // EagerFanout+LazyFanout (9) covers every member of 8
	capped := gossip.DefaultConfig()
	capped.EagerFanout, capped.LazyFanout = 2, 2
	// MaxPeers leaves room for inbound links (see TestChurnNewcomerNotPicked).
	capped.MaxEagerPeers, capped.MaxLazyPeers, capped.MaxPeers = 3, 6, 8
	for _, tc := range []struct {
		name     string
		cfg      gossip.Config
		first, n int // nodes at the start, nodes after the joins
		// every member is every node's neighbour
		allNeighbours bool
	}{
		{"every member a neighbour", roomy, 5, 8, true},
		{"caps bind", capped, 8, 14, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			watchdog.Test(t, func(t *testing.T) {
				c := newChurnCluster(t, tc.cfg, 6)
				msg := 0
				// join starts a node. When the caps bind, the others'
				// sets are full before a newcomer arrives; it is reached
				// through its greetings (TestChurnNewcomerNotPicked).
				join := func(id string) *churnNode {
					n := c.start(id, nil)
					synctest.Wait()
					return n
				}
				for i := range tc.first {
					join(fmt.Sprintf("n%02d", i))
				}
				settle(tc.cfg)
				c.checkSets("at the start")
				// broadcastAll has every running node broadcast once, then
				// five more broadcasts go out, and checks that they all
				// reached every running node.
				broadcastAll := func(when string) {
					t.Helper()
					var ids []gossip.MessageID
					var origins []*churnNode
					up := c.up()
					for i := range len(up) + 5 {
						origin := up[i%len(up)]
						ids = append(ids, c.broadcast(origin, msg))
						origins = append(origins, origin)
						msg++
						time.Sleep(20 * time.Millisecond)
					}
					settle(tc.cfg)
					for i, id := range ids {
						c.requireDelivered(when, id, origins[i])
					}
					c.checkSets(when)
				}
				broadcastAll("after the first broadcasts")

				// Joins: the newcomers are added to every membership.
				var joined []*churnNode
				for i := tc.first; i < tc.n; i++ {
					joined = append(joined, join(fmt.Sprintf("n%02d", i)))
				}
				sets := c.checkSets("right after the joins")
				if tc.allNeighbours {
					for _, n := range c.up() {
						for _, j := range joined {
							if n != j && !slices.Contains(sets[n.id], j.id) {
								t.Errorf("node %s has not made newcomer %s a neighbour: %v", n.id, j.id, sets[n.id])
							}
						}
					}
				}
				broadcastAll("after the joins")

				// Failures: gone from every set at once, spares fill in.
				up := c.up()
				failed := []*churnNode{up[1], up[len(up)/2], up[len(up)-1]}
				for _, f := range failed {
					c.fail(f)
				}
				synctest.Wait() // no time passes
				sets = c.checkSets("right after the failures")
				for id, nb := range sets {
					for _, f := range failed {
						if slices.Contains(nb, f.id) {
							t.Errorf("node %s still has failed %s as a neighbour", id, f.id)
						}
					}
				}
				broadcastAll("after the failures")

				// The failed nodes come back.
				for _, f := range failed {
					join(f.id)
				}
				sets = c.checkSets("right after the rejoins")
				if tc.allNeighbours {
					for _, n := range c.up() {
						for _, f := range failed {
							if n != f && !slices.Contains(sets[n.id], f.id) {
								t.Errorf("node %s has not made %s, back, a neighbour again: %v", n.id, f.id, sets[n.id])
							}
						}
					}
				}
				broadcastAll("after the rejoins")
			})
		})
	}
}

// TestChurnGraftMovesOnFail: a node that learned of a message only from
// announcements grafts one announcer; when the membership reports that
// announcer failed, the node grafts the next announcer at once, without
// waiting for the graft timeout, and gets the message from it.
func TestChurnGraftMovesOnFail(t *testing.T) {
	watchdog.Test(t, func(t *testing.T) {
		cfg := gossip.DefaultConfig()
		cfg.EagerFanout, cfg.LazyFanout = 1, 5 // many announcers
		c := newChurnCluster(t, cfg, 11)
		var origin *churnNode
		for i := range 5 {
			n := c.start(fmt.Sprintf("n%d", i), nil)
			if i == 0 {
				origin = n
			}
		}
		record := make(chan sent, 1024)
		target := c.start("t", record)
		synctest.Wait()

		// Every payload to the target is lost: it hears of the message
		// only through announcements, and grafts one announcer.
		c.deaf.Store(target.id)
		start := time.Now()
		id := c.broadcast(origin, 0)
		first := nextGraft(t, record)
		t.Logf("first graft to %s after %v", first.to, first.at.Sub(start))
		time.Sleep(5 * time.Millisecond) // its answer is lost too
		synctest.Wait()

		// The grafted announcer fails, and payloads flow again.
		c.deaf.Store("")
		failedAt := time.Now()
		target.mem.Fail(first.to)
		second := nextGraft(t, record)
		if second.to == first.to {
			t.Fatalf("the graft went again to %s, which failed", first.to)
		}
		if !second.at.Equal(failedAt) {
			t.Fatalf("the graft moved to %s %v after the failure, want at once", second.to, second.at.Sub(failedAt))
		}
		time.Sleep(10 * time.Millisecond)
		target.mu.Lock()
		got, ok := target.delivered[id]
		target.mu.Unlock()
		if !ok {
			t.Fatalf("the message was not delivered after the graft to %s", second.to)
		}
		if deadline := first.at.Add(cfg.GraftTimeout); !got.Before(deadline) {
			t.Fatalf("delivered at %v after the first graft, not before its timeout %v", got.Sub(first.at), cfg.GraftTimeout)
		}
		eager, lazy, err := target.pt.Peers()
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(eager, first.to) || slices.Contains(lazy, first.to) {
			t.Errorf("the failed announcer %s is still a neighbour: eager %v, lazy %v", first.to, eager, lazy)
		}
	})
}

// nextGraft returns the next Graft the recording node sent. Inside the
// bubble, waiting on the channel lets (virtual) time run until it comes.
func nextGraft(t *testing.T, record <-chan sent) sent {
	t.Helper()
	select {
	case s := <-record:
		return s
	case <-time.After(time.Minute):
		t.Fatal("no graft within a minute")
		return sent{}
	}
}

// TestChurnNewcomerNotPicked: a node that joins after the others' sets are
// full is picked by none of them, and nodes send only to their own
// neighbours. It must still receive what is broadcast: its greeting (to
// each neighbour it picks, repeated at each exchange until the neighbour
// answers, since the first may come before the neighbour knows it) makes the
// links two-way, and a neighbour that takes it on tells it the recent
// messages it missed.
func TestChurnNewcomerNotPicked(t *testing.T) {
	watchdog.Test(t, func(t *testing.T) {
		cfg := gossip.DefaultConfig() // EagerFanout+LazyFanout = 9
		c := newChurnCluster(t, cfg, 7)
		for i := range 12 {
			c.start(fmt.Sprintf("n%02d", i), nil) // n10 and n11 come after the others filled up
		}
		synctest.Wait()
		origin := c.nodes[0]
		id := c.broadcast(origin, 0)
		settle(cfg)
		time.Sleep(2 * cfg.ExchangeInterval)
		synctest.Wait()
		c.requireDelivered("a newcomer nobody picked", id, origin)
	})
}
