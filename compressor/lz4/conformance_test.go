package lz4_test

import (
	"fmt"
	"testing"

	"github.com/plumtree-go/plumtree/compressor"
	"github.com/plumtree-go/plumtree/compressor/lz4"
	"github.com/plumtree-go/plumtree/conformance"
)

func TestConformance(t *testing.T) {
	for _, level := range []int{lz4.FastLevel, 1, lz4.MaxLevel} {
		t.Run(fmt.Sprintf("level%d", level), func(t *testing.T) {
			if raceEnabled && level != lz4.FastLevel {
				// The decoder is the same at every level.
				t.Skip("the suite takes seconds per level under -race; checked at every level without it")
			}
			conformance.TestCompressor(t, func() compressor.Compressor { return mustNew(t, level) })
		})
	}
}
