package zstd_test

import (
	"fmt"
	"testing"

	"github.com/plumtree-go/plumtree/compressor"
	"github.com/plumtree-go/plumtree/conformance"
)

func TestConformance(t *testing.T) {
	for _, level := range levels {
		t.Run(fmt.Sprintf("level%d", level), func(t *testing.T) {
			if raceEnabled && level != 3 {
				// The decoder is the same at every level; the race run
				// checks the presets' level.
				t.Skip("the suite takes seconds per level under -race; checked at every level without it")
			}
			conformance.TestCompressor(t, func() compressor.Compressor { return mustNew(t, level) })
		})
	}
}
