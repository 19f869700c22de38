package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestDemoDeliversEverything(t *testing.T) {
	var out bytes.Buffer
	if err := demo([]string{"-nodes", "8", "-count", "30", "-rate", "1000"}, &out); err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "reliability       1.0000") {
		t.Fatalf("demo report does not show full reliability:\n%s", out.String())
	}
}
