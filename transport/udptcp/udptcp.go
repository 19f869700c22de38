// Package udptcp runs the two paths on one port number, as memberlist does:
// datagrams over UDP (package udp) and frames over TCP (package tcp), joined
// with transport.Join so that one address reaches both.
//
//	tr, err := udptcp.Listen("10.0.0.5:7946", udp.Config{}, tcp.Config{})
//	if err != nil { ... }
//	defer tr.Close()
//	// tr implements transport.Datagram, transport.Stream and
//	// transport.StatsReporter; tr.LocalAddr() is "10.0.0.5:7946".
//
// Listen refuses a wildcard address (":7946", "0.0.0.0:7946", "[::]:7946"):
// the transport advertises the address it is bound to.
//
// With port 0, Listen binds TCP first on a port the system picks and then UDP
// on the same port; if that UDP port is taken it tries again with a new TCP
// port, a few times.
//
// This package must never import the gossip core.
package udptcp

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/plumtree-go/plumtree/transport"
	"github.com/plumtree-go/plumtree/transport/tcp"
	"github.com/plumtree-go/plumtree/transport/udp"
)

// attempts is how many port numbers Listen tries when addr has port 0.
const attempts = 10

// Listen binds TCP and UDP at addr ("ip:port") on the same port and joins
// them. Closing the result closes both.
func Listen(addr string, udpCfg udp.Config, tcpCfg tcp.Config) (*transport.Joined, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("udptcp: listen %s: %w", addr, err)
	}
	// LocalAddr is what peers are told to send to, and "[::]:7946" reaches
	// nobody: refuse it here rather than let peers fail later.
	if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
		return nil, fmt.Errorf("udptcp: listen %q: a wildcard address would be advertised as the address peers send to, and they cannot reach it; listen on this node's IP", addr)
	}
	tries := 1
	if port == "0" || port == "" {
		tries = attempts
	}
	var lastErr error
	for range tries {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("udptcp: listen %s: %w", addr, err)
		}
		// UDP on exactly the address TCP got.
		dg, err := udp.Listen(ln.Addr().String(), udpCfg)
		if err != nil {
			ln.Close()
			// With a chosen port the UDP port is most likely taken;
			// try another. With a given port there is nothing to try.
			lastErr = err
			continue
		}
		st, err := tcp.New(ln, tcpCfg)
		if err != nil {
			ln.Close()
			dg.Close()
			return nil, fmt.Errorf("udptcp: %w", err)
		}
		j, err := transport.Join(dg, st)
		if err != nil {
			dg.Close()
			st.Close()
			return nil, fmt.Errorf("udptcp: %w", err)
		}
		return j, nil
	}
	return nil, fmt.Errorf("udptcp: listen %s: no port free for both UDP and TCP after %d tries: %w", addr, tries, lastErr)
}
