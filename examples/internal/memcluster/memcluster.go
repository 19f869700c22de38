// Package memcluster starts a cluster of gossip nodes in one process, on the
// in-memory network, for the examples and their tests.
package memcluster

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/plumtree-go/plumtree/codec"
	"github.com/plumtree-go/plumtree/gossip"
	"github.com/plumtree-go/plumtree/membership"
	"github.com/plumtree-go/plumtree/membership/static"
	"github.com/plumtree-go/plumtree/transport/mem"
)

// Options describe a cluster.
type Options struct {
	Nodes   int
	Config  gossip.Config
	Network mem.Config
	// Observer, if set, observes every node.
	Observer gossip.Observer
	// Tracer, if set, gives node i its tracer.
	Tracer func(i int) gossip.Tracer
	// OnDeliver, if set, is called for every delivery, with the index of
	// the node that delivered.
	OnDeliver func(node int, d gossip.Delivery[string, []byte])
	Seed      uint64
}

// Node is one node of a cluster.
type Node struct {
	ID         string
	Transport  *mem.Transport
	Membership *static.Static[string]
	Plumtree   *gossip.Plumtree[string, []byte]
}

// Cluster is a running cluster.
type Cluster struct {
	Net   *mem.Network
	Nodes []*Node
	once  sync.Once
}

// Start starts the cluster: every node knows every other.
func Start(o Options) (*Cluster, error) {
	if o.Nodes < 2 {
		return nil, errors.New("memcluster: need at least 2 nodes")
	}
	c := &Cluster{Net: mem.NewNetwork(o.Network)}
	var members []membership.Member[string]
	for i := range o.Nodes {
		id := fmt.Sprintf("node-%02d", i)
		tr, err := c.Net.Listen(id)
		if err != nil {
			c.Close()
			return nil, err
		}
		c.Nodes = append(c.Nodes, &Node{ID: id, Transport: tr})
		members = append(members, membership.Member[string]{ID: id, Addr: tr.LocalAddr()})
	}
	for i, n := range c.Nodes {
		n.Membership = static.New(members...)
		opts := gossip.Options[string, []byte]{
			ID:         n.ID,
			Transport:  n.Transport,
			Membership: n.Membership,
			Codec:      codec.Bytes(),
			Observer:   o.Observer,
			Seed:       o.Seed,
		}
		if o.Tracer != nil {
			opts.Tracer = o.Tracer(i)
		}
		if o.OnDeliver != nil {
			opts.OnDeliver = func(d gossip.Delivery[string, []byte]) { o.OnDeliver(i, d) }
		}
		pt, err := gossip.New(o.Config, opts)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("memcluster: node %s: %w", n.ID, err)
		}
		n.Plumtree = pt
	}
	return c, nil
}

// Broadcast broadcasts m from node i.
func (c *Cluster) Broadcast(ctx context.Context, i int, m []byte) (gossip.MessageID, error) {
	return c.Nodes[i].Plumtree.Broadcast(ctx, m)
}

// Close stops every node.
func (c *Cluster) Close() {
	c.once.Do(func() {
		for _, n := range c.Nodes {
			if n.Plumtree != nil {
				n.Plumtree.Close()
			}
			if n.Transport != nil {
				n.Transport.Close()
			}
			if n.Membership != nil {
				n.Membership.Close()
			}
		}
	})
}
