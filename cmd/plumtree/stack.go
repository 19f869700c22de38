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
	qgo "github.com/quic-go/quic-go"

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
	return listenTransportReset(name, addr, tlsConf, nil)
}

// listenTransportReset is listenTransport with quic's stateless reset key
// (nil for none; see quicResetKey).
func listenTransportReset(name, addr string, tlsConf *tls.Config, reset *qgo.StatelessResetKey) (transport.Transport, error) {
	switch name {
	case "quic":
		if tlsConf == nil {
			return nil, fmt.Errorf("quic needs TLS")
		}
		return quic.Listen(addr, quic.Config{TLS: tlsConf, StatelessResetKey: reset})
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
	return joinMemberlistKeyed(name, bind, addr, seeds, "", 0, log)
}

// joinMemberlistKeyed is joinMemberlist with memberlist's encryption key
// (base64; empty for none) and the interval of rejoining failed nodes (0:
// never; see plummember.Config.RejoinInterval).
func joinMemberlistKeyed(name, bind, addr string, seeds []string, secret string, rejoin time.Duration, log *slog.Logger) (*plummember.Membership[string], error) {
	host, port, err := splitHostPort(bind)
	if err != nil {
		return nil, err
	}
	keys, err := decodeSecrets(secret)
	if err != nil {
		return nil, err
	}
	conf := memberlist.DefaultLANConfig()
	if host == "127.0.0.1" || host == "::1" || host == "localhost" {
		conf = memberlist.DefaultLocalConfig()
		// The local preset's 1 s for a join or push-pull over TCP fails
		// under load (several nodes starting at once on a busy machine);
		// keep the LAN preset's 10 s.
		conf.TCPTimeout = memberlist.DefaultLANConfig().TCPTimeout
	}
	// The raw keys, as memberlist's own tools expect them; the seal derives
	// its keys from them (sealKeys), so the two never share an AES key.
	if len(keys) > 0 { // the first key encrypts, all of them decrypt
		if conf.Keyring, err = memberlist.NewKeyring(keys, keys[0]); err != nil {
			return nil, err
		}
	}
	conf.Name = name
	conf.BindAddr = host
	conf.BindPort = port
	conf.AdvertisePort = port
	if log == nil {
		conf.LogOutput = io.Discard
	}
	return plummember.New(plummember.Config[string]{
		Memberlist:     conf,
		Addr:           addr,
		Join:           seeds,
		LeaveTimeout:   2 * time.Second,
		RejoinInterval: rejoin,
		Logger:         log,
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
