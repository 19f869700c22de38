package gossip_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/plumtree-go/plumtree/codec"
	"github.com/plumtree-go/plumtree/gossip"
	"github.com/plumtree-go/plumtree/membership"
	"github.com/plumtree-go/plumtree/membership/static"
	"github.com/plumtree-go/plumtree/transport/mem"
)

// Three nodes on the in-memory network, with a static membership: each
// broadcasts one line and prints what the others delivered. On real networks
// the transport is transport/quic, transport/udptcp or transport/tcp, and
// the membership membership/memberlist.
func ExampleNew() {
	network := mem.NewNetwork(mem.Config{})
	names := []string{"a", "b", "c"}
	var members []membership.Member[string]
	for _, name := range names {
		members = append(members, membership.Member[string]{ID: name, Addr: name})
	}

	nodes := make(map[string]*gossip.Plumtree[string, string])
	for _, name := range names {
		tr, err := network.Listen(name) // the node's transport address
		if err != nil {
			panic(err)
		}
		defer tr.Close()
		view := static.New(members...)
		defer view.Close()
		node, err := gossip.New(gossip.LANConfig(), gossip.Options[string, string]{
			ID:         name,
			Transport:  tr,
			Membership: view,
			Codec:      codec.String(),
		})
		if err != nil {
			panic(err)
		}
		defer node.Close() // deferred last, so it runs first
		nodes[name] = node
	}

	ctx := context.Background()
	for _, name := range names {
		if _, err := nodes[name].Broadcast(ctx, "hello from "+name); err != nil {
			panic(err)
		}
	}

	// Each node delivers the other two broadcasts, once each, in whatever
	// order they arrive: collect and sort them.
	var lines []string
	for _, name := range names {
		for range len(names) - 1 {
			select {
			case d := <-nodes[name].Deliveries():
				lines = append(lines, fmt.Sprintf("%s delivered %q (origin %s)", name, d.Value, d.Origin))
			case <-time.After(10 * time.Second):
				lines = append(lines, name+" timed out")
			}
		}
	}
	slices.Sort(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	// Output:
	// a delivered "hello from b" (origin b)
	// a delivered "hello from c" (origin c)
	// b delivered "hello from a" (origin a)
	// b delivered "hello from c" (origin c)
	// c delivered "hello from a" (origin a)
	// c delivered "hello from b" (origin b)
}

// The Engine is the protocol without goroutines, clock or I/O: the caller
// passes the time in, carries the frames in Outbox to their peers, and calls
// Tick at NextDeadline. Here two engines are wired by hand; a simulator or a
// custom runner does the same for thousands.
func ExampleEngine() {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	engines := make(map[int]*gossip.Engine[int])
	for _, self := range []int{1, 2} {
		e, err := gossip.NewEngine(gossip.EngineOptions[int]{
			Self:   self,
			Config: gossip.DefaultConfig(),
			Seed:   uint64(self), // distinct per engine
			Deliver: func(d gossip.RawDelivery[int]) bool {
				fmt.Printf("node %d delivered %q from node %d, %d hop(s)\n", self, d.Payload.Data, d.Origin, d.Hops)
				return true // false would reject it: not forwarded
			},
		})
		if err != nil {
			panic(err)
		}
		e.SetMembers(now, []int{1, 2}) // the local node in the list is ignored
		engines[self] = e
	}

	// carry moves every frame waiting in the outboxes to its peer, until no
	// engine has anything left to send.
	carry := func() {
		for busy := true; busy; {
			busy = false
			for _, self := range []int{1, 2} {
				// Outbox is valid until the next call on that engine: copy.
				out := slices.Clone(engines[self].Outbox())
				for _, s := range out {
					busy = true
					fmt.Printf("node %d -> node %d: %v\n", self, s.To, s.Msg.Kind)
					engines[s.To].Receive(now, self, &s.Msg)
				}
			}
		}
	}
	carry() // greetings: a node tells the neighbours it picked (a graft with no message asks an eager pick to push to it)

	if _, err := engines[1].Broadcast(now, gossip.Payload{Data: []byte("hi")}, nil); err != nil {
		panic(err)
	}
	carry()

	// A runner would now sleep until the earliest NextDeadline and Tick.
	now = now.Add(time.Second)
	for _, self := range []int{1, 2} {
		engines[self].Tick(now)
	}
	carry()
	fmt.Println("eager peers of node 1:", engines[1].EagerPeers())
	// Output:
	// node 1 -> node 2: graft
	// node 2 -> node 1: graft
	// node 1 -> node 2: gossip
	// node 2 delivered "hi" from node 1, 1 hop(s)
	// eager peers of node 1: [2]
}

// A preset is a starting point: copy it, change fields, and Validate (New and
// NewEngine validate too, naming every field in error).
func ExampleConfig() {
	cfg := gossip.WANConfig()
	fmt.Println("eager fanout:", cfg.EagerFanout, "lazy fanout:", cfg.LazyFanout)
	fmt.Println("graft timeout:", cfg.GraftTimeout, "retries:", cfg.GraftMaxRetries)
	fmt.Println("cache:", cfg.MessageCacheMaxSize, "messages for", cfg.MessageCacheTTL)
	fmt.Printf("compression: %s level %d from %d bytes\n", cfg.Compression.Algorithm, cfg.Compression.Level, cfg.Compression.MinSize)

	cfg.EagerFanout = 10 // more than MaxEagerPeers allows
	cfg.GraftTimeout = 0
	err := cfg.Validate()
	var ce *gossip.ConfigError
	fmt.Println(errors.As(err, &ce), ce.Field)
	fmt.Println(err)
	// Output:
	// eager fanout: 3 lazy fanout: 8
	// graft timeout: 1s retries: 7
	// cache: 50000 messages for 2m0s
	// compression: zstd level 3 from 256 bytes
	// true MaxEagerPeers
	// gossip: Config.MaxEagerPeers (8) must be at least EagerFanout (10)
	// gossip: Config.GraftTimeout must be positive, is 0s
}
