// Command plumtree runs the library.
//
//	plumtree demo   a cluster of nodes in this process on loopback sockets (QUIC and
//	                memberlist by default): broadcasts, then a report of what the paper measures
//	plumtree node   one node as a process: lines on standard input are broadcast,
//	                deliveries are printed; several make a real cluster
//	plumtree sim    the protocol at scale on a simulated network with virtual time
//	plumtree bench  the same paced workload over this library's transports and a
//	                floor (a bare UDP tree), one report of what each costs
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
)

const usage = `usage: plumtree demo [flags]   a local cluster on loopback, then a report
       plumtree node [flags]   one node of a real cluster
       plumtree sim [flags]    the protocol at scale in virtual time
       plumtree bench [flags]  the same workload over several systems, compared
Run 'plumtree <command> -h' for the flags.`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "sim":
		runSim(os.Args[2:])
		return
	case "demo":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		err = demo(ctx, os.Args[2:], os.Stdout, os.Stderr)
	case "bench":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		err = bench.Main(ctx, os.Args[2:], os.Stdout, os.Stderr)
	case "node":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		err = node(ctx, os.Args[2:], os.Stdin, os.Stdout, os.Stderr)
	default:
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "plumtree:", err)
		os.Exit(1)
	}
}
