package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/plumtree-go/plumtree/gossip"
	"github.com/plumtree-go/plumtree/internal/cli"
	"github.com/plumtree-go/plumtree/internal/promtext"
	"github.com/plumtree-go/plumtree/observe"
	"github.com/plumtree-go/plumtree/stack"
	"github.com/plumtree-go/plumtree/transport"
	"github.com/plumtree-go/plumtree/transport/devcert"
)

// nodeOptions are the node command's flags.
type nodeOptions struct {
	name, listen, advertise, clusterListen, join string
	transport, preset, compressor                string
	tlsCert, tlsKey, tlsCA, devTLS               string
	secret, secretFile, peersFile, http          string
	rejoin                                       time.Duration
	verbose                                      bool
	// Overrides of the preset's neighbour fanouts and caps (0: the preset's).
	eagerFanout, lazyFanout, maxEager, maxLazy, maxPeers int
}

const nodeDescription = `Runs one node of a cluster until SIGINT or SIGTERM, whether or not standard input
is a terminal: it can run as a service (stdin from /dev/null). Each line read
from standard input is broadcast (the end of the input does not stop the node);
each delivery is printed to standard output as "origin (hops N): line"; status
goes to standard error. Membership is memberlist: start the first node alone,
then the others with -join and the first one's cluster address.

With -http ADDR the node serves a local HTTP API: POST /publish (the body is
broadcast), GET /subscribe (deliveries as newline-delimited JSON, or server-sent
events with Accept: text/event-stream), GET /members, GET /peers, GET /health,
and GET /metrics (Prometheus text, from the observe package's OpenTelemetry
metrics). The API has no authentication: anyone who reaches it can broadcast as
this node. An address without a host (":8080") binds loopback; bind another
address only behind a firewall or an authenticating reverse proxy.`

