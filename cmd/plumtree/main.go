// Command plumtree runs the library.
//
//	plumtree demo   a cluster of nodes in this process on loopback sockets (QUIC and
//	                memberlist by default): broadcasts, then a report of what the paper measures
//	plumtree node   one node as a process or a service: lines on standard input and
//	                POSTs to its HTTP API are broadcast, deliveries are printed and
//	                streamed; several make a real cluster
//	plumtree sim    the protocol at scale on a simulated network with virtual time
//	plumtree bench  the same paced workload over this library's transports and a
//	                floor (a bare UDP tree), one report of what each costs
//
// Every subcommand takes -h (a description and the flags; exit 0); a usage
// error exits 2 with its reason, any other error 1.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/plumtree-go/plumtree/internal/bench"
	"github.com/plumtree-go/plumtree/internal/cli"
)

const usage = `usage: plumtree <command> [flags]

commands:
  demo    a local cluster on loopback, then a report
  node    one node of a real cluster (a service: stdin, HTTP API, metrics)
  sim     the protocol at scale in virtual time
  bench   the same workload over several systems, compared

Run 'plumtree <command> -h' for a command's description and flags.`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run runs the command line args (without the program name) and returns
// the exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) < 1 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch cmd := args[0]; cmd {
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return 0
	case "sim":
		err = simCmd(args[1:], stdout, stderr)
	case "demo":
		err = demo(ctx, args[1:], stdout, stderr)
	case "bench":
		err = bench.Main(ctx, args[1:], stdout, stderr)
	case "node":
		err = node(ctx, args[1:], stdin, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "plumtree: unknown command %q\n%s\n", cmd, usage)
		return 2
	}
	var u *cli.UsageError
	if err != nil && !(errors.As(err, &u) && u.Shown) && cli.ExitCode(err) != 0 {
		fmt.Fprintf(stderr, "plumtree %s: %v\n", args[0], err)
	}
	return cli.ExitCode(err)
}
