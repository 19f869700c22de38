package static_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/plumtree-go/plumtree/conformance"
	"github.com/plumtree-go/plumtree/membership"
	"github.com/plumtree-go/plumtree/membership/static"
)

// TestConformance runs the membership suite on a cluster of Statics kept in
// step by the harness, as a caller that learns of members some other way
// would: each node has its own Static, and a change is applied to all of
// them.
func TestConformance(t *testing.T) {
	conformance.TestMembership(t, func(testing.TB) conformance.Cluster[string] {
		return &cluster{}
	})
}

type node struct {
	*static.Static[string]
	self membership.Member[string]
}

func (n *node) Self() membership.Member[string] { return n.self }

type cluster struct {
	mu      sync.Mutex
	started int
	running []*node
}

// Start adds the new node to every running node's Static, and every running
// node to the new one's, so that each reports a Join for the others.
func (c *cluster) Start() (conformance.MemberNode[string], error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.started++
	self := membership.Member[string]{ID: fmt.Sprintf("n%d", c.started), Addr: fmt.Sprintf("addr-%d", c.started)}
	n := &node{Static: static.New(self), self: self}
	for _, o := range c.running {
		n.Add(o.self)
		o.Add(self)
	}
	c.running = append(c.running, n)
	return n, nil
}

// stop removes n from the running nodes, reports its departure with report
// to the others, and closes it.
func (c *cluster) stop(mn conformance.MemberNode[string], report func(s *static.Static[string], id string)) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := mn.(*node)
	i := slices.Index(c.running, n)
	if !ok || i < 0 {
		return fmt.Errorf("node %v is not running in this cluster", mn.Self())
	}
	c.running = slices.Delete(c.running, i, i+1)
	for _, o := range c.running {
		report(o.Static, n.self.ID)
	}
	n.Close()
	return nil
}

func (c *cluster) Leave(n conformance.MemberNode[string]) error {
	return c.stop(n, (*static.Static[string]).Remove)
}

func (c *cluster) Crash(n conformance.MemberNode[string]) error {
	return c.stop(n, (*static.Static[string]).Fail)
}

func (c *cluster) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.running {
		n.Close()
	}
	c.running = nil
	return nil
}
