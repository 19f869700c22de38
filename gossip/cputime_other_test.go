//go:build !unix

package gossip

import "time"

// processCPU is not measured here.
func processCPU() time.Duration { return 0 }
