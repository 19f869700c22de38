package topic_test

import (
	"context"
	"fmt"
	"time"

	"github.com/plumtree-go/plumtree/codec"
	"github.com/plumtree-go/plumtree/gossip"
	"github.com/plumtree-go/plumtree/membership"
	"github.com/plumtree-go/plumtree/membership/static"
	"github.com/plumtree-go/plumtree/topic"
	"github.com/plumtree-go/plumtree/transport/mem"
)

// Two nodes, one host each, and a topic both subscribe to.
func Example() {
	net := mem.NewNetwork(mem.Config{})
	members := []membership.Member[string]{{ID: "a", Addr: "a"}, {ID: "b", Addr: "b"}}
	var hosts []*topic.Host[string]
	var prices []*topic.Topic[string, string]
	for _, m := range members {
		tr, _ := net.Listen(m.Addr)
		defer tr.Close()
		ms := static.New(members...)
		defer ms.Close()
		h, err := topic.NewHost(topic.HostOptions[string]{ID: m.ID, Transport: tr, Membership: ms})
		if err != nil {
			panic(err)
		}
		defer h.Close() // closes its topics
		p, err := topic.Subscribe(h, "prices", gossip.LANConfig(), topic.Options[string, string]{Codec: codec.String()})
		if err != nil {
			panic(err)
		}
		hosts, prices = append(hosts, h), append(prices, p)
	}
	for start := time.Now(); len(hosts[0].Subscribers("prices")) == 0; { // the announcement is on its way
		if time.Since(start) > 10*time.Second {
			panic("a never learnt that b subscribes to prices")
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := prices[0].Broadcast(context.Background(), "widget 4.25"); err != nil {
		panic(err)
	}
	var d gossip.Delivery[string, string]
	select {
	case d = <-prices[1].Deliveries():
	case <-time.After(10 * time.Second):
		panic("b did not deliver the broadcast")
	}
	fmt.Printf("b got %q from %s on %s\n", d.Value, d.Origin, prices[1].Name())
	// Output: b got "widget 4.25" from a on prices
}
