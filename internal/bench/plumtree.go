package bench

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/plumtree-go/plumtree/gossip"
	"github.com/plumtree-go/plumtree/stack"
	"github.com/plumtree-go/plumtree/transport"
	"github.com/plumtree-go/plumtree/transport/devcert"
)

// PlumtreeTransports are the transports Plumtree drivers run on.
var PlumtreeTransports = []string{"udp+tcp", "tcp", "quic"}

// Plumtree returns the driver "plumtree/<transport>" for transport
// "udp+tcp", "tcp" or "quic": this library's gossip engine with
// gossip.LANConfig on loopback sockets, membership over hashicorp/memberlist
// (membership/memberlist, memberlist.DefaultLocalConfig) as a real
// deployment would have it, and for quic mutual TLS with certificates of a
// throwaway CA (transport/devcert). Wire counts the transports'
// transport.Stats: BytesSent, and DatagramsSent plus FramesSent; memberlist's
// own traffic is not in it (it is in the loopback count of a network
// namespace).
func Plumtree(transportName string) Driver { return plumtreeDriver{tr: transportName} }

type plumtreeDriver struct{ tr string }

func (d plumtreeDriver) Name() string { return "plumtree/" + d.tr }

type plumtreeNode struct {
	s *stack.Stack
}

// Start starts the nodes one by one (node 0 is every other's memberlist
// seed) with package stack, and waits until every node's membership lists
// all n. memberlist runs with its LAN timeouts, as a deployment in one
// datacenter would: its local configuration's (a 1 s TCP timeout, 200 ms
// probes) fail joins and declare live nodes dead when 50 nodes share two
// busy cores.
func (d plumtreeDriver) Start(ctx context.Context, cfg StartConfig, deliver func(node int, payload []byte)) (_ Cluster, err error) {
	c := &plumtreeCluster{}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	var ca *devcert.UnsafeCA
	if d.tr == "quic" {
		if ca, err = devcert.NewUnsafeCA(); err != nil {
			return nil, err
		}
	}
	name := func(i int) string { return fmt.Sprintf("node-%02d", i) }
	gcfg := gossip.LANConfig()
	var seeds []string
	for i := range cfg.Nodes {
		var tlsConf *tls.Config
		if ca != nil {
			if tlsConf, err = ca.UnsafeMutualTLS(name(i), "127.0.0.1"); err != nil {
				return nil, err
			}
		}
		s, err := stack.New(stack.Config{
			Name: name(i), Listen: "127.0.0.1:0", ClusterListen: "127.0.0.1:0", Join: seeds,
			Transport: d.tr, Gossip: &gcfg, TLS: tlsConf, Seed: uint64(cfg.Seed),
			OnDeliver:  func(dl gossip.Delivery[string, []byte]) { deliver(i, dl.Value) },
			Observer:   &c.payloads,
			Memberlist: lanTimeouts,
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name(i), err)
		}
		c.nodes = append(c.nodes, &plumtreeNode{s: s})
		if i == 0 {
			seeds = []string{s.ClusterAddr()}
		}
	}
	if err := c.converge(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// lanTimeouts gives memberlist the timings of its LAN configuration.
func lanTimeouts(c *memberlist.Config) {
	lan := memberlist.DefaultLANConfig()
	c.TCPTimeout, c.ProbeInterval, c.ProbeTimeout = lan.TCPTimeout, lan.ProbeInterval, lan.ProbeTimeout
	c.SuspicionMult, c.GossipInterval, c.PushPullInterval = lan.SuspicionMult, lan.GossipInterval, lan.PushPullInterval
	c.IndirectChecks, c.RetransmitMult, c.GossipNodes = lan.IndirectChecks, lan.RetransmitMult, lan.GossipNodes
	c.GossipToTheDeadTime = lan.GossipToTheDeadTime
}

type plumtreeCluster struct {
	payloads  payloadCount
	nodes     []*plumtreeNode
	closeOnce sync.Once
}

// converge waits until every membership lists every node. A node whose
// view is still short after rejoinAfter joins every other node again (a
// push-pull exchange with each): with 50 nodes started at once on a busy
// machine, memberlist sometimes leaves one node without one member for
// longer than the benchmark should wait (seen: node 30 of 50 listing 49,
// memberlist's own list too, for a minute).
func (c *plumtreeCluster) converge(ctx context.Context) error {
	const rejoinAfter = 10 * time.Second
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	nextRejoin := time.Now().Add(rejoinAfter)
	for {
		var short []*plumtreeNode
		for _, n := range c.nodes {
			if len(n.s.Membership.Members()) < len(c.nodes) {
				short = append(short, n)
			}
		}
		if len(short) == 0 {
			return nil
		}
		if time.Now().After(nextRejoin) {
			nextRejoin = time.Now().Add(rejoinAfter)
			var all []string
			for _, n := range c.nodes {
				all = append(all, n.s.Membership.Memberlist().LocalNode().Address())
			}
			for _, n := range short {
				_, _ = n.s.Membership.Memberlist().Join(all) // what fails is retried next round
			}
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			// Say whose view is short, and whether memberlist's own list
			// agrees with the adapter's.
			var short []string
			for i, n := range c.nodes {
				if got := len(n.s.Membership.Members()); got < len(c.nodes) {
					short = append(short, fmt.Sprintf("node %d lists %d (memberlist itself %d)", i, got, n.s.Membership.Memberlist().NumMembers()))
				}
			}
			if len(short) > 5 {
				short = append(short[:5], fmt.Sprintf("%d more", len(short)-5))
			}
			return fmt.Errorf("memberlist did not converge: of %d members, %s: %w", len(c.nodes), strings.Join(short, ", "), ctx.Err())
		}
	}
}

// Publish broadcasts payload from node from.
func (c *plumtreeCluster) Publish(ctx context.Context, from int, payload []byte) error {
	if from < 0 || from >= len(c.nodes) {
		return fmt.Errorf("plumtree: no node %d", from)
	}
	_, err := c.nodes[from].s.Node.Broadcast(ctx, payload)
	return err
}

// Wire sums the transports' counters.
func (c *plumtreeCluster) Wire() Wire {
	var w Wire
	for _, n := range c.nodes {
		if sr, ok := n.s.Transport.(transport.StatsReporter); ok {
			s := sr.Stats()
			w.Bytes += s.BytesSent
			w.Packets += s.DatagramsSent + s.FramesSent
		}
	}
	return w
}

// Close stops the engines, shuts memberlist down without a goodbye (every
// node stops at once, so there is nobody to tell) and closes the
// transports.
func (c *plumtreeCluster) Close() error {
	c.closeOnce.Do(func() {
		var wg sync.WaitGroup
		for _, n := range c.nodes {
			wg.Go(func() { n.s.Shutdown() })
		}
		wg.Wait()
	})
	return nil
}

// payloadCount counts payloads and grafts over every node (a gossip.Observer).
type payloadCount struct{ delivered, duplicates, grafts atomic.Uint64 }

func (p *payloadCount) Observe(e gossip.Event) {
	switch e.Kind {
	case gossip.EventDelivered:
		p.delivered.Add(1)
	case gossip.EventDuplicate:
		p.duplicates.Add(1)
	case gossip.EventGraftSent:
		p.grafts.Add(1)
	}
}

// Payloads implements PayloadCounter.
func (c *plumtreeCluster) Payloads() (deliveries, duplicates, grafts uint64) {
	return c.payloads.delivered.Load(), c.payloads.duplicates.Load(), c.payloads.grafts.Load()
}
