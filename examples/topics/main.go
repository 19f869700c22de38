// Command topics runs two topics with different message types, orders
// (a struct, as JSON) and prices (strings), on one in-memory network and
// one membership per node, and prints what every node delivers:
//
//	go run ./topics
//
// Nodes n0, n1 and n2 subscribe to orders; every node subscribes to
// prices. n3 carries nothing of orders: its host refuses a frame of a
// topic it does not subscribe to. Swap transport/mem for udp, tcp or quic
// and membership/static for memberlist to run it across machines; the
// topic code stays the same.
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"sort"
	"sync"
	"time"

	"github.com/plumtree-go/plumtree/codec"
	"github.com/plumtree-go/plumtree/gossip"
	"github.com/plumtree-go/plumtree/membership"
	"github.com/plumtree-go/plumtree/membership/static"
	"github.com/plumtree-go/plumtree/topic"
	"github.com/plumtree-go/plumtree/transport/mem"
)

// Order is the orders topic's message.
type Order struct {
	ID    int    `json:"id"`
	Item  string `json:"item"`
	Count int    `json:"count"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// node is one member: a host and its subscriptions.
type node struct {
	id     string
	host   *topic.Host[string]
	orders *topic.Topic[string, Order] // nil: not subscribed
	prices *topic.Topic[string, string]
}

// run starts four nodes, waits until the subscribers of each topic know
// each other, broadcasts on both topics and returns once every subscriber
// has delivered every message of its topics (or when ctx is done).
func run(ctx context.Context, out io.Writer) error {
	const n = 4
	net := mem.NewNetwork(mem.Config{Latency: time.Millisecond})
	var members []membership.Member[string]
	for i := range n {
		id := fmt.Sprintf("n%d", i)
		members = append(members, membership.Member[string]{ID: id, Addr: id})
	}

	var (
		mu      sync.Mutex
		lines   []string
		pending = 2*2 + 4*3 // orders: 2 broadcasts × 2 other subscribers; prices: 4 × 3
		done    = make(chan struct{})
	)
	got := func(line string) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, line)
		if pending--; pending == 0 {
			close(done)
		}
	}

	var nodes []*node
	defer func() { // topics and hosts first, then what they ran on
		for _, nd := range nodes {
			nd.host.Close() // closes its topics too
		}
	}()
	for i := range n {
		id := members[i].ID
		tr, err := net.Listen(id)
		if err != nil {
			return err
		}
		defer tr.Close()
		ms := static.New(members...)
		defer ms.Close()
		h, err := topic.NewHost(topic.HostOptions[string]{ID: id, Transport: tr, Membership: ms})
		if err != nil {
			return err
		}
		nd := &node{id: id, host: h}
		nodes = append(nodes, nd)
		if i < 3 {
			nd.orders, err = topic.Subscribe(h, "orders", gossip.LANConfig(), topic.Options[string, Order]{
				Codec: codec.JSON[Order](),
				OnDeliver: func(d gossip.Delivery[string, Order]) {
					got(fmt.Sprintf("%s orders: %+v from %s", id, d.Value, d.Origin))
				},
			})
			if err != nil {
				return err
			}
		}
		nd.prices, err = topic.Subscribe(h, "prices", gossip.DefaultConfig(), topic.Options[string, string]{
			Codec: codec.String(),
			OnDeliver: func(d gossip.Delivery[string, string]) {
				got(fmt.Sprintf("%s prices: %q from %s", id, d.Value, d.Origin))
			},
		})
		if err != nil {
			return err
		}
	}

	// Subscriptions travel to the other members in a few milliseconds;
	// wait for them so that every subscriber is in each topic's tree.
	for _, nd := range nodes {
		for name, want := range map[string]int{"orders": 3, "prices": 4} {
			self := 0
			if name == "prices" || nd.orders != nil {
				self = 1
			}
			for len(nd.host.Subscribers(name)) < want-self {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(10 * time.Millisecond):
				}
			}
		}
	}

	for i, nd := range nodes[:2] {
		if _, err := nd.orders.Broadcast(ctx, Order{ID: i + 1, Item: "widget", Count: 10 * (i + 1)}); err != nil {
			return err
		}
	}
	for i, nd := range nodes {
		if _, err := nd.prices.Broadcast(ctx, fmt.Sprintf("widget %d.%02d", 4+i, 25*i)); err != nil {
			return err
		}
	}
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	mu.Lock()
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Fprintln(out, l)
	}
	mu.Unlock()
	s := nodes[3].host.Stats()
	fmt.Fprintf(out, "n3 subscribes to %d topic(s) and refused %d frame(s) of others\n", s.Topics, s.RefusedUnknownTopic)
	return nil
}
