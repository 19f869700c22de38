package memberlist_test

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/plumtree-go/plumtree/codec"
	"github.com/plumtree-go/plumtree/gossip"
	"github.com/plumtree-go/plumtree/membership"
	plum "github.com/plumtree-go/plumtree/membership/memberlist"
	"github.com/plumtree-go/plumtree/transport"
	"github.com/plumtree-go/plumtree/transport/tcp"
	"github.com/plumtree-go/plumtree/transport/udp"
	"github.com/plumtree-go/plumtree/transport/udptcp"
)

// TestCluster runs ten gossip nodes on memberlist and the UDP+TCP transport,
// all on 127.0.0.1 with ports the kernel picks:
//
//   - the cluster forms from one seed: every node joins node 0's memberlist
//     address and nothing else, and every node's membership comes to list
//     all ten;
//   - broadcasts from every node, one after another and then all at once,
//     reach every other node exactly once;
//   - a node killed without leaving (memberlist shut down without Leave, its
//     gossip node and transport closed) is reported failed by every other
//     node, and later broadcasts reach every survivor;
//   - that node restarted under the same name on new ports, with its peers
//     file and no seed, rejoins the cluster and receives new broadcasts (and
//     its own reach everyone).
//
// Nothing waits for a fixed time: each step waits for its condition, with a
// watchdog that only breaks a hang. Failure detection (memberlist's probe and
// suspicion timeouts, clusterMLConfig) is most of the run time.
func TestCluster(t *testing.T) {
	const size = 10
	c := newTestbed(t)
	began := time.Now()
	phase := func(what string) { t.Logf("%6.2fs %s", time.Since(began).Seconds(), what) }
	dir := t.TempDir()
	peersFile := func(i int) string { return filepath.Join(dir, fmt.Sprintf("n%d.peers.json", i)) }

	nodes := make([]*cnode, size)
	nodes[0] = c.start("n0", nil, peersFile(0))
	seed := nodes[0].m.Memberlist().LocalNode().Address()
	for i := 1; i < size; i++ {
		nodes[i] = c.start(fmt.Sprintf("n%d", i), []string{seed}, peersFile(i))
	}
	c.waitFormed(nodes)
	phase("formed")

	// One after another from every node, then all at once.
	for _, n := range nodes {
		c.broadcastAndWait(n, nodes, "in turn from "+n.name)
	}
	c.burst(nodes, "at once")
	phase("broadcasts delivered")

	// Kill one node without leaving.
	const victim = 5
	dead := nodes[victim]
	c.kill(dead)
	survivors := slices.Delete(slices.Clone(nodes), victim, victim+1)
	for _, n := range survivors {
		c.waitFor(n.name+" reports "+dead.name+" failed", func() bool {
			return n.sawEvent(membership.Fail, dead.name, dead.addr)
		})
	}
	phase("crash detected")
	for _, n := range survivors[:3] {
		c.broadcastAndWait(n, survivors, "after the crash from "+n.name)
	}
	phase("broadcasts after the crash delivered")

	// Restart it from its peers file alone: without the file it would start
	// a cluster of its own and waitFormed would never return. memberlist may
	// report the new incarnation failed once more just after its join, when
	// a stale dead message about the old one reaches a node after the new
	// alive one (seen: Join, Fail, Join within 200ms at some nodes); that is
	// memberlist's view, and broadcasts must reach every node regardless.
	if _, err := os.Stat(peersFile(victim)); err != nil {
		t.Fatalf("no peers file after the crash: %v", err)
	}
	back := c.start(dead.name, nil, peersFile(victim))
	nodes[victim] = back
	c.waitFormed(nodes)
	phase("rejoined")
	c.broadcastAndWait(back, nodes, "from the restarted node")
	c.broadcastAndWait(nodes[0], nodes, "after the restart from n0")
	c.broadcastAndWait(nodes[size-1], nodes, "after the restart from n9")
	phase("broadcasts after the restart delivered")

	// No node delivered any message twice, late duplicates of early
	// messages included. (The restarted node may also have recovered some
	// messages sent before it came back, through the periodic exchange:
	// once each, too.)
	for _, n := range append(slices.Clone(nodes), dead) {
		n.mu.Lock()
		for msg, k := range n.got {
			if k != 1 {
				t.Errorf("%s (%s) delivered %q %d times", n.name, n.addr, msg, k)
			}
		}
		n.mu.Unlock()
	}
	for _, n := range nodes {
		if d := n.m.Dropped(); d != 0 {
			t.Errorf("%s: membership dropped %d events", n.name, d)
		}
	}
}

