package quic_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plumtree-go/plumtree/conformance"
	"github.com/plumtree-go/plumtree/membership/static"
	"github.com/plumtree-go/plumtree/transport"
	"github.com/plumtree-go/plumtree/transport/devcert"
	"github.com/plumtree-go/plumtree/transport/quic"
)

// network returns a conformance network: one development CA, every node
// with its own mutual-TLS certificate from it, 0-RTT on.
func network(t testing.TB) conformance.ListenFunc {
	ca, err := devcert.NewUnsafeCA()
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	return func(addr string) (transport.Transport, error) {
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		tlsConf, err := ca.UnsafeMutualTLS(fmt.Sprintf("node-%d", n.Add(1)), "127.0.0.1")
		if err != nil {
			return nil, err
		}
		return quic.Listen(addr, quic.Config{
			TLS:              tlsConf,
			Enable0RTT:       true,
			HandshakeTimeout: 2 * time.Second, // how long a dial to nobody takes to fail
		})
	}
}

func TestConformanceTransport(t *testing.T) { conformance.TestTransport(t, network) }

func TestConformanceBroadcast(t *testing.T) {
	conformance.TestBroadcast(t, network, static.New[string])
}
