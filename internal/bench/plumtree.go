package bench

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/plumtree-go/plumtree/codec"
	"github.com/plumtree-go/plumtree/gossip"
	plummember "github.com/plumtree-go/plumtree/membership/memberlist"
	"github.com/plumtree-go/plumtree/transport"
	"github.com/plumtree-go/plumtree/transport/devcert"
	"github.com/plumtree-go/plumtree/transport/quic"
	"github.com/plumtree-go/plumtree/transport/tcp"
	"github.com/plumtree-go/plumtree/transport/udp"
	"github.com/plumtree-go/plumtree/transport/udptcp"
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

func (d plumtreeDriver) listen(ca *devcert.UnsafeCA, name string) (transport.Transport, error) {
	const addr = "127.0.0.1:0"
	switch d.tr {
	case "udp+tcp":
		return udptcp.Listen(addr, udp.Config{}, tcp.Config{})
	case "tcp":
		return tcp.Listen(addr, tcp.Config{})
	case "quic":
		tlsConf, err := ca.UnsafeMutualTLS(name, "127.0.0.1")
		if err != nil {
			return nil, err
		}
		return quic.Listen(addr, quic.Config{TLS: tlsConf})
	}
	return nil, fmt.Errorf("unknown transport %q", d.tr)
}

type plumtreeNode struct {
	tr transport.Transport
	ml *plummember.Membership[string]
	pt *gossip.Plumtree[string, []byte]
}

// Start starts the nodes one by one (node 0 is every other's memberlist
// seed), waits until every node's membership lists all n, then starts the
// gossip engines.
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
	var seeds []string
	for i := range cfg.Nodes {
		tr, err := d.listen(ca, name(i))
		if err != nil {
			return nil, fmt.Errorf("%s: listen: %w", name(i), err)
		}
		n := &plumtreeNode{tr: tr}
		c.nodes = append(c.nodes, n)
		if n.ml, err = joinLocalMemberlist(name(i), tr.LocalAddr(), seeds); err != nil {
			return nil, fmt.Errorf("%s: memberlist: %w", name(i), err)
		}
		if i == 0 {
			seeds = []string{n.ml.Memberlist().LocalNode().Address()}
		}
	}
	if err := c.converge(ctx); err != nil {
		return nil, err
	}
	gcfg := gossip.LANConfig()
	for i, n := range c.nodes {
		n.pt, err = gossip.New(gcfg, gossip.Options[string, []byte]{
			ID: name(i), Transport: n.tr, Membership: n.ml, Codec: codec.Bytes(),
			Seed:      uint64(cfg.Seed),
			Observer:  &c.payloads,
			OnDeliver: func(dl gossip.Delivery[string, []byte]) { deliver(i, dl.Value) },
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name(i), err)
		}
	}
	return c, nil
}

// joinLocalMemberlist starts a memberlist member on 127.0.0.1 (a port the
// system picks), advertising addr as the node's broadcast address, joining
// seeds. It takes memberlist's LAN configuration, as a deployment in one
// datacenter would: its local configuration's timeouts (a 1 s TCP timeout,
// 200 ms probes) fail joins and declare live nodes dead when 50 nodes share
// two busy cores.
func joinLocalMemberlist(name, addr string, seeds []string) (*plummember.Membership[string], error) {
	conf := memberlist.DefaultLANConfig()
	conf.Name = name
	conf.BindAddr = "127.0.0.1"
	conf.BindPort = 0
	conf.AdvertisePort = 0
	conf.LogOutput = io.Discard
	return plummember.New(plummember.Config[string]{
		Memberlist:   conf,
		Addr:         addr,
		Join:         seeds,
		LeaveTimeout: 2 * time.Second,
	})
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
			if len(n.ml.Members()) < len(c.nodes) {
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
				all = append(all, n.ml.Memberlist().LocalNode().Address())
			}
			for _, n := range short {
				_, _ = n.ml.Memberlist().Join(all) // what fails is retried next round
			}
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			// Say whose view is short, and whether memberlist's own list
			// agrees with the adapter's.
			var short []string
			for i, n := range c.nodes {
				if got := len(n.ml.Members()); got < len(c.nodes) {
					short = append(short, fmt.Sprintf("node %d lists %d (memberlist itself %d)", i, got, n.ml.Memberlist().NumMembers()))
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
	_, err := c.nodes[from].pt.Broadcast(ctx, payload)
	return err
}

// Wire sums the transports' counters.
func (c *plumtreeCluster) Wire() Wire {
	var w Wire
	for _, n := range c.nodes {
		if sr, ok := n.tr.(transport.StatsReporter); ok {
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
		for _, n := range c.nodes {
			if n.pt != nil {
				n.pt.Close()
			}
		}
		var wg sync.WaitGroup
		for _, n := range c.nodes {
			if n.ml != nil {
				wg.Go(func() { n.ml.Shutdown() })
			}
		}
		wg.Wait()
		for _, n := range c.nodes {
			n.tr.Close()
		}
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
