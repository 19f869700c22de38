package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/plumtree-go/plumtree/internal/leakcheck"
)

// The demo on the in-memory network runs inside a synctest bubble: its
// pacing and the network's latency run on virtual time.
func TestDemoMem(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out bytes.Buffer
		if err := demo(t.Context(), []string{"-transport", "mem", "-nodes", "8", "-count", "30", "-rate", "100"}, &out, io.Discard); err != nil {
			t.Fatalf("demo failed: %v\n%s", err, out.String())
		}
		for _, want := range []string{"reliability       1.0000", "RMR", "last delivery hop", "latency", "on the wire", "grafts"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("the report lacks %q:\n%s", want, out.String())
			}
		}
	})
}

func TestDemoJSON(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out bytes.Buffer
		if err := demo(t.Context(), []string{"-transport", "mem", "-nodes", "5", "-count", "10", "-json", "-compressor", "zstd", "-size", "2000"}, &out, io.Discard); err != nil {
			t.Fatalf("demo failed: %v\n%s", err, out.String())
		}
		var r report
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out.String())
		}
		if r.Reliability != 1 || r.Deliveries != 40 || r.Nodes != 5 || r.Transport != "mem" {
			t.Errorf("report %+v", r)
		}
		// The payload is text: zstd sends fewer bytes than it delivers.
		if r.WirePerPayload >= 1 {
			t.Errorf("with zstd, %.2f wire bytes per payload byte", r.WirePerPayload)
		}
	})
}

// TestDemoSockets runs the demo as the README's first command does, on
// loopback sockets with memberlist, smaller.
func TestDemoSockets(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			var out bytes.Buffer
			if err := demo(t.Context(), []string{"-transport", tr, "-nodes", "4", "-count", "10", "-rate", "100"}, &out, io.Discard); err != nil {
				t.Fatalf("demo failed: %v\n%s", err, out.String())
			}
			if !strings.Contains(out.String(), "reliability       1.0000") {
				t.Errorf("report:\n%s", out.String())
			}
		})
	}
}

func TestDemoRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-nodes", "1"},
		{"-transport", "carrier-pigeon"},
		{"-preset", "fast"},
		{"-compressor", "rar"},
		{"-loss", "0.1"},
	} {
		if err := demo(t.Context(), args, io.Discard, io.Discard); err == nil {
			t.Errorf("demo %v was accepted", args)
		}
	}
}

// lineWriter collects the lines written to it, safe for a writer and
// polling readers, with a channel that ticks on each write.
type lineWriter struct {
	mu      sync.Mutex
	lines   []string
	stamps  []time.Time // when each line's end was written
	partial []byte      // the start of a line whose end has not been written yet
	ch      chan struct{}
}

// Write appends the complete lines in p; a line split across writes is
// kept until its newline arrives.
func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		w.lines = append(w.lines, string(w.partial[:i]))
		w.stamps = append(w.stamps, time.Now())
		w.partial = w.partial[i+1:]
	}
	if len(w.partial) == 0 {
		w.partial = nil
	}
	select {
	case w.ch <- struct{}{}:
	default:
	}
	return len(p), nil
}