// clusterMLConfig is mlConfig made lighter and more patient for ten nodes
// under -race on a loaded machine. With mlConfig's 50ms gossip, 1s push/pull
// and shorter suspicion, ten memberlists spend enough CPU to starve one
// another when other work shares two cores: a node that cannot answer
// probes in time is declared failed and comes back, dozens of times per
// node in a run (seen with two busy loops beside the test), which
// reliability survives but which makes a run take minutes. A crash is still
// detected in two to three seconds.
func clusterMLConfig(name string) *memberlist.Config {
	c := mlConfig(name)
	c.GossipInterval = 100 * time.Millisecond
	c.PushPullInterval = 3 * time.Second
	c.SuspicionMult = 5
	return c
}

// testbed is a set of nodes and the signal they share: kick is poked, never
// blocking, whenever a delivery or a membership event is recorded, and a
// waiter re-checks its condition then.
type testbed struct {
	t    *testing.T
	kick chan struct{}
}

func newTestbed(t *testing.T) *testbed {
	return &testbed{t: t, kick: make(chan struct{}, 1)}
}

func (c *testbed) poke() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// cnode is one node: transport, membership, gossip node, and what it
// delivered and what its membership reported.
type cnode struct {
	name string
	addr string // the broadcast transport's address
	tr   *transport.Joined
	m    *plum.Membership[string]
	tee  *tee
	pt   *gossip.Plumtree[string, []byte]

	mu     sync.Mutex
	got    map[string]int // payload: times delivered
	events []event        // from the membership
	killed bool
}

func (n *cnode) delivered(msg string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.got[msg]
}

func (n *cnode) sawEvent(kind membership.EventKind, id, addr string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Contains(n.events, event{Kind: kind, Member: member{ID: id, Addr: addr}})
}

// start starts a node: its transport on a free port, then its membership
// advertising that address (joining join and the peers in file), then a
// gossip node over both.
func (c *testbed) start(name string, join []string, file string) *cnode {
	t := c.t
	t.Helper()
	tr, err := udptcp.Listen("127.0.0.1:0", udp.Config{}, tcp.Config{})
	if err != nil {
		t.Fatalf("%s: listen: %v", name, err)
	}
	n := &cnode{name: name, addr: tr.LocalAddr(), tr: tr, got: map[string]int{}}
	m, err := plum.New(plum.Config[string]{
		Memberlist: clusterMLConfig(name),
		Addr:       n.addr,
		Join:       join,
		PeersFile:  file,
	})
	if err != nil {
		tr.Close()
		t.Fatalf("%s: membership: %v", name, err)
	}
	n.m = m
	n.tee = startTee(m, func(ev event) {
		n.mu.Lock()
		n.events = append(n.events, ev)
		n.mu.Unlock()
		c.poke()
	})
	pt, err := gossip.New(gossip.LANConfig(), gossip.Options[string, []byte]{
		ID:         name,
		Transport:  tr,
		Membership: n.tee,
		Codec:      codec.Bytes(),
		OnDeliver: func(d gossip.Delivery[string, []byte]) {
			n.mu.Lock()
			n.got[string(d.Value)]++
			n.mu.Unlock()
			c.poke()
		},
	})
	if err != nil {
		m.Shutdown()
		n.tee.wait()
		tr.Close()
		t.Fatalf("%s: gossip: %v", name, err)
	}
	n.pt = pt
	t.Cleanup(func() { c.kill(n) })
	return n
}

// kill stops a node without leaving: the gossip node, then memberlist
// without Leave, then the transport. Idempotent.
func (c *testbed) kill(n *cnode) {
	n.mu.Lock()
	done := n.killed
	n.killed = true
	n.mu.Unlock()
	if done {
		return
	}
	n.pt.Close()
	if err := n.m.Shutdown(); err != nil {
		c.t.Errorf("%s: shutdown: %v", n.name, err)
	}
	n.tee.wait()
	n.tr.Close()
}

