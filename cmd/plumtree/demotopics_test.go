package main

import (
	"bytes"
	"encoding/json"
	"io"
	"testing"
	"testing/synctest"
)

// The demo's topics setting: every subscriber delivers every broadcast of
// its topics, and no host is sent a frame of a topic it does not
// subscribe to.
func TestDemoTopics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out bytes.Buffer
		if err := demo(t.Context(), []string{"-transport", "mem", "-nodes", "10", "-topics", "6", "-subscribe", "3", "-count", "40", "-rate", "100", "-json"}, &out, io.Discard); err != nil {
			t.Fatalf("demo failed: %v\n%s", err, out.String())
		}
		var r report
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out.String())
		}
		if r.Reliability != 1 || r.Expected == 0 || r.Topics != 6 || r.TopicsPerNode != 3 || r.RefusedFrames != 0 {
			t.Errorf("report %+v", r)
		}
	})
}

func TestDemoTopicsRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-topics", "3", "-transport", "quic"},
		{"-topics", "3", "-transport", "mem", "-subscribe", "4"},
		{"-topics", "-1", "-transport", "mem"},
	} {
		if err := demo(t.Context(), args, io.Discard, io.Discard); err == nil {
			t.Errorf("demo %v was accepted", args)
		}
	}
}
