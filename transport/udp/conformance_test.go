package udp_test

import (
	"testing"

	"github.com/plumtree-go/plumtree/conformance"
	"github.com/plumtree-go/plumtree/membership/static"
	"github.com/plumtree-go/plumtree/transport"
	"github.com/plumtree-go/plumtree/transport/udp"
)

func network(testing.TB) conformance.ListenFunc {
	return func(addr string) (transport.Transport, error) {
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		return udp.Listen(addr, udp.Config{})
	}
}

func TestConformance(t *testing.T) { conformance.TestTransport(t, network) }

func TestBroadcast(t *testing.T) { conformance.TestBroadcast(t, network, static.New[string]) }
