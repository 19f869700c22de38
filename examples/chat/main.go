// Command chat is a terminal chat over the library: every line you type is
// broadcast to everyone in the room, and what the others type is printed as
// "<name>: text". Start a first node, then others that join it, in as many
// terminals as you like (or on other machines, with -listen set to an
// address they can reach):
//
//	go run ./chat -name alice -listen 127.0.0.1:7946
//	go run ./chat -name bob -join 127.0.0.1:7946
//	go run ./chat -name carol -join 127.0.0.1:7946
//
// Ctrl-D (end of input) or Ctrl-C leaves the room.
//
// Membership is hashicorp/memberlist: -listen is its address and -join lists
// the memberlist addresses of nodes already in the room. Messages travel
// over QUIC on a second port of the same host, which each node advertises in
// its memberlist metadata.
//
// UNSAFE FOR PRODUCTION: every node derives the same TLS key and certificate,
// and memberlist's encryption key, from the -secret passphrase (see
// secret.go). That is the simplest way for separate processes to share
// credentials without copying files around, and it keeps strangers out only
// as well as the passphrase does: anyone who knows it can join and speak
// under any name, and the default passphrase is public. A real deployment
// issues each node its own certificate from its own CA (quic.Config.TLS).
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/hashicorp/memberlist"

	"github.com/plumtree-go/plumtree/gossip"
	"github.com/plumtree-go/plumtree/stack"
)

// config is what the flags set.
type config struct {
	Name   string   // unique in the room
	Listen string   // memberlist's address; QUIC takes another port on this host
	Join   []string // memberlist addresses of nodes in the room
	Secret string   // shared by everyone in the room
}

func main() {
	var cfg config
	var join string
	flag.StringVar(&cfg.Name, "name", "", "your name, unique in the room (required)")
	flag.StringVar(&cfg.Listen, "listen", "127.0.0.1:0", "memberlist address (a specific IP, port 0 for any)")
	flag.StringVar(&join, "join", "", "comma-separated addresses of nodes in the room")
	flag.StringVar(&cfg.Secret, "secret", "plumtree chat demo", "passphrase shared by the room (the default is public)")
	flag.Parse()
	if join != "" {
		cfg.Join = strings.Split(join, ",")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdin, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// run joins the room, broadcasts each line read from in, and prints what the
// others say to out. It leaves the room when in ends or ctx is done (a read
// from in then in progress is abandoned).
func run(ctx context.Context, cfg config, in io.Reader, out io.Writer) error {
	if cfg.Name == "" {
		return errors.New("chat: -name is required")
	}
	host, _, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return fmt.Errorf("chat: -listen: %w", err)
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		return fmt.Errorf("chat: -listen %s: give a specific IP address that the others can reach", cfg.Listen)
	}
	w := &syncWriter{w: out} // deliveries and membership news print from other goroutines
	creds, err := newCredentials(cfg.Secret)
	if err != nil {
		return err
	}

	// QUIC on a port of its own, memberlist at -listen advertising the QUIC
	// address, and the node over them: package stack builds all three.
	s, err := stack.New(stack.Config{
		Name: cfg.Name, Listen: net.JoinHostPort(host, "0"), ClusterListen: cfg.Listen, Join: cfg.Join,
		Transport: "quic", TLS: creds.TLS, Secret: [][]byte{creds.MemberlistKey},
		Memberlist: func(c *memberlist.Config) { c.Events = &news{self: cfg.Name, out: w} },
		// Every node has the same certificate (from the passphrase): it
		// names no node, so any sender ID is accepted from it.
		Authenticate: func(string, string) error { return nil },
		OnDeliver:    func(d gossip.Delivery[string, []byte]) { fmt.Fprintf(w, "%s: %s\n", d.Origin, d.Value) },
	})
	if err != nil {
		return err
	}
	defer s.Close() // leaves the room gracefully
	node := s.Node

	addr := s.ClusterAddr()
	fmt.Fprintf(w, "* %s in the room at %s (others join with -join %s)\n", cfg.Name, addr, addr)

	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				return nil
			}
			if strings.TrimSpace(line) == "" {
				continue
			}
			if _, err := node.Broadcast(ctx, []byte(line)); err != nil {
				return err
			}
		case <-ctx.Done():
			return nil
		}
	}
}

// news prints who comes and goes, as memberlist sees it.
type news struct {
	self string
	out  io.Writer
}

func (n *news) NotifyJoin(m *memberlist.Node) {
	if m.Name != n.self {
		fmt.Fprintf(n.out, "* %s joined\n", m.Name)
	}
}

func (n *news) NotifyLeave(m *memberlist.Node) {
	if m.Name != n.self {
		fmt.Fprintf(n.out, "* %s left\n", m.Name)
	}
}

func (n *news) NotifyUpdate(*memberlist.Node) {}

// syncWriter serializes writes from several goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
