package transport_test

import (
	"testing"

	"github.com/plumtree-go/plumtree/conformance"
	"github.com/plumtree-go/plumtree/membership/static"
	"github.com/plumtree-go/plumtree/transport"
	"github.com/plumtree-go/plumtree/transport/mem"
)

// joinedNetwork joins the datagram path of one mem network with the stream
// path of another, at the same address in both.
func joinedNetwork(testing.TB) conformance.ListenFunc {
	dn, sn := mem.NewNetwork(mem.Config{}), mem.NewNetwork(mem.Config{})
	return func(addr string) (transport.Transport, error) {
		dg, err := dn.Listen(addr)
		if err != nil {
			return nil, err
		}
		st, err := sn.Listen(dg.LocalAddr())
		if err != nil {
			dg.Close()
			return nil, err
		}
		j, err := transport.Join(dgOnly{dg}, stOnly{st})
		if err != nil {
			dg.Close()
			st.Close()
		}
		return j, err
	}
}

func TestJoinConformance(t *testing.T) { conformance.TestTransport(t, joinedNetwork) }

func TestJoinBroadcast(t *testing.T) { conformance.TestBroadcast(t, joinedNetwork, static.New[string]) }

// overStream wraps mem transports with DatagramsOverStream.
func overStream(cfg mem.Config, maxDatagram int) conformance.MakeNetwork {
	return func(testing.TB) conformance.ListenFunc {
		n := mem.NewNetwork(cfg)
		return func(addr string) (transport.Transport, error) {
			st, err := n.Listen(addr)
			if err != nil {
				return nil, err
			}
			return transport.DatagramsOverStream(stOnly{st}, maxDatagram), nil
		}
	}
}

func TestDatagramsOverStreamConformance(t *testing.T) {
	conformance.TestTransport(t, overStream(mem.Config{}, 1400))
}

func TestDatagramsOverStreamBroadcast(t *testing.T) {
	conformance.TestBroadcast(t, overStream(mem.Config{}, 1400), static.New[string])
}
