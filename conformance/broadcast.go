package conformance

import (
	"bytes"
	"fmt"
	"sync"
	"testing"

	"github.com/plumtree-go/plumtree/codec"
	"github.com/plumtree-go/plumtree/gossip"
	"github.com/plumtree-go/plumtree/membership"
	"github.com/plumtree-go/plumtree/transport"
)

// broadcastRule is one rule of TestBroadcast: its name and sentence, and
// the function that checks it on a fresh cluster. testBroadcast runs the
// rules of broadcastRules, in order, so a rule cannot be listed and not
// run, or run and not listed.
type broadcastRule struct {
	Subtest
	check func(b *benv)
}

// benv is what a broadcast rule builds its cluster from.
type benv struct {
	c             *caseEnv
	mk            MakeNetwork
	newMembership func([]membership.Member[string]) BroadcastMembership
}

// broadcastRules is TestBroadcast's table: clusters of gossip nodes, then
// of package topic's hosts (broadcast_topics.go).
var broadcastRules = []broadcastRule{
	{Subtest{"every-node-once", "In a cluster of 10 nodes of this library over the transport, every broadcast from every node, small and large, is delivered to every other node exactly once, unchanged."}, ruleEveryNodeOnce},
	{Subtest{"node-leaves", "When one node of 10 closes and is reported failed, broadcasts from the others still reach every remaining node exactly once."}, ruleNodeLeaves},
	{Subtest{"topics-subscribers-only", "With 8 nodes of package topic over the transport and two topics of different message types (bytes on nodes 0-5, strings on nodes 3-7), every broadcast of a topic, small and large, is delivered exactly once, unchanged, to every other subscriber of that topic and to no other node; no host is sent a frame of a topic it does not subscribe to."}, ruleTopicsSubscribersOnly},
	{Subtest{"topics-unsubscribe", "After a node unsubscribes from a topic and the others have learnt it, broadcasts on the topic reach every remaining subscriber exactly once, the node delivers none of them, and its other topic still works."}, ruleTopicsUnsubscribe},
}

// broadcastSubtests is the names and sentences of broadcastRules.
var broadcastSubtests = func() []Subtest {
	st := make([]Subtest, len(broadcastRules))
	for i, r := range broadcastRules {
		st[i] = r.Subtest
	}
	return st
}()

// BroadcastSubtests lists the rules TestBroadcast checks, for Skip.
func BroadcastSubtests() []Subtest { return append([]Subtest(nil), broadcastSubtests...) }

// BroadcastMembership is what TestBroadcast needs of each node's
// membership: a fixed list of members, a way to report one failed, and
// Close. *static.Static[string] of package membership/static is one.
type BroadcastMembership interface {
	membership.Membership[string]
	// Fail reports the member with this ID failed.
	Fail(id string)
	// Close stops the membership's events.
	Close()
}

// TestBroadcast runs small clusters of gossip nodes (gossip.LANConfig)
// over transports from mk and checks delivery end to end. It proves that a
// transport works with the protocol, not only with TestTransport. Its
// topics-* rules run package topic's hosts over the transport: several
// topics on one transport per node, each delivered to its subscribers only.
//
// newMembership gives each node its membership, holding every member of
// the cluster; static.New[string] of package membership/static does:
//
//	conformance.TestBroadcast(t, newNetwork, static.New[string])
//
// The suite takes it from the caller so that it imports no adapter.
func TestBroadcast[M BroadcastMembership](t *testing.T, mk MakeNetwork, newMembership func(members ...membership.Member[string]) M, opts ...Option) {
	t.Helper()
	testBroadcast(stdT{t}, mk, func(members []membership.Member[string]) BroadcastMembership { return newMembership(members...) }, opts)
}

// bnode is one node of a broadcast cluster.
type bnode struct {
	id   string
	tr   transport.Transport
	mem  BroadcastMembership
	node *gossip.Plumtree[string, []byte]
}

// bcluster collects what its nodes deliver.
type bcluster struct {
	c     *caseEnv
	nodes []*bnode

	mu     sync.Mutex
	got    map[string]map[string]int // node → payload → times delivered
	bad    []string                  // deliveries of payloads never broadcast
	sent   map[string]string         // payload → origin
	change chan struct{}             // closed and replaced on every delivery
}

func testBroadcast(t tT, mk MakeNetwork, newMembership func([]membership.Member[string]) BroadcastMembership, opts []Option) {
	t.Helper()
	s := newSuite(t, "Broadcast", broadcastSubtests, opts)
	for _, r := range broadcastRules {
		s.run(t, r.Name, func(c *caseEnv) { r.check(&benv{c: c, mk: mk, newMembership: newMembership}) })
	}
}

// broadcastNodes is the size of the gossip clusters.
const broadcastNodes = 10

// start opens broadcastNodes transports and starts a gossip node on each.
func (b *benv) start() *bcluster {
	c, mk, newMembership := b.c, b.mk, b.newMembership
	c.t.Helper()
	listen := mk(c.t.std())
	if listen == nil {
		c.t.Fatalf("MakeNetwork returned a nil ListenFunc")
	}
	e := &tenv{caseEnv: c, listen: listen}
	bc := &bcluster{c: c, got: make(map[string]map[string]int), sent: make(map[string]string), change: make(chan struct{})}
	var members []membership.Member[string]
	for i := range broadcastNodes {
		tr := e.open("")
		id := fmt.Sprintf("node-%d", i)
		bc.nodes = append(bc.nodes, &bnode{id: id, tr: tr})
		members = append(members, membership.Member[string]{ID: id, Addr: tr.LocalAddr()})
		bc.got[id] = make(map[string]int)
	}
	seed := c.rng.Uint64()
	for _, bn := range bc.nodes {
		bn.mem = newMembership(members)
		c.defer_(bn.mem.Close)
		node, err := gossip.New(gossip.LANConfig(), gossip.Options[string, []byte]{
			ID:         bn.id,
			Transport:  bn.tr,
			Membership: bn.mem,
			Codec:      codec.Bytes(),
			Seed:       seed,
			OnDeliver:  bc.deliver(bn.id),
		})
		if err != nil {
			c.t.Fatalf("gossip.New over this transport: %v", err)
		}
		bn.node = node
		// Registered after the transport's close, so it runs first.
		c.defer_(func() { node.Close() })
	}
	return bc
}

func ruleEveryNodeOnce(b *benv) {
	bc := b.start()
	// First each node in turn, so that connections open and the tree
	// forms; then every node and size at once.
	for _, bn := range bc.nodes {
		bc.broadcast(bn, 0, 16)
		bc.waitAll(bc.nodes)
	}
	for round, size := range bc.sizes() {
		for _, bn := range bc.nodes {
			bc.broadcast(bn, round+1, size)
		}
	}
	bc.waitAll(bc.nodes)
}

func ruleNodeLeaves(b *benv) {
	c := b.c
	bc := b.start()
	for _, bn := range bc.nodes {
		bc.broadcast(bn, 0, 100)
	}
	bc.waitAll(bc.nodes)
	gone := bc.nodes[broadcastNodes-1]
	rest := bc.nodes[:broadcastNodes-1]
	if !c.within("closing a node", func() { gone.node.Close(); gone.tr.Close() }) {
		return
	}
	for _, bn := range rest {
		bn.mem.Fail(gone.id)
	}
	for round := 1; round <= 3; round++ {
		for _, bn := range rest {
			bc.broadcast(bn, round, 200)
		}
	}
	bc.waitAll(rest)
}

// sizes are the payload sizes each node broadcasts: small ones, and on a
// stream path ones past any datagram.
func (bc *bcluster) sizes() []int {
	sizes := []int{16, 300}
	tr := bc.nodes[0].tr
	if st, ok := tr.(transport.Stream); ok {
		sizes = append(sizes, 3000, min(64<<10, st.MaxFrameSize()-512))
	} else if dg, ok := tr.(transport.Datagram); ok {
		sizes = append(sizes, dg.MaxDatagramSize()-256)
	}
	return sizes
}

func (bc *bcluster) deliver(id string) func(gossip.Delivery[string, []byte]) {
	return func(d gossip.Delivery[string, []byte]) {
		bc.mu.Lock()
		defer bc.mu.Unlock()
		key := string(d.Value)
		if origin, ok := bc.sent[key]; !ok || origin != d.Origin {
			bc.bad = append(bc.bad, fmt.Sprintf("%s delivered %d bytes from origin %s that were never broadcast by it", id, len(d.Value), d.Origin))
		}
		bc.got[id][key]++
		close(bc.change)
		bc.change = make(chan struct{})
	}
}

func (bc *bcluster) broadcast(bn *bnode, round, size int) {
	c := bc.c
	c.t.Helper()
	p := c.payload(max(size, 16))
	copy(p, fmt.Sprintf("%s/%d/", bn.id, round))
	bc.mu.Lock()
	bc.sent[string(p)] = bn.id
	bc.mu.Unlock()
	if _, err := bn.node.Broadcast(c.ctx, bytes.Clone(p)); err != nil {
		c.t.Fatalf("Broadcast of %d bytes from %s: %v", len(p), bn.id, err)
	}
}

// waitAll waits until every node in nodes has delivered every payload
// broadcast by the others in nodes, then checks that nothing was delivered
// twice and nothing unknown was delivered.
func (bc *bcluster) waitAll(nodes []*bnode) {
	c := bc.c
	c.t.Helper()
	in := make(map[string]bool)
	for _, bn := range nodes {
		in[bn.id] = true
	}
	for {
		bc.mu.Lock()
		missing, example := 0, ""
		for _, bn := range nodes {
			for p, origin := range bc.sent {
				if origin != bn.id && in[origin] && bc.got[bn.id][p] == 0 {
					missing++
					example = fmt.Sprintf("%s has not delivered a %d-byte broadcast from %s", bn.id, len(p), origin)
				}
			}
		}
		change := bc.change
		bc.mu.Unlock()
		if missing == 0 {
			break
		}
		select {
		case <-change:
		case <-c.ctx.Done():
			c.t.Fatalf("watchdog: %d deliveries missing; for instance %s", missing, example)
		}
	}
	bc.mu.Lock()
	defer bc.mu.Unlock()
	for _, b := range bc.bad {
		c.t.Errorf("%s", b)
	}
	for _, bn := range nodes {
		for p, k := range bc.got[bn.id] {
			if k > 1 {
				c.t.Errorf("%s delivered a %d-byte broadcast from %s %d times", bn.id, len(p), bc.sent[p], k)
			}
		}
	}
}
