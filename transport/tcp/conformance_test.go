package tcp_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/plumtree-go/plumtree/conformance"
	"github.com/plumtree-go/plumtree/membership/static"
	"github.com/plumtree-go/plumtree/transport"
	"github.com/plumtree-go/plumtree/transport/devcert"
	"github.com/plumtree-go/plumtree/transport/tcp"
)

func network(testing.TB) conformance.ListenFunc {
	return func(addr string) (transport.Transport, error) {
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		return tcp.Listen(addr, tcp.Config{})
	}
}

func TestConformance(t *testing.T) { conformance.TestTransport(t, network) }

func TestBroadcast(t *testing.T) { conformance.TestBroadcast(t, network, static.New[string]) }

func TestConformanceTLS(t *testing.T) {
	ca, err := devcert.NewUnsafeCA()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	var mu sync.Mutex
	conformance.TestTransport(t, func(testing.TB) conformance.ListenFunc {
		return func(addr string) (transport.Transport, error) {
			if addr == "" {
				addr = "127.0.0.1:0"
			}
			mu.Lock()
			n++
			name := fmt.Sprintf("node-%d", n)
			mu.Unlock()
			cfg, err := ca.UnsafeMutualTLS(name, "127.0.0.1")
			if err != nil {
				return nil, err
			}
			return tcp.Listen(addr, tcp.Config{TLS: cfg})
		}
	})
}
