package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runSimCmd runs `plumtree sim args...` and returns its stdout.
func runSimCmd(t *testing.T, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if err := simCmd(args, &out, &errOut); err != nil {
		t.Fatalf("plumtree sim %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String()
}

// The same seed gives byte-identical JSON, CSV and SVG; another seed does
// not.
func TestSimDeterministic(t *testing.T) {
	for _, sc := range []string{"stable", "failure", "churn", "loss"} {
		args := []string{"-nodes", "200", "-scenario", sc, "-broadcasts", "10", "-warmup", "3",
			"-latency", "normal:10ms,3ms", "-jitter", "1ms", "-seed", "5", "-q"}
		var runs [2]map[string][]byte
		for i := range runs {
			dir := t.TempDir()
			js := runSimCmd(t, append(args, "-json")...)
			runSimCmd(t, append(args, "-csv", filepath.Join(dir, "out.csv"), "-plot", dir)...)
			runs[i] = map[string][]byte{"json": []byte(js)}
			for _, f := range []string{"out.csv", "reliability.svg", "rmr.svg", "ldh.svg"} {
				b, err := os.ReadFile(filepath.Join(dir, f))
				if err != nil {
					t.Fatal(err)
				}
				runs[i][f] = b
			}
		}
		for k, v := range runs[0] {
			if !bytes.Equal(v, runs[1][k]) {
				t.Errorf("%s: two runs with -seed 5 wrote different %s", sc, k)
			}
		}
		other := runSimCmd(t, append(args[:len(args)-3], "-seed", "6", "-q", "-json")...)
		if other == string(runs[0]["json"]) {
			t.Errorf("%s: -seed 5 and -seed 6 gave the same JSON", sc)
		}
	}
}

func TestSimTableAndProgress(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := simCmd([]string{"-nodes", "100", "-broadcasts", "5", "-warmup", "2"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"plumtree sim: 100 nodes", "summary over the measured broadcasts", "plumtree reliability mean 1.0000", "flood    reliability"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	if !strings.Contains(errOut.String(), "broadcast 7/7") || !strings.Contains(errOut.String(), "KiB per node") {
		t.Errorf("progress on stderr lacks the last broadcast or the memory line:\n%s", errOut.String())
	}
}

func TestSimRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-nodes", "1"}, {"-overlay", "ring"}, {"-scenario", "storm"}, {"-latency", "fast"},
		{"-preset", "huge"}, {"-loss", "1.5"}, {"extra"},
		{"-scenario", "partition", "-split", "1"}, {"-scenario", "backlog", "-broadcasts", "10", "-cut-at", "8", "-cut-for", "5"},
		{"-scenario", "senders", "-senders", "-1"}, {"-window", "-1"},
	} {
		var out, errOut bytes.Buffer
		if err := simCmd(append(args, "-q"), &out, &errOut); err == nil {
			t.Errorf("plumtree sim %v was accepted", args)
		}
	}
}

// The fanout and cap flags of plumtree node reach the configuration: caps
// below the fanouts are refused, naming the field.
func TestNodeCapFlags(t *testing.T) {
	err := node(context.Background(), []string{"-listen", "127.0.0.1:0", "-transport", "udp+tcp", "-eager-fanout", "5", "-max-eager-peers", "2"},
		strings.NewReader(""), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "MaxEagerPeers") {
		t.Errorf("-eager-fanout 5 -max-eager-peers 2: %v, want an error naming MaxEagerPeers", err)
	}
}
