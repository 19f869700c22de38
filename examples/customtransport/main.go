//go:build unix

// Command customtransport runs a small cluster over a transport written from
// scratch, package unixsock (Unix domain sockets), and prints what every node
// delivers:
//
//	go run ./customtransport -nodes 4
//
// It is the path to follow to bring a transport of your own: implement
// transport.Datagram, transport.Stream or both (read the contract in package
// transport), check it with the conformance suite as
// unixsock/conformance_test.go does, then hand it to gossip.New as Options.Transport.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"sync"

	"github.com/plumtree-go/plumtree/codec"
	"github.com/plumtree-go/plumtree/examples/customtransport/unixsock"
	"github.com/plumtree-go/plumtree/gossip"
	"github.com/plumtree-go/plumtree/membership"
	"github.com/plumtree-go/plumtree/membership/static"
)

func main() {
	nodes := flag.Int("nodes", 4, "nodes in the cluster")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *nodes, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// run starts n nodes on Unix sockets in a fresh directory, broadcasts one
// message from each, and returns once every node has delivered every other
// node's message (or when ctx is done).
func run(ctx context.Context, n int, out io.Writer) error {
	if n < 2 {
		return fmt.Errorf("need at least 2 nodes, not %d", n)
	}
	// A short directory: a socket path is limited to about 100 bytes.
	dir, err := os.MkdirTemp("", "plum")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	var (
		mu      sync.Mutex
		pending = n * (n - 1) // deliveries still to come
		done    = make(chan struct{})
	)
	deliver := func(self string) func(gossip.Delivery[string, string]) {
		return func(d gossip.Delivery[string, string]) {
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintf(out, "%s delivered %q from %s, %d hop(s)\n", self, d.Value, d.Origin, d.Hops)
			if pending--; pending == 0 {
				close(done)
			}
		}
	}

	// Stopped in order: nodes, then memberships, then transports (a node
	// closes neither its membership nor its transport).
	var (
		transports []*unixsock.Transport
		members    []membership.Member[string]
		views      []*static.Static[string]
		nodes      []*gossip.Plumtree[string, string]
	)
	defer func() {
		for _, node := range nodes {
			node.Close()
		}
		for _, v := range views {
			v.Close()
		}
		for _, tr := range transports {
			tr.Close()
		}
	}()

	// The transports first: the membership maps node IDs to their addresses.
	for i := range n {
		tr, err := unixsock.Listen(filepath.Join(dir, fmt.Sprint(i)), unixsock.Config{})
		if err != nil {
			return err
		}
		transports = append(transports, tr)
		members = append(members, membership.Member[string]{ID: fmt.Sprintf("node-%d", i), Addr: tr.LocalAddr()})
	}
	for i, tr := range transports {
		id := members[i].ID
		view := static.New(members...)
		views = append(views, view)
		node, err := gossip.New(gossip.LANConfig(), gossip.Options[string, string]{
			ID:         id,
			Transport:  tr, // the custom transport goes in here, like any other
			Membership: view,
			Codec:      codec.String(),
			OnDeliver:  deliver(id),
		})
		if err != nil {
			return err
		}
		nodes = append(nodes, node)
	}

	for i, node := range nodes {
		if _, err := node.Broadcast(ctx, fmt.Sprintf("hello from node-%d", i)); err != nil {
			return err
		}
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
