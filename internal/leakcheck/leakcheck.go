// Package leakcheck checks that no goroutine outlives a package's tests,
// with time for memberlist's to end.
//
// memberlist's Shutdown returns before all of its goroutines have exited:
// it closes a channel that its listeners, handlers and tickers watch, without
// waiting for them, and a probe already running (probeNode) waits for its
// ack or for the end of the probe interval. goleak.VerifyTestMain gives
// goroutines well under a second and reported such a probe as a leak in
// about one run out of three. Main repeats the check for up to about 20
// seconds before a goroutine still running counts as a leak, and ignores
// none: the bound only breaks a real leak, and a clean run passes on the
// first or second try.
package leakcheck

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// Main runs the tests, then the leak check, and exits.
func Main(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: goroutines still running after the tests: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// Find is goleak.Find, repeated for up to about 20 seconds while it finds
// goroutines.
func Find() error {
	var err error
	for range 40 {
		if err = goleak.Find(); err == nil {
			return nil
		}
	}
	return err
}
