package sim

import (
	"testing"

	"go.uber.org/goleak"
)

// The agreement test starts real runners (goroutines) inside synctest
// bubbles; none may outlive a test.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
