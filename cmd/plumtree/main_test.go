package main

import (
	"bytes"
	"strings"
	"testing"
	"testing/synctest"
)

// The demo runs inside a synctest bubble: its pacing and the network's
// latency run on virtual time, so the test is quick and deterministic.
func TestDemoDeliversEverything(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out bytes.Buffer
		if err := demo([]string{"-nodes", "8", "-count", "30", "-rate", "100"}, &out); err != nil {
			t.Fatalf("demo failed: %v\n%s", err, out.String())
		}
		if !strings.Contains(out.String(), "reliability       1.0000") {
			t.Fatalf("demo report does not show full reliability:\n%s", out.String())
		}
	})
}

func TestDemoRejectsBadFlags(t *testing.T) {
	var out bytes.Buffer
	if err := demo([]string{"-nodes", "1"}, &out); err == nil {
		t.Fatal("a one-node demo was accepted")
	}
}
