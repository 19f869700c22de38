package sim

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/plumtree-go/plumtree/gossip"
)

// TopicsConfig describes a run of many topics (package topic) on one
// cluster: each of Nodes nodes subscribes to PerNode of Topics topics at
// random, and each broadcast goes to a random topic (one with at least two
// subscribers) from one of its subscribers.
//
// In package topic each topic is a Plumtree of its own among its
// subscribers, and in the simulator links have no bandwidth, so topics
// share nothing here: the run is one Run per topic, on a cluster of the
// topic's subscribers with the full overlay (a topic's view is every
// subscriber the host knows), and its measures are per topic. The
// subscription announcements are not simulated: each topic starts with
// its subscribers known to each other.
type TopicsConfig struct {
	// Config is the cluster and the traffic, as for Run: Nodes, Engine
	// (default gossip.DefaultConfig: topics are small groups), Latency,
	// Jitter, Loss, PayloadSize, Interval (between a topic's broadcasts),
	// Seed. Broadcasts is the total over all topics (default 1000).
	// Warmup is per topic (default 3 per subscriber, since trees are per
	// origin). Scenario must be Stable or Loss; Overlay is full.
	Config
	// Topics is how many topics there are (default 100); PerNode how many
	// each node subscribes to (default 10).
	Topics, PerNode int
}

// TopicResult is one topic's run.
type TopicResult struct {
	Topic       int     `json:"topic"`
	Subscribers int     `json:"subscribers"`
	Broadcasts  int     `json:"broadcasts"`
	Summary     Summary `json:"summary"`
}

// TopicsResult is a run of many topics.
type TopicsResult struct {
	// Topics has one entry per topic that had measured broadcasts.
	Topics []TopicResult `json:"topics"`
	// Broadcasts counts the measured broadcasts over all topics.
	Broadcasts int `json:"broadcasts"`
	// ReliabilityMin is the worst reliability of any measured broadcast;
	// RMRMean the mean of the topics' mean RMR, RMRMax the worst topic's
	// mean RMR; LDHMax the largest last delivery hop.
	ReliabilityMin float64 `json:"reliability_min"`
	RMRMean        float64 `json:"rmr_mean"`
	RMRMax         float64 `json:"rmr_max"`
	LDHMax         int     `json:"ldh_max"`
}

// RunTopics runs tc: the subscriptions, then one Run per topic.
func RunTopics(tc TopicsConfig) (*TopicsResult, error) {
	if tc.Nodes == 0 {
		tc.Nodes = 50
	}
	if tc.Topics == 0 {
		tc.Topics = 100
	}
	if tc.PerNode == 0 {
		tc.PerNode = 10
	}
	if tc.Broadcasts == 0 {
		tc.Broadcasts = 1000
	}
	if tc.Engine == nil {
		e := gossip.DefaultConfig()
		tc.Engine = &e
	}
	if tc.Scenario == "" {
		tc.Scenario = Stable
	}
	if tc.Topics < 1 || tc.PerNode < 1 || tc.PerNode > tc.Topics || tc.Nodes < 2 || tc.Broadcasts < 1 {
		return nil, fmt.Errorf("sim: topics: need Nodes >= 2, Topics >= 1, 1 <= PerNode <= Topics, Broadcasts >= 1")
	}
	if tc.Scenario != Stable && tc.Scenario != Loss {
		return nil, fmt.Errorf("sim: topics: scenario %q is not supported (stable or loss)", tc.Scenario)
	}
	rng := rand.New(rand.NewPCG(tc.Seed, 0x70c1c5))
	subs := make([]int, tc.Topics)
	for range tc.Nodes {
		for _, k := range rng.Perm(tc.Topics)[:tc.PerNode] {
			subs[k]++
		}
	}
	var live []int
	for k, n := range subs {
		if n >= 2 {
			live = append(live, k)
		}
	}
	if len(live) == 0 {
		return nil, errors.New("sim: topics: no topic has two subscribers")
	}
	per := make([]int, tc.Topics)
	for range tc.Broadcasts {
		per[live[rng.IntN(len(live))]]++
	}
	res := &TopicsResult{ReliabilityMin: 1}
	for _, k := range live {
		if per[k] == 0 {
			continue
		}
		cfg := tc.Config
		cfg.Nodes, cfg.Overlay, cfg.Broadcasts = subs[k], OverlayFull, per[k]
		cfg.Seed = tc.Seed ^ (uint64(k)+1)*0x9e3779b97f4a7c15
		if cfg.Warmup == 0 {
			cfg.Warmup = 3 * subs[k]
		}
		cfg.Progress = nil
		r, err := Run(cfg)
		if err != nil {
			return nil, fmt.Errorf("sim: topic %d (%d subscribers): %w", k, subs[k], err)
		}
		s := r.Summary
		res.Topics = append(res.Topics, TopicResult{Topic: k, Subscribers: subs[k], Broadcasts: per[k], Summary: s})
		res.Broadcasts += s.Measured
		res.ReliabilityMin = min(res.ReliabilityMin, s.ReliabilityMin)
		res.RMRMean += s.RMRMean
		res.RMRMax = max(res.RMRMax, s.RMRMean)
		res.LDHMax = max(res.LDHMax, s.LDHMax)
	}
	res.RMRMean /= float64(len(res.Topics))
	return res, nil
}
