package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
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

// syncBuffer is a bytes.Buffer safe for one writer and a polling reader,
// with a channel that ticks on each write.
type lineWriter struct {
	mu    sync.Mutex
	lines []string
	ch    chan struct{}
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	sc := bufio.NewScanner(bytes.NewReader(p))
	for sc.Scan() {
		w.lines = append(w.lines, sc.Text())
	}
	select {
	case w.ch <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (w *lineWriter) has(s string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, l := range w.lines {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

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
				w.mu.Lock()
				defer w.mu.Unlock()
				for _, l := range w.lines {
					if strings.Contains(l, s) {
						return l
					}
				}
				return ""
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
