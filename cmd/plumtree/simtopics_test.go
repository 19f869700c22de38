package main

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

func TestSimTopics(t *testing.T) {
	var out bytes.Buffer
	if err := simCmd([]string{"-nodes", "20", "-topics", "10", "-subscribe", "3", "-broadcasts", "100", "-q"}, &out, io.Discard); err != nil {
		t.Fatalf("sim -topics: %v\n%s", err, out.String())
	}
	for _, want := range []string{"100 measured broadcasts", "reliability min   1.0000", "RMR per topic"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the report lacks %q:\n%s", want, out.String())
		}
	}
	if err := simCmd([]string{"-topics", "3", "-subscribe", "4", "-q"}, io.Discard, io.Discard); err == nil {
		t.Error("-subscribe over -topics was accepted")
	}
}
