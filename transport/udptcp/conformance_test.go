package udptcp_test

import (
	"testing"

	"github.com/plumtree-go/plumtree/conformance"
	"github.com/plumtree-go/plumtree/membership/static"
	"github.com/plumtree-go/plumtree/transport"
	"github.com/plumtree-go/plumtree/transport/tcp"
	"github.com/plumtree-go/plumtree/transport/udp"
	"github.com/plumtree-go/plumtree/transport/udptcp"
)

func network(testing.TB) conformance.ListenFunc {
	return func(addr string) (transport.Transport, error) {
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		return udptcp.Listen(addr, udp.Config{}, tcp.Config{})
	}
}

func TestConformance(t *testing.T) { conformance.TestTransport(t, network) }

func TestBroadcast(t *testing.T) { conformance.TestBroadcast(t, network, static.New[string]) }

// Both paths over TCP alone, with transport.DatagramsOverStream.
func overTCP(testing.TB) conformance.ListenFunc {
	return func(addr string) (transport.Transport, error) {
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		st, err := tcp.Listen(addr, tcp.Config{})
		if err != nil {
			return nil, err
		}
		return transport.DatagramsOverStream(st, 1400), nil
	}
}

func TestDatagramsOverTCPConformance(t *testing.T) { conformance.TestTransport(t, overTCP) }
