package compressor_test

import (
	"testing"

	"github.com/plumtree-go/plumtree/compressor"
	"github.com/plumtree-go/plumtree/conformance"
)

func TestConformanceIdentity(t *testing.T) {
	conformance.TestCompressor(t, compressor.Identity)
}