// first returns the first line that contains s.
func (w *lineWriter) first(s string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, l := range w.lines {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// count returns how many lines contain both a and b.
func (w *lineWriter) count(a, b string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, l := range w.lines {
		if strings.Contains(l, a) && strings.HasSuffix(l, b) {
			n++
		}
	}
	return n
}

func (w *lineWriter) has(s string) bool { return w.first(s) != "" }

// TestNode runs two node commands in this process: a line typed into one
// is printed by the other, with its origin and hop count; cancelling the
// context (as SIGINT does) makes them leave.
func TestNode(t *testing.T) {
	for _, tr := range []string{"udp+tcp", "quic"} {
		t.Run(tr, func(t *testing.T) {
			dir := t.TempDir()
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			type running struct {
				in   *io.PipeWriter
				out  *lineWriter
				stat *lineWriter
				done chan error
			}
			start := func(name string, join string) *running {
				r := &running{out: &lineWriter{ch: make(chan struct{}, 1)}, stat: &lineWriter{ch: make(chan struct{}, 1)}, done: make(chan error, 1)}
				pr, pw := io.Pipe()
				r.in = pw
				args := []string{"-name", name, "-listen", "127.0.0.1:0", "-cluster-listen", "127.0.0.1:0", "-transport", tr, "-dev-tls", dir}
				if tr == "udp+tcp" {
					args = args[:len(args)-2]
				}
				if join != "" {
					args = append(args, "-join", join)
				}
				go func() { r.done <- node(ctx, args, pr, r.out, r.stat) }()
				return r
			}
			waitFor := func(w *lineWriter, s string) string {
				t.Helper()
				timeout := time.After(time.Minute)
				for !w.has(s) {
					select {
					case <-w.ch:
					case <-timeout:
						t.Fatalf("no line with %q in %q", s, w.lines)
					}
				}
				return w.first(s)
			}
			a := start("alpha", "")
			line := waitFor(a.stat, "cluster on ")
			seed := strings.Fields(line[strings.Index(line, "cluster on ")+len("cluster on "):])[0]
			seed = strings.TrimSuffix(seed, ";")
			b := start("beta", seed)
			waitFor(b.stat, "cluster on ")
			// Until beta's membership has alpha and alpha's has beta, a
			// line may go nowhere: type until beta prints one.
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			timeout := time.After(time.Minute)
			for !b.out.has("alpha (hops 1): hello from alpha") {
				if _, err := io.WriteString(a.in, "hello from alpha\n"); err != nil {
					t.Fatal(err)
				}
				select {
				case <-tick.C:
				case <-b.out.ch:
				case <-timeout:
					t.Fatalf("beta printed %q", b.out.lines)
				}
			}
			io.WriteString(b.in, "and beta answers\n")
			waitFor(a.out, "beta (hops 1): and beta answers")
			cancel()
			for _, r := range []*running{a, b} {
				if err := <-r.done; err != nil {
					t.Errorf("node: %v", err)
				}
				r.in.Close()
			}
		})
	}
}

// TestMain runs main itself when PLUMTREE_TEST_MAIN is set (so that a test
// can start this binary as `plumtree node` processes), and otherwise runs
// the tests and checks that no goroutine outlives them, with time for
// memberlist's own to end (see package leakcheck).
func TestMain(m *testing.M) {
	if os.Getenv("PLUMTREE_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	if mode := os.Getenv("PLUMTREE_TEST_INTRUDER"); mode != "" {
		os.Exit(intruder(mode)) // see security_test.go
	}
	leakcheck.Main(m)
}

// TestNodeProcesses starts three `plumtree node` processes on loopback,
// joins them, types lines into each, and checks that every node prints
// every line of the others exactly once; then SIGINT makes each leave.
func TestNodeProcesses(t *testing.T) {
	dir := t.TempDir()
	start := func(name, join string) *secProc {
		args := []string{"node", "-name", name, "-listen", "127.0.0.1:0", "-cluster-listen", "127.0.0.1:0", "-dev-tls", dir}
		if join != "" {
			args = append(args, "-join", join)
		}
		return startSecProc(t, name, []string{"PLUMTREE_TEST_MAIN=1"}, args...)
	}
	var procs []*secProc
	wait := func(w *lineWriter, what string, ok func() bool) {
		t.Helper()
		timeout := time.After(2 * time.Minute)
		for !ok() {
			select {
			case <-w.ch:
			case <-timeout:
				for _, p := range procs { // every node's view, not only the one waited on
					p.status.mu.Lock()
					t.Logf("node %s status: %q", p.name, p.status.lines)
					p.status.mu.Unlock()
				}
				t.Fatalf("waiting for %s", what)
			}
		}
	}
	a := start("a", "")
	procs = []*secProc{a}
	wait(a.status, "a to listen", func() bool { return a.status.has("cluster on ") })
	seed := fieldAfter(a.status, "cluster on ")
	b, c := start("b", seed), start("c", seed)
	procs = []*secProc{a, b, c}
	for _, p := range procs {
		wait(p.status, p.name+" to see 3 members", func() bool { return p.status.has("members: 3 ") })
	}
	for _, p := range procs {
		for i := range 3 {
			fmt.Fprintf(p.in, "line %d from %s\n", i, p.name)
		}
	}
	for _, p := range procs {
		for _, q := range procs {
			if q == p {
				continue
			}
			for i := range 3 {
				want := fmt.Sprintf("%s (hops ", q.name)
				text := fmt.Sprintf("line %d from %s", i, q.name)
				wait(p.out, p.name+" to print "+text, func() bool { return p.out.count(want, text) >= 1 })
			}
		}
	}
	for _, p := range procs {
		if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range procs {
		if err := p.cmd.Wait(); err != nil {
			t.Errorf("node %s: %v\n%q", p.name, err, p.status.lines)
		}
		if !p.status.has("leaving") {
			t.Errorf("node %s did not say it was leaving: %q", p.name, p.status.lines)
		}
		// Every line of the others exactly once, none of its own.
		for _, q := range procs {
			for i := range 3 {
				text := fmt.Sprintf("line %d from %s", i, q.name)
				want := 1
				if q == p {
					want = 0
				}
				if got := p.out.count(q.name+" (hops ", text); got != want {
					t.Errorf("node %s printed %q %d times, want %d", p.name, text, got, want)
				}
			}
		}
	}
}
