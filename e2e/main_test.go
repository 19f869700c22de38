//go:build e2e

package e2e

import (
	"testing"

	"github.com/plumtree-go/plumtree/internal/leakcheck"
)

// TestMain checks that no goroutine (pipe readers, process waiters)
// outlives the tests.
func TestMain(m *testing.M) { leakcheck.Main(m) }