// waitFor returns when cond holds. It re-checks cond when anything is
// recorded, and every 20ms for conditions on state that pokes no one (the
// gossip nodes' own view of the members).
func (c *testbed) waitFor(what string, cond func() bool) {
	c.t.Helper()
	timeout := time.NewTimer(watchdog)
	defer timeout.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-c.kick:
		case <-tick.C:
		case <-timeout.C:
			c.t.Fatalf("watchdog: %s not reached within %v", what, watchdog)
		}
	}
}

// waitFormed waits until every node's membership lists exactly nodes, at
// their current broadcast addresses, and every gossip node counts all the
// others as members.
func (c *testbed) waitFormed(nodes []*cnode) {
	c.t.Helper()
	want := make([]member, len(nodes))
	for i, n := range nodes {
		want[i] = member{ID: n.name, Addr: n.addr}
	}
	slices.SortFunc(want, func(a, b member) int { return cmp.Compare(a.ID, b.ID) })
	for _, n := range nodes {
		c.waitFor(n.name+"'s membership listing all nodes", func() bool {
			got := n.m.Members()
			slices.SortFunc(got, func(a, b member) int { return cmp.Compare(a.ID, b.ID) })
			return slices.Equal(got, want)
		})
		c.waitFor(n.name+"'s gossip node knowing all members", func() bool {
			s, err := n.pt.Stats()
			if err != nil {
				c.t.Fatalf("%s: stats: %v", n.name, err)
			}
			return s.Members == len(nodes)-1
		})
	}
}

// broadcastAndWait broadcasts msg from n and waits until every other node of
// to has delivered it.
func (c *testbed) broadcastAndWait(n *cnode, to []*cnode, msg string) {
	c.t.Helper()
	c.send(n, msg)
	c.waitDelivered(n, to, msg)
}

func (c *testbed) send(n *cnode, msg string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), watchdog)
	defer cancel()
	if _, err := n.pt.Broadcast(ctx, []byte(msg)); err != nil {
		c.t.Fatalf("%s: broadcast %q: %v", n.name, msg, err)
	}
}

func (c *testbed) waitDelivered(from *cnode, to []*cnode, msg string) {
	c.t.Helper()
	for _, o := range to {
		if o != from {
			c.waitFor(fmt.Sprintf("%q delivered at %s", msg, o.name), func() bool { return o.delivered(msg) > 0 })
		}
	}
}

// burst broadcasts one message from every node at once and waits until
// each has reached every other node.
func (c *testbed) burst(nodes []*cnode, prefix string) {
	c.t.Helper()
	msgs := make([]string, len(nodes))
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		msgs[i] = prefix + " from " + n.name
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), watchdog)
			defer cancel()
			_, errs[i] = n.pt.Broadcast(ctx, []byte(msgs[i]))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			c.t.Fatalf("%s: broadcast: %v", nodes[i].name, err)
		}
	}
	for i, n := range nodes {
		c.waitDelivered(n, nodes, msgs[i])
	}
}

// tee is the membership the gossip node reads: the adapter's, with each
// event passed to record before it is forwarded. Its channel has the
// adapter's capacity and, like the adapter's, never blocks its sender (the
// gossip node reconciles with Members if it falls behind).
type tee struct {
	m    *plum.Membership[string]
	out  chan event
	done chan struct{}
}

func startTee(m *plum.Membership[string], record func(event)) *tee {
	t := &tee{m: m, out: make(chan event, plum.DefaultEventBuffer), done: make(chan struct{})}
	go func() {
		defer close(t.done)
		defer close(t.out)
		for ev := range m.Events() {
			record(ev)
			select {
			case t.out <- ev:
			default:
			}
		}
	}()
	return t
}

var _ membership.Membership[string] = (*tee)(nil)

func (t *tee) Members() []member    { return t.m.Members() }
func (t *tee) Events() <-chan event { return t.out }

// wait returns when the adapter's events channel has closed.
func (t *tee) wait() { <-t.done }
