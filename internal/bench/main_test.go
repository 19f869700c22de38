package bench

import (
	"testing"

	"github.com/plumtree-go/plumtree/internal/leakcheck"
)

// TestMain checks that no goroutine outlives the tests, with time for
// memberlist's own to end (see package leakcheck).
func TestMain(m *testing.M) { leakcheck.Main(m) }
