// Command plumtree runs the library: `plumtree demo` starts a cluster in this
// process and broadcasts through it, then reports what the paper measures.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/plumtree-go/plumtree/codec"
	"github.com/plumtree-go/plumtree/gossip"
	"github.com/plumtree-go/plumtree/membership"
	"github.com/plumtree-go/plumtree/membership/static"
	"github.com/plumtree-go/plumtree/transport/mem"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] != "demo" {
		fmt.Fprintln(os.Stderr, "usage: plumtree demo [flags]   (run 'plumtree demo -h' for the flags)")
		os.Exit(2)
	}
	if err := demo(os.Args[2:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "plumtree:", err)
		os.Exit(1)
	}
}

type demoNode struct {
	id  string
	pt  *gossip.Plumtree[string, []byte]
	tr  *mem.Transport
	mem *static.Static[string]
}

// counters gathers what the cluster did with each broadcast.
type counters struct {
	mu       sync.Mutex
	payloads map[gossip.MessageID]int
	firsts   map[gossip.MessageID]int
	hops     map[gossip.MessageID]uint32
	lat      []time.Duration
	grafts   int
	prunes   int
	wire     int
}

func (c *counters) Observe(e gossip.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch e.Kind {
	case gossip.EventDelivered:
		c.payloads[e.Message]++
		c.firsts[e.Message]++
		c.hops[e.Message] = max(c.hops[e.Message], e.Hops)
		c.lat = append(c.lat, e.Latency)
	case gossip.EventDuplicate:
		c.payloads[e.Message]++
	case gossip.EventGraftSent:
		c.grafts++
	case gossip.EventPruneSent:
		c.prunes++
	case gossip.EventSent:
		c.wire += e.Bytes
	}
}

func demo(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	n := fs.Int("nodes", 20, "cluster size")
	count := fs.Int("count", 200, "broadcasts")
	size := fs.Int("size", 256, "payload bytes")
	rate := fs.Float64("rate", 50, "broadcasts per second")
	loss := fs.Float64("loss", 0, "datagram loss rate of the in-memory network")
	seed := fs.Uint64("seed", 1, "random seed")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n < 2 || *count < 1 || *size < 1 || *rate <= 0 {
		return fmt.Errorf("need -nodes >= 2, -count >= 1, -size >= 1, -rate > 0")
	}
	fmt.Fprintf(w, "plumtree demo: %d nodes in this process on the in-memory network (1ms links, %.0f%% datagram loss), %d broadcasts of %d bytes at %.0f/s\n",
		*n, *loss*100, *count, *size, *rate)
	net := mem.NewNetwork(mem.Config{Seed: *seed, Latency: time.Millisecond, DropRate: *loss})
	var members []membership.Member[string]
	for i := range *n {
		id := fmt.Sprintf("node-%02d", i)
		members = append(members, membership.Member[string]{ID: id, Addr: id})
	}
	obs := &counters{payloads: map[gossip.MessageID]int{}, firsts: map[gossip.MessageID]int{}, hops: map[gossip.MessageID]uint32{}}
	cfg := gossip.LANConfig()
	var nodes []*demoNode
	for i, m := range members {
		tr, err := net.Listen(m.Addr)
		if err != nil {
			return err
		}
		ms := static.New(members...)
		pt, err := gossip.New(cfg, gossip.Options[string, []byte]{
			ID: m.ID, Transport: tr, Membership: ms, Codec: codec.Bytes(), Observer: obs,
			Seed: *seed + uint64(i), OnDeliver: func(gossip.Delivery[string, []byte]) {},
		})
		if err != nil {
			return err
		}
		nodes = append(nodes, &demoNode{id: m.ID, pt: pt, tr: tr, mem: ms})
	}
	defer func() {
		for _, d := range nodes {
			d.pt.Close()
			d.tr.Close()
			d.mem.Close()
		}
	}()

	rng := rand.New(rand.NewPCG(*seed, 2))
	payload := make([]byte, *size)
	gap := time.Duration(float64(time.Second) / *rate)
	start := time.Now()
	var sent []gossip.MessageID
	for i := range *count {
		copy(payload, fmt.Sprintf("message %d", i))
		id, err := nodes[rng.IntN(len(nodes))].pt.Broadcast(context.Background(), payload)
		if err != nil {
			return err
		}
		sent = append(sent, id)
		if (i+1)%max(*count/10, 1) == 0 {
			fmt.Fprintf(w, "  %d/%d broadcast\n", i+1, *count)
		}
		time.Sleep(time.Until(start.Add(time.Duration(i+1) * gap)))
	}
	// Let recoveries finish: at most a graft horizon.
	deadline := time.Now().Add(cfg.IHaveInterval + cfg.GraftTimeout*time.Duration(2+cfg.GraftMaxRetries))
	for time.Now().Before(deadline) {
		obs.mu.Lock()
		done := 0
		for _, id := range sent {
			if obs.firsts[id] >= *n-1 {
				done++
			}
		}
		obs.mu.Unlock()
		if done == len(sent) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	elapsed := time.Since(start)

	obs.mu.Lock()
	defer obs.mu.Unlock()
	delivered, received := 0, 0
	var ldh uint32
	for _, id := range sent {
		received += obs.payloads[id]
		ldh = max(ldh, obs.hops[id])
	}
	delivered = len(obs.lat)
	slices.Sort(obs.lat)
	pct := func(p float64) time.Duration {
		if len(obs.lat) == 0 {
			return 0
		}
		return obs.lat[min(len(obs.lat)-1, int(p*float64(len(obs.lat))))]
	}
	ideal := len(sent) * (*n - 1)
	fmt.Fprintf(w, "\nreliability       %.4f  (%d of %d deliveries)\n", float64(delivered)/float64(ideal), delivered, ideal)
	fmt.Fprintf(w, "RMR               %.4f  (payloads received / deliveries - 1; 0 is a perfect tree)\n", float64(received)/float64(max(delivered, 1))-1)
	fmt.Fprintf(w, "last delivery hop %d\n", ldh)
	fmt.Fprintf(w, "latency           p50 %v  p99 %v  max %v\n", pct(0.50), pct(0.99), pct(1))
	fmt.Fprintf(w, "wire bytes        %d  (%.2f per ideal payload byte)\n", obs.wire, float64(obs.wire)/float64(ideal**size))
	fmt.Fprintf(w, "grafts %d, prunes %d, %.0f broadcasts/s over %v\n", obs.grafts, obs.prunes, float64(len(sent))/elapsed.Seconds(), elapsed.Round(time.Millisecond))
	if delivered != ideal {
		return fmt.Errorf("%d deliveries missing", ideal-delivered)
	}
	return nil
}
