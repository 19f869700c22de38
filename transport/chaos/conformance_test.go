package chaos_test

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/plumtree-go/plumtree/conformance"
	"github.com/plumtree-go/plumtree/membership/static"
	"github.com/plumtree-go/plumtree/transport"
	"github.com/plumtree-go/plumtree/transport/chaos"
	"github.com/plumtree-go/plumtree/transport/mem"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// chaosNetwork wraps every transport of a fresh mem network with a fresh
// chaos network built from cfg.
func chaosNetwork(cfg chaos.Config) conformance.MakeNetwork {
	return func(t testing.TB) conformance.ListenFunc {
		n := mem.NewNetwork(mem.Config{})
		cn, err := chaos.New(cfg)
		if err != nil {
			t.Fatalf("chaos.New: %v", err)
		}
		return func(addr string) (transport.Transport, error) {
			tr, err := n.Listen(addr)
			if err != nil {
				return nil, err
			}
			return cn.Wrap(tr)
		}
	}
}

// With no rules, a wrapped transport is the inner one: it keeps every
// capability and passes the whole suite.
func TestConformance(t *testing.T) {
	conformance.TestTransport(t, chaosNetwork(chaos.Config{Seed: 1}))
}

// With a delay and jitter on both paths, datagrams go through timers and
// frames through the per-link delay queue and its goroutine: the stream path
// must stay whole and ordered, apply backpressure, report an unreachable
// peer (on a later call) and leave no goroutine after Close.
func TestConformanceWithDelay(t *testing.T) {
	conformance.TestTransport(t, chaosNetwork(chaos.Config{
		Seed:        2,
		StreamQueue: 16,
		Rules:       []chaos.Rule{{Delay: 100 * time.Microsecond, Jitter: 200 * time.Microsecond, JitterDistribution: chaos.Exponential}},
	}))
}

// The library's own nodes work over a wrapped transport.
func TestConformanceBroadcast(t *testing.T) {
	conformance.TestBroadcast(t, chaosNetwork(chaos.Config{Seed: 3}), static.New[string])
}
