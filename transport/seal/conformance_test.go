package seal_test

import (
	"bytes"
	"testing"

	"github.com/plumtree-go/plumtree/conformance"
	"github.com/plumtree-go/plumtree/membership/static"
	"github.com/plumtree-go/plumtree/transport"
	"github.com/plumtree-go/plumtree/transport/mem"
	"github.com/plumtree-go/plumtree/transport/seal"
	"github.com/plumtree-go/plumtree/transport/tcp"
	"github.com/plumtree-go/plumtree/transport/udp"
	"github.com/plumtree-go/plumtree/transport/udptcp"
)

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

// sealedNetwork wraps every transport listen opens with one shared keyring.
func sealedNetwork(t testing.TB, listen func(addr string) (transport.Transport, error)) conformance.ListenFunc {
	kr, err := seal.NewKeyring(testKey(1), testKey(2))
	if err != nil {
		t.Fatal(err)
	}
	return func(addr string) (transport.Transport, error) {
		tr, err := listen(addr)
		if err != nil {
			return nil, err
		}
		s, err := seal.Wrap(tr, kr)
		if err != nil {
			tr.Close()
			return nil, err
		}
		return s, nil
	}
}

func sealedMem(t testing.TB) conformance.ListenFunc {
	n := mem.NewNetwork(mem.Config{})
	return sealedNetwork(t, func(addr string) (transport.Transport, error) {
		tr, err := n.Listen(addr)
		if err != nil {
			return nil, err
		}
		return tr, nil
	})
}

func loopback(addr string) string {
	if addr == "" {
		return "127.0.0.1:0"
	}
	return addr
}

// The seal keeps the transport contract on both paths of the in-memory
// network, on UDP alone, and on UDP plus TCP.
func TestConformanceMem(t *testing.T) { conformance.TestTransport(t, sealedMem) }

func TestConformanceUDP(t *testing.T) {
	conformance.TestTransport(t, func(t testing.TB) conformance.ListenFunc {
		return sealedNetwork(t, func(addr string) (transport.Transport, error) {
			tr, err := udp.Listen(loopback(addr), udp.Config{})
			if err != nil {
				return nil, err
			}
			return tr, nil
		})
	})
}

func TestConformanceUDPTCP(t *testing.T) {
	conformance.TestTransport(t, func(t testing.TB) conformance.ListenFunc {
		return sealedNetwork(t, func(addr string) (transport.Transport, error) {
			tr, err := udptcp.Listen(loopback(addr), udp.Config{}, tcp.Config{})
			if err != nil {
				return nil, err
			}
			return tr, nil
		})
	})
}

// A cluster of gossip nodes delivers every broadcast through sealed
// transports.
func TestConformanceBroadcastMem(t *testing.T) {
	conformance.TestBroadcast(t, sealedMem, static.New[string])
}
