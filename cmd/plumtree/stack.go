package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/plumtree-go/plumtree/gossip"
	plummember "github.com/plumtree-go/plumtree/membership/memberlist"
	"github.com/plumtree-go/plumtree/transport"
	"github.com/plumtree-go/plumtree/transport/quic"
	"github.com/plumtree-go/plumtree/transport/tcp"
	"github.com/plumtree-go/plumtree/transport/udp"
	"github.com/plumtree-go/plumtree/transport/udptcp"
)

// transports names the network transports the commands can run on.
var transports = []string{"quic", "udp+tcp", "tcp"}

// listenTransport opens the named network transport at addr. tlsConf is
// required for quic and optional for tcp; udp+tcp has no TLS.
func listenTransport(name, addr string, tlsConf *tls.Config) (transport.Transport, error) {
	switch name {
	case "quic":
		if tlsConf == nil {
			return nil, fmt.Errorf("quic needs TLS")
		}
		return quic.Listen(addr, quic.Config{TLS: tlsConf})
	case "udp+tcp":
		if tlsConf != nil {
			return nil, fmt.Errorf("udp+tcp has no TLS; use quic or tcp")
		}
		return udptcp.Listen(addr, udp.Config{}, tcp.Config{})
	case "tcp":
		return tcp.Listen(addr, tcp.Config{TLS: tlsConf})
	}
	return nil, fmt.Errorf("unknown transport %q (want mem, %s)", name, strings.Join(transports, ", "))
}

// presetConfig returns the named preset.
func presetConfig(name string) (gossip.Config, error) {
	switch name {
	case "default":
		return gossip.DefaultConfig(), nil
	case "lan":
		return gossip.LANConfig(), nil
	case "wan":
		return gossip.WANConfig(), nil
	case "large":
		return gossip.LargeClusterConfig(), nil
	}
	return gossip.Config{}, fmt.Errorf("unknown preset %q (want default, lan, wan, large)", name)
}

// withCompressor sets the compression of cfg: "preset" keeps the preset's,
// "none" turns it off, "zstd" and "lz4" turn it on for payloads of 256
// bytes and more.
func withCompressor(cfg gossip.Config, name string) (gossip.Config, error) {
	switch name {
	case "preset":
	case "none":
		cfg.Compression = gossip.Compression{}
	case "zstd", "lz4":
		cfg.Compression = gossip.Compression{Algorithm: name, MinSize: 256}
	default:
		return cfg, fmt.Errorf("unknown compressor %q (want preset, none, zstd, lz4)", name)
	}
	return cfg, cfg.Validate()
}

// joinMemberlist starts a memberlist member named name, bound to bind
// ("host:port", port 0 for any), advertising the broadcast address addr,
// joining seeds. Its logs go to log (nil: nowhere).
func joinMemberlist(name, bind, addr string, seeds []string, log *slog.Logger) (*plummember.Membership[string], error) {
	return joinMemberlistKeyed(name, bind, addr, seeds, "", log)
}

// joinMemberlistKeyed is joinMemberlist with memberlist's encryption key
// (base64; empty for none).
func joinMemberlistKeyed(name, bind, addr string, seeds []string, secret string, log *slog.Logger) (*plummember.Membership[string], error) {
	host, port, err := splitHostPort(bind)
	if err != nil {
		return nil, err
	}
	key, err := decodeSecret(secret)
	if err != nil {
		return nil, err
	}
	conf := memberlist.DefaultLANConfig()
	if host == "127.0.0.1" || host == "::1" || host == "localhost" {
		conf = memberlist.DefaultLocalConfig()
	}
	conf.SecretKey = key
	conf.Name = name
	conf.BindAddr = host
	conf.BindPort = port
	conf.AdvertisePort = port
	if log == nil {
		conf.LogOutput = io.Discard
	}
	return plummember.New(plummember.Config[string]{
		Memberlist:   conf,
		Addr:         addr,
		Join:         seeds,
		LeaveTimeout: 2 * time.Second,
		Logger:       log,
	})
}

func splitHostPort(hp string) (string, int, error) {
	host, p, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port in %q", hp)
	}
	return host, port, nil
}