// node runs one node until ctx is done: each line read from in is
// broadcast; each delivery is printed to out as "origin (hops N): line".
// Status goes to status.
func node(ctx context.Context, args []string, in io.Reader, out, status io.Writer) error {
	var o nodeOptions
	fs := cli.FlagSet("node", nodeDescription, status)
	fs.StringVar(&o.listen, "listen", "127.0.0.1:7000", "address of the broadcast transport, ip:port; a wildcard (:7000, 0.0.0.0:7000) needs -advertise")
	fs.StringVar(&o.advertise, "advertise", "", "the IP the other nodes reach this node at; the broadcast transport binds it (with -listen's port) and memberlist advertises it")
	fs.StringVar(&o.clusterListen, "cluster-listen", "", "address of memberlist (membership); default: the -listen host, port+1")
	fs.StringVar(&o.join, "join", "", "comma-separated memberlist addresses of nodes to join; empty for the first node")
	fs.StringVar(&o.name, "name", "", "node name, unique in the cluster (its gossip ID); default: the -listen address (with -advertise, its IP)")
	fs.StringVar(&o.transport, "transport", "quic", "transport: "+strings.Join(stack.Transports, ", "))
	fs.StringVar(&o.preset, "preset", "lan", "configuration preset: "+strings.Join(stack.Presets, ", "))
	fs.StringVar(&o.compressor, "compressor", "preset", "compression: preset, none, zstd, lz4")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "PEM certificate of this node (quic, tcp)")
	fs.StringVar(&o.tlsKey, "tls-key", "", "PEM key of -tls-cert")
	fs.StringVar(&o.tlsCA, "tls-ca", "", "PEM CA that signs every node's certificate (mutual TLS)")
	fs.StringVar(&o.devTLS, "dev-tls", "", "UNSAFE, for trying things out: a directory where the first node creates a throwaway CA that the others read")
	fs.StringVar(&o.secret, "secret", "", "cluster secret: comma-separated base64 keys of 16, 24 or 32 bytes, the first used to send, all to receive (key rotation); keys memberlist, and seals broadcast traffic on udp+tcp and tcp with keys derived from these (HKDF-SHA256; quic relies on mutual TLS)")
	fs.StringVar(&o.secretFile, "secret-file", "", "read -secret from this file instead (keeps keys off the command line): one base64 key per line, the first primary; blank lines and lines starting with # are skipped; read at start")
	fs.StringVar(&o.peersFile, "peers-file", "", "save the known peers to this file, and join them on start (a restarted node rejoins without -join)")
	fs.StringVar(&o.http, "http", "", "serve the local HTTP API (publish, subscribe, members, peers, health, metrics) at this address; empty: off; a bare :PORT binds loopback")
	fs.DurationVar(&o.rejoin, "rejoin", 10*time.Second, "how often to join again a node that failed and is still missing, so that a healed partition merges (0: never)")
	fs.BoolVar(&o.verbose, "v", false, "log what the node and memberlist do")
	fs.IntVar(&o.eagerFanout, "eager-fanout", 0, "override the preset's EagerFanout (0: the preset's)")
	fs.IntVar(&o.lazyFanout, "lazy-fanout", 0, "override the preset's LazyFanout (0: the preset's)")
	fs.IntVar(&o.maxEager, "max-eager-peers", 0, "override the preset's MaxEagerPeers (0: the preset's)")
	fs.IntVar(&o.maxLazy, "max-lazy-peers", 0, "override the preset's MaxLazyPeers (0: the preset's)")
	fs.IntVar(&o.maxPeers, "max-peers", 0, "override the preset's MaxPeers (0: the preset's)")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if err := readSecretFile(&o.secret, o.secretFile); err != nil {
		return &cli.UsageError{Err: err}
	}
	if o.name == "" {
		o.name = o.listen
		if _, port, err := net.SplitHostPort(o.listen); err == nil && o.advertise != "" {
			o.name = net.JoinHostPort(o.advertise, port) // a wildcard names no node
		}
	}
	cfg, err := stack.Preset(o.preset)
	if err != nil {
		return &cli.UsageError{Err: fmt.Errorf("-preset: %w", err)}
	}
	if cfg, err = stack.WithCompressor(cfg, o.compressor); err != nil {
		return &cli.UsageError{Err: fmt.Errorf("-compressor: %w", err)}
	}
	for _, f := range []struct {
		v   int
		dst *int
	}{{o.eagerFanout, &cfg.EagerFanout}, {o.lazyFanout, &cfg.LazyFanout}, {o.maxEager, &cfg.MaxEagerPeers},
		{o.maxLazy, &cfg.MaxLazyPeers}, {o.maxPeers, &cfg.MaxPeers}} {
		if f.v > 0 {
			*f.dst = f.v
		}
	}
	if err := cfg.Validate(); err != nil {
		return &cli.UsageError{Err: err}
	}
	if !slices.Contains(stack.Transports, o.transport) {
		return cli.Usagef("-transport: unknown transport %q (want %s)", o.transport, strings.Join(stack.Transports, ", "))
	}
	secrets, err := decodeSecrets(o.secret)
	if err != nil {
		return &cli.UsageError{Err: err}
	}
	tlsConf, err := nodeTLS(o)
	if err != nil {
		return err
	}
	var log *slog.Logger
	if o.verbose {
		log = slog.New(slog.NewTextHandler(status, nil))
	}
	resetKey, err := quicResetKey(o)
	if err != nil {
		return err
	}
	var seeds []string
	if o.join != "" {
		seeds = strings.Split(o.join, ",")
	}

	var api *httpAPI
	var obs *observe.Observer
	if o.http != "" {
		metrics := promtext.New()
		if obs, err = observe.New(observe.WithMeterProvider(metrics)); err != nil {
			return err
		}
		api = newHTTPAPI(metrics)
	}
	var mu sync.Mutex // out is written by deliveries and errors
	scfg := stack.Config{
		Name: o.name, Listen: o.listen, Advertise: o.advertise, ClusterListen: o.clusterListen, Join: seeds,
		Transport: o.transport, Gossip: &cfg, TLS: tlsConf, Secret: secrets, PeersFile: o.peersFile,
		RejoinInterval: o.rejoin, QUICResetKey: resetKey, Logger: log,
		OnDeliver: func(d gossip.Delivery[string, []byte]) {
			if api != nil {
				api.deliver(d)
			}
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintf(out, "%s (hops %d): %s\n", d.Origin, d.Hops, d.Value)
		},
	}
	if obs != nil {
		scfg.Observer = obs
	}
	s, err := stack.New(scfg)
	if err != nil {
		return err
	}
	defer s.Close() // leaves gracefully
	fmt.Fprintf(status, "node %s: broadcast on %s (%s), cluster on %s; type lines to broadcast them\n",
		s.ID(), s.Transport.LocalAddr(), o.transport, s.ClusterAddr())
	defer reportRefused(status, s.ID(), s.Transport, s.Node.Stats)

	ctx, cancel := context.WithCancel(ctx)
	var workers sync.WaitGroup
	defer workers.Wait()
	defer cancel()
	if api != nil {
		stopNode, err := obs.WatchNode(s.Node.Stats)
		if err != nil {
			return err
		}
		defer stopNode()
		if sr, ok := s.Transport.(transport.StatsReporter); ok {
			stopTr, err := obs.WatchTransport(sr)
			if err != nil {
				return err
			}
			defer stopTr()
		}
		addr, err := api.serve(ctx, &workers, o.http, s)
		if err != nil {
			return err
		}
		fmt.Fprintf(status, "node %s: HTTP API on http://%s\n", s.ID(), addr)
	}

	// Report the membership as it changes.
	workers.Go(func() {
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		last := ""
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			var names []string
			for _, m := range s.Membership.Members() {
				names = append(names, m.ID)
			}
			slices.Sort(names)
			if now := strings.Join(names, " "); now != last {
				last = now
				mu.Lock()
				fmt.Fprintf(status, "node %s: members: %d (%s)\n", s.ID(), len(names), now)
				mu.Unlock()
			}
		}
	})

	// Lines of standard input are broadcast; its end (or an error reading
	// it) leaves the node running, as a service's /dev/null does. The
	// reader may stay blocked in Read after the node stops: it holds no
	// resource of the node, and the process is ending.
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 64<<10), cfg.MaxMessageSize)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
		if err := sc.Err(); err != nil {
			mu.Lock()
			fmt.Fprintf(status, "node %s: reading standard input: %v\n", s.ID(), err)
			mu.Unlock()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintf(status, "node %s: leaving\n", s.ID())
			return nil
		case line := <-lines:
			if line == "" {
				continue
			}
			if _, err := s.Node.Broadcast(ctx, []byte(line)); err != nil {
				fmt.Fprintf(status, "node %s: broadcast: %v\n", s.ID(), err)
			}
		}
	}
}

