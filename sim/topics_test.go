package sim

import (
	"testing"

	"github.com/plumtree-go/plumtree/internal/watchdog"
)

// The scale in the simulator: 50 nodes, 100 topics, 10 per node,
// 1,000 broadcasts over them: every broadcast reaches every subscriber of
// its topic, and per-topic RMR stays at or under 0.05 after the warm-up.
func TestTopics(t *testing.T) {
	r, err := RunTopics(TopicsConfig{Config: Config{Nodes: 50, Seed: 20}, Topics: 100, PerNode: 10})
	if err != nil {
		t.Fatal(err)
	}
	if r.Broadcasts != 1000 {
		t.Errorf("%d measured broadcasts, want 1000", r.Broadcasts)
	}
	if r.ReliabilityMin != 1 {
		t.Errorf("worst reliability %v, want 1", r.ReliabilityMin)
	}
	if r.RMRMax > 0.05 {
		t.Errorf("worst topic's RMR %.3f, want <= 0.05", r.RMRMax)
	}
	t.Logf("%d topics with broadcasts, %d broadcasts: reliability min %v, per-topic RMR mean %.4f max %.4f, LDH max %d",
		len(r.Topics), r.Broadcasts, r.ReliabilityMin, r.RMRMean, r.RMRMax, r.LDHMax)
}

func TestTopicsRejects(t *testing.T) {
	for _, tc := range []TopicsConfig{
		{Topics: 3, PerNode: 4},
		{Config: Config{Scenario: Failure}},
	} {
		if _, err := RunTopics(tc); err == nil {
			t.Errorf("RunTopics(%+v) was accepted", tc)
		}
	}
}

// A cluster smaller than the fanout: the flood graph links everyone (it
// used to look for more neighbours than there are nodes, for ever).
func TestClusterSmallerThanFanout(t *testing.T) {
	watchdog.Test(t, func(t *testing.T) {
		for _, n := range []int{2, 3, 4} {
			r, err := Run(Config{Nodes: n, Overlay: OverlayFull, Broadcasts: 20, Seed: 5})
			if err != nil {
				t.Fatal(err)
			}
			if s := r.Summary; s.ReliabilityMin != 1 {
				t.Errorf("%d nodes: reliability %v, want 1", n, s.ReliabilityMin)
			}
		}
	})
}
