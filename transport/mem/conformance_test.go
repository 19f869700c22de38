package mem_test

import (
	"context"
	"testing"
	"time"

	"github.com/plumtree-go/plumtree/conformance"
	"github.com/plumtree-go/plumtree/membership/static"
	"github.com/plumtree-go/plumtree/transport"
	"github.com/plumtree-go/plumtree/transport/mem"
)

func memNetwork(cfg mem.Config) conformance.MakeNetwork {
	return func(t testing.TB) conformance.ListenFunc {
		n := mem.NewNetwork(cfg)
		return func(addr string) (transport.Transport, error) { return n.Listen(addr) }
	}
}

func TestConformance(t *testing.T) {
	conformance.TestTransport(t, memNetwork(mem.Config{}))
}

// With latency and jitter, frames travel through timers; the stream path
// must stay ordered and the datagram path still deliver.
func TestConformanceWithLatency(t *testing.T) {
	conformance.TestTransport(t, memNetwork(mem.Config{Latency: 200e3, Jitter: 100e3, QueueSize: 64}))
}

func TestConformanceBroadcast(t *testing.T) {
	conformance.TestBroadcast(t, memNetwork(mem.Config{}), static.New[string])
}

// Over the datagram path alone (the stream path hidden), the protocol still
// delivers: small payloads go as datagrams, and loss is repaired by grafts.
func TestConformanceBroadcastDatagramOnly(t *testing.T) {
	conformance.TestBroadcast(t, func(t testing.TB) conformance.ListenFunc {
		n := mem.NewNetwork(mem.Config{})
		return func(addr string) (transport.Transport, error) {
			tr, err := n.Listen(addr)
			if err != nil {
				return nil, err
			}
			return datagramOnly{tr}, nil
		}
	}, static.New[string])
}

// datagramOnly hides the stream path of a mem transport.
type datagramOnly struct{ t *mem.Transport }

func (d datagramOnly) LocalAddr() string                   { return d.t.LocalAddr() }
func (d datagramOnly) Close() error                        { return d.t.Close() }
func (d datagramOnly) MaxDatagramSize() int                { return d.t.MaxDatagramSize() }
func (d datagramOnly) Datagrams() <-chan transport.Message { return d.t.Datagrams() }
func (d datagramOnly) SendDatagram(ctx context.Context, addr string, b []byte) error {
	return d.t.SendDatagram(ctx, addr, b)
}

var _ transport.Datagram = datagramOnly{}

// The in-memory network has no sockets, so every rule runs inside a
// testing/synctest bubble: the after-idle rules leave the links idle for an
// hour of virtual time, at no cost.
func TestConformanceInBubble(t *testing.T) {
	conformance.TestTransport(t, memNetwork(mem.Config{}), conformance.InBubble(), conformance.IdleFor(time.Hour))
}