// nodeTLS builds the TLS configuration from the flags: certificate files,
// or the unsafe development CA, or nothing (allowed for udp+tcp and tcp).
func nodeTLS(o nodeOptions) (*tls.Config, error) {
	switch {
	case o.tlsCert != "" || o.tlsKey != "" || o.tlsCA != "":
		if o.tlsCert == "" || o.tlsKey == "" || o.tlsCA == "" {
			return nil, cli.Usagef("-tls-cert, -tls-key and -tls-ca go together")
		}
		cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
		if err != nil {
			return nil, err
		}
		caPEM, err := os.ReadFile(o.tlsCA)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, fmt.Errorf("-tls-ca %s holds no PEM certificate", o.tlsCA)
		}
		return &tls.Config{
			MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert},
			RootCAs: pool, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert,
		}, nil
	case o.devTLS != "":
		ca, err := devcert.LoadOrCreateUnsafeCA(o.devTLS)
		if err != nil {
			return nil, err
		}
		host, _, err := net.SplitHostPort(o.listen)
		if err != nil {
			return nil, cli.Usagef("-listen: %v", err)
		}
		if o.advertise != "" {
			host = o.advertise
		}
		return ca.UnsafeMutualTLS(o.name, host)
	case o.transport == "quic":
		return nil, cli.Usagef("quic needs TLS: give -tls-cert, -tls-key and -tls-ca, or -dev-tls DIR to try things out")
	}
	return nil, nil
}
