package bench

import (
	"context"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
)

// lossyDriver is an in-process system that delivers each broadcast at once
// to every other node, except that its first broadcast from node lose never
// reaches node 0, and with none set it delivers nothing at all.
type lossyDriver struct {
	lose    int // the origin whose first broadcast misses node 0
	nothing bool
}

func (d lossyDriver) Name() string { return "lossy" }

func (d lossyDriver) Start(_ context.Context, cfg StartConfig, deliver func(int, []byte)) (Cluster, error) {
	return &lossyCluster{d: d, n: cfg.Nodes, deliver: deliver, first: map[int]bool{}}, nil
}

type lossyCluster struct {
	d       lossyDriver
	n       int
	deliver func(int, []byte)
	mu      sync.Mutex
	first   map[int]bool // origins that have broadcast
	bytes   uint64
}

func (c *lossyCluster) Publish(_ context.Context, from int, payload []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.d.nothing {
		return nil
	}
	lost := from == c.d.lose && !c.first[from]
	c.first[from] = true
	for i := range c.n {
		if i == from || (lost && i == 0) {
			continue
		}
		c.bytes += uint64(len(payload))
		c.deliver(i, payload)
	}
	return nil
}

func (c *lossyCluster) Wire() Wire {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Wire{Bytes: c.bytes}
}

func (c *lossyCluster) Close() error { return nil }

// TestWarmUpLossIsReportedNotFatal: a system that loses a warm-up delivery
// (memberlist's queue does, now and then) is still measured, and the loss
// is reported; one that delivers nothing fails.
func TestWarmUpLossIsReportedNotFatal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := Workload{Nodes: 4, Size: 64, Rate: 100, Count: 10, Seed: 1}
		res, err := Run(t.Context(), lossyDriver{lose: 2}, w)
		if err != nil {
			t.Fatalf("a lost warm-up delivery stopped the run: %v", err)
		}
		if res.WarmupMissing != 1 {
			t.Errorf("WarmupMissing = %d, want 1", res.WarmupMissing)
		}
		if res.DeliveryRatio != 1 {
			t.Errorf("the measured run delivered %v, want 1", res.DeliveryRatio)
		}
		_, err = Run(t.Context(), lossyDriver{lose: -1, nothing: true}, w)
		if err == nil || !strings.Contains(err.Error(), "0 of 3 deliveries") {
			t.Errorf("a system that delivers nothing: err = %v, want the warm-up to fail", err)
		}
	})
}

// TestColdRunHasNoWarmUp: with Workload.Cold the measured window starts
// with the system's first broadcasts, so a loss that the warm-up would
// absorb shows in the result; RunColdWarm measures that cold window first
// and then a warm one on the same nodes.
func TestColdRunHasNoWarmUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := Workload{Nodes: 4, Size: 64, Rate: 100, Count: 10, Seed: 1, Cold: true}
		res, err := Run(t.Context(), lossyDriver{lose: 2}, w)
		if err != nil {
			t.Fatal(err)
		}
		if res.Start != "cold" || res.WarmupMissing != 0 || res.Deliveries != 29 {
			t.Errorf("cold run: start %q, warm-up missing %d, deliveries %d; want cold, 0, 29 (the first broadcast from node 2 misses node 0 inside the window)",
				res.Start, res.WarmupMissing, res.Deliveries)
		}

		cold, warm, err := RunColdWarm(t.Context(), lossyDriver{lose: 2}, w)
		if err != nil {
			t.Fatal(err)
		}
		if cold.Start != "cold" || cold.Deliveries != 29 {
			t.Errorf("RunColdWarm cold: start %q, deliveries %d; want cold, 29", cold.Start, cold.Deliveries)
		}
		if warm.Start != "warm" || warm.Deliveries != 30 || warm.WarmupMissing != 0 {
			t.Errorf("RunColdWarm warm: start %q, deliveries %d, warm-up missing %d; want warm, 30, 0", warm.Start, warm.Deliveries, warm.WarmupMissing)
		}
	})
}
