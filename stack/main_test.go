package stack_test

import (
	"testing"

	"github.com/plumtree-go/plumtree/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }
