package main

import (
	"testing"

	"github.com/plumtree-go/plumtree/internal/leakcheck"
)

// TestMain checks that no goroutine outlives the tests, with time for
// memberlist's and libp2p's own to end (see package leakcheck).
func TestMain(m *testing.M) { leakcheck.Main(m) }
