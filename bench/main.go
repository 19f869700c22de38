// Command bench runs the broadcast benchmark of internal/bench over every
// system in one invocation, so that their numbers share a machine and a
// moment: the builtin drivers (floor, plumtree/*) and the reference systems
// that need dependencies the library does not carry, gossipsub
// (github.com/libp2p/go-libp2p-pubsub over go-libp2p TCP) and memberlist's
// TransmitLimitedQueue (github.com/hashicorp/memberlist). They live in this
// separate module so that the library's go.mod stays lean.
//
// Usage, from this directory:
//
//	go run . -nodes 20 -size 1024 -rate 100 -count 1000
//	go run . -systems gossipsub,memberlist -nodes 5
//
// The flags are those of `plumtree bench`; -h lists them. Interrupt
// (SIGINT, SIGTERM) stops the run and closes the systems.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/plumtree-go/plumtree/internal/bench"
	"github.com/plumtree-go/plumtree/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := bench.Main(ctx, os.Args[1:], os.Stdout, os.Stderr, gossipsubDriver{}, memberlistDriver{})
	stop()
	// The conventions of plumtree's subcommands: -h exits 0, a usage
	// error 2 (the flag package has printed a bad flag already), others 1.
	var u *cli.UsageError
	if err != nil && !errors.Is(err, flag.ErrHelp) && !(errors.As(err, &u) && u.Shown) {
		fmt.Fprintln(os.Stderr, "bench:", err)
	}
	os.Exit(cli.ExitCode(err))
}
