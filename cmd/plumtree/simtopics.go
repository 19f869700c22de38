package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/plumtree-go/plumtree/internal/cli"
	"github.com/plumtree-go/plumtree/sim"
)

// simTopics runs `plumtree sim -topics N`: one simulated Plumtree per topic
// among its subscribers (sim.RunTopics), and prints the per-topic
// measures.
func simTopics(tc sim.TopicsConfig, jsonOut bool, out io.Writer) error {
	if tc.Topics < 1 || tc.PerNode < 1 || tc.PerNode > tc.Topics {
		return cli.Usagef("need -topics >= 1 and 1 <= -subscribe <= -topics")
	}
	r, err := sim.RunTopics(tc)
	if err != nil {
		return err
	}
	if jsonOut {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	fmt.Fprintf(out, "%d nodes, %d topics, %d per node: %d measured broadcasts on %d topics\n", tc.Nodes, tc.Topics, tc.PerNode, r.Broadcasts, len(r.Topics))
	fmt.Fprintf(out, "reliability min   %.4f\n", r.ReliabilityMin)
	fmt.Fprintf(out, "RMR per topic     mean %.4f  worst %.4f\n", r.RMRMean, r.RMRMax)
	fmt.Fprintf(out, "last delivery hop max %d\n", r.LDHMax)
	return nil
}
