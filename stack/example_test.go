package stack_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/plumtree-go/plumtree/gossip"
	"github.com/plumtree-go/plumtree/stack"
)

// Three nodes on loopback, over UDP and TCP, with memberlist: the program
// of the README. The node ID is the memberlist name, given once.
func Example() {
	defer time.AfterFunc(time.Minute, func() { log.Fatal("stuck for a minute") }).Stop() // a watchdog
	ctx, got := context.Background(), make(chan bool, 2)
	var last *stack.Stack
	var seeds []string
	for i := range 3 {
		s, err := stack.New(stack.Config{Name: fmt.Sprint("node-", i), Listen: "127.0.0.1:0", Join: seeds,
			OnDeliver: func(d gossip.Delivery[string, []byte]) {
				fmt.Printf("node-%d: %s from %s\n", i, d.Value, d.Origin)
				got <- true
			}})
		if err != nil {
			log.Fatal(err)
		}
		defer s.Close()
		last, seeds = s, []string{s.ClusterAddr()}
	}
	if err := last.WaitMembers(ctx, 3); err != nil {
		log.Fatal(err)
	}
	if _, err := last.Node.Broadcast(ctx, []byte("hello")); err != nil {
		log.Fatal(err)
	}
	<-got
	<-got
	// Unordered output:
	// node-0: hello from node-2
	// node-1: hello from node-2
}
