package conformance_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/plumtree-go/plumtree/conformance"
	"github.com/plumtree-go/plumtree/membership"
	"github.com/plumtree-go/plumtree/membership/static"
)

// staticCluster runs each node as a static.Static of its own and tells
// every node of every change, as a coordinator would.
type staticCluster struct {
	mu    sync.Mutex
	next  int
	nodes map[string]*staticNode
}

type staticNode struct {
	*static.Static[string]
	self membership.Member[string]
}

func (n *staticNode) Self() membership.Member[string] { return n.self }

func (c *staticCluster) Start() (conformance.MemberNode[string], error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.next++
	self := membership.Member[string]{ID: fmt.Sprintf("n%d", c.next), Addr: fmt.Sprintf("10.0.0.%d:7946", c.next)}
	all := []membership.Member[string]{self}
	for _, o := range c.nodes {
		all = append(all, o.self)
		o.Add(self)
	}
	n := &staticNode{Static: static.New(all...), self: self}
	c.nodes[self.ID] = n
	return n, nil
}

func (c *staticCluster) stop(n conformance.MemberNode[string], drop func(o *staticNode, id string)) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	sn, ok := c.nodes[n.Self().ID]
	if !ok {
		return errors.New("not running")
	}
	delete(c.nodes, sn.self.ID)
	sn.Close()
	for _, o := range c.nodes {
		drop(o, sn.self.ID)
	}
	return nil
}

func (c *staticCluster) Leave(n conformance.MemberNode[string]) error {
	return c.stop(n, func(o *staticNode, id string) { o.Remove(id) })
}

func (c *staticCluster) Crash(n conformance.MemberNode[string]) error {
	return c.stop(n, func(o *staticNode, id string) { o.Fail(id) })
}

func (c *staticCluster) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, n := range c.nodes {
		n.Close()
		delete(c.nodes, id)
	}
	return nil
}

func newStaticCluster(t testing.TB) conformance.Cluster[string] {
	return &staticCluster{nodes: make(map[string]*staticNode)}
}

func TestMembershipStatic(t *testing.T) {
	conformance.TestMembership(t, newStaticCluster)
}
