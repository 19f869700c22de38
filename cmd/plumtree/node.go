package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/plumtree-go/plumtree/codec"
	"github.com/plumtree-go/plumtree/gossip"
	"github.com/plumtree-go/plumtree/transport/devcert"
)

// nodeOptions are the node command's flags.
type nodeOptions struct {
	name, listen, clusterListen, join string
	transport, preset, compressor     string
	tlsCert, tlsKey, tlsCA, devTLS    string
	secret, secretFile                string
	rejoin                            time.Duration
	verbose                           bool
	// Overrides of the preset's neighbour fanouts and caps (0: the preset's).
	eagerFanout, lazyFanout, maxEager, maxLazy, maxPeers int
}

// node runs one node until ctx is done or in ends: each line read from in
// is broadcast; each delivery is printed to out as "origin (hops N): line".
// Status goes to status.
func node(ctx context.Context, args []string, in io.Reader, out, status io.Writer) error {
	var o nodeOptions
	fs := flag.NewFlagSet("node", flag.ContinueOnError)
	fs.SetOutput(status)
	fs.StringVar(&o.listen, "listen", "127.0.0.1:7000", "address of the broadcast transport")
	fs.StringVar(&o.clusterListen, "cluster-listen", "", "address of memberlist (membership); default: the -listen host, port+1")
	fs.StringVar(&o.join, "join", "", "comma-separated memberlist addresses of nodes to join; empty for the first node")
	fs.StringVar(&o.name, "name", "", "node name, unique in the cluster; default: the -listen address")
	fs.StringVar(&o.transport, "transport", "quic", "transport: quic, udp+tcp, tcp")
	fs.StringVar(&o.preset, "preset", "lan", "configuration preset: default, lan, wan, large")
	fs.StringVar(&o.compressor, "compressor", "preset", "compression: preset, none, zstd, lz4")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "PEM certificate of this node (quic, tcp)")
	fs.StringVar(&o.tlsKey, "tls-key", "", "PEM key of -tls-cert")
	fs.StringVar(&o.tlsCA, "tls-ca", "", "PEM CA that signs every node's certificate (mutual TLS)")
	fs.StringVar(&o.devTLS, "dev-tls", "", "UNSAFE, for trying things out: a directory where the first node creates a throwaway CA that the others read")
	fs.StringVar(&o.secret, "secret", "", "cluster secret: comma-separated base64 keys of 16, 24 or 32 bytes, the first used to send, all to receive (key rotation); keys memberlist, and seals broadcast traffic on udp+tcp and tcp with keys derived from these (HKDF-SHA256; quic relies on mutual TLS)")
	fs.StringVar(&o.secretFile, "secret-file", "", "read -secret from this file instead (keeps keys off the command line): one base64 key per line, the first primary; blank lines and lines starting with # are skipped; read at start")
	fs.DurationVar(&o.rejoin, "rejoin", 10*time.Second, "how often to join again a node that failed and is still missing, so that a healed partition merges (0: never)")
	fs.BoolVar(&o.verbose, "v", false, "log what the node and memberlist do")
	fs.IntVar(&o.eagerFanout, "eager-fanout", 0, "override the preset's EagerFanout (0: the preset's)")
	fs.IntVar(&o.lazyFanout, "lazy-fanout", 0, "override the preset's LazyFanout (0: the preset's)")
	fs.IntVar(&o.maxEager, "max-eager-peers", 0, "override the preset's MaxEagerPeers (0: the preset's)")
	fs.IntVar(&o.maxLazy, "max-lazy-peers", 0, "override the preset's MaxLazyPeers (0: the preset's)")
	fs.IntVar(&o.maxPeers, "max-peers", 0, "override the preset's MaxPeers (0: the preset's)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := readSecretFile(&o.secret, o.secretFile); err != nil {
		return err
	}
	if o.name == "" {
		o.name = o.listen
	}
	if o.clusterListen == "" {
		host, port, err := splitHostPort(o.listen)
		if err != nil {
			return fmt.Errorf("-listen: %w", err)
		}
		if port == 0 {
			o.clusterListen = net.JoinHostPort(host, "0")
		} else {
			o.clusterListen = net.JoinHostPort(host, strconv.Itoa(port+1))
		}
	}
	cfg, err := presetConfig(o.preset)
	if err != nil {
		return err
	}
	if cfg, err = withCompressor(cfg, o.compressor); err != nil {
		return err
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
		return err
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
	tr, err := listenTransportReset(o.transport, o.listen, tlsConf, resetKey)
	if err != nil {
		return err
	}
	if tr, err = sealTransport(o.transport, tr, o.secret); err != nil {
		return err
	}
	defer tr.Close()
	var seeds []string
	if o.join != "" {
		seeds = strings.Split(o.join, ",")
	}
	ml, err := joinMemberlistKeyed(o.name, o.clusterListen, tr.LocalAddr(), seeds, o.secret, o.rejoin, log)
	if err != nil {
		return err
	}
	defer ml.Close() // leaves gracefully
	fmt.Fprintf(status, "node %s: broadcast on %s (%s), cluster on %s; type lines to broadcast them\n",
		o.name, tr.LocalAddr(), o.transport, ml.Memberlist().LocalNode().Address())

	var mu sync.Mutex // out is written by deliveries and errors
	pt, err := gossip.New(cfg, gossip.Options[string, []byte]{
		ID: o.name, Transport: tr, Membership: ml, Codec: codec.Bytes(), Logger: log,
		Authenticate: authenticate(tlsConf), // with TLS, sender IDs must match certificates
		OnDeliver: func(d gossip.Delivery[string, []byte]) {
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintf(out, "%s (hops %d): %s\n", d.Origin, d.Hops, d.Value)
		},
	})
	if err != nil {
		return err
	}
	defer pt.Close()
	defer reportRefused(status, o.name, tr, pt.Stats)

	// Report the membership as it changes.
	ctx, cancel := context.WithCancel(ctx)
	var watcher sync.WaitGroup
	defer watcher.Wait()
	defer cancel()
	watcher.Add(1)
	go func() {
		defer watcher.Done()
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
			for _, m := range ml.Members() {
				names = append(names, m.ID)
			}
			slices.Sort(names)
			if now := strings.Join(names, " "); now != last {
				last = now
				mu.Lock()
				fmt.Fprintf(status, "node %s: members: %d (%s)\n", o.name, len(names), now)
				mu.Unlock()
			}
		}
	}()

	lines := make(chan string)
	readErr := make(chan error, 1)
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
		readErr <- sc.Err()
	}()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintf(status, "node %s: leaving\n", o.name)
			return nil
		case err := <-readErr:
			fmt.Fprintf(status, "node %s: end of input, leaving\n", o.name)
			return err
		case line := <-lines:
			if line == "" {
				continue
			}
			if _, err := pt.Broadcast(ctx, []byte(line)); err != nil {
				fmt.Fprintf(status, "node %s: broadcast: %v\n", o.name, err)
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
			return nil, fmt.Errorf("-tls-cert, -tls-key and -tls-ca go together")
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
			return nil, err
		}
		return ca.UnsafeMutualTLS(o.name, host)
	case o.transport == "quic":
		return nil, fmt.Errorf("quic needs TLS: give -tls-cert, -tls-key and -tls-ca, or -dev-tls DIR to try things out")
	}
	return nil, nil
}
