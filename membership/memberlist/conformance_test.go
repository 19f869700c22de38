package memberlist_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/plumtree-go/plumtree/conformance"
	plum "github.com/plumtree-go/plumtree/membership/memberlist"
)

// TestConformance runs the membership suite on real memberlist instances
// over loopback, with failure detection shortened to about a second
// (mlConfig).
func TestConformance(t *testing.T) {
	conformance.TestMembership(t, func(testing.TB) conformance.Cluster[string] {
		return &cluster{}
	})
}

// cluster starts nodes n1, n2, ... on 127.0.0.1 with ports picked by the
// kernel; each joins every node still running. The broadcast addresses are
// made-up strings: nothing listens there.
type cluster struct {
	mu      sync.Mutex
	started int
	running []*plum.Membership[string]
}

var _ conformance.MemberNode[string] = (*plum.Membership[string])(nil)

func (c *cluster) Start() (conformance.MemberNode[string], error) {
	c.mu.Lock()
	c.started++
	name := fmt.Sprintf("n%d", c.started)
	addr := fmt.Sprintf("127.0.0.1:%d", 20000+c.started)
	var join []string
	for _, m := range c.running {
		join = append(join, m.Memberlist().LocalNode().Address())
	}
	c.mu.Unlock()

	m, err := plum.New(plum.Config[string]{Memberlist: mlConfig(name), Addr: addr, Join: join})
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.running = append(c.running, m)
	c.mu.Unlock()
	return m, nil
}

// take removes n from the running nodes.
func (c *cluster) take(n conformance.MemberNode[string]) (*plum.Membership[string], error) {
	m, ok := n.(*plum.Membership[string])
	if !ok {
		return nil, fmt.Errorf("node %T is not from this cluster", n)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	i := slices.Index(c.running, m)
	if i < 0 {
		return nil, fmt.Errorf("node %v is not running", m.Self())
	}
	c.running = slices.Delete(c.running, i, i+1)
	return m, nil
}

func (c *cluster) Leave(n conformance.MemberNode[string]) error {
	m, err := c.take(n)
	if err != nil {
		return err
	}
	return m.Close()
}

func (c *cluster) Crash(n conformance.MemberNode[string]) error {
	m, err := c.take(n)
	if err != nil {
		return err
	}
	return m.Shutdown()
}

func (c *cluster) Close() error {
	c.mu.Lock()
	running := c.running
	c.running = nil
	c.mu.Unlock()
	for _, m := range running {
		m.Shutdown()
	}
	return nil
}
