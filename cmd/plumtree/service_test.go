package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/plumtree-go/plumtree/gossip"
	"github.com/plumtree-go/plumtree/transport/tcp"
	"github.com/plumtree-go/plumtree/transport/udp"
	"github.com/plumtree-go/plumtree/transport/udptcp"
)

// runMain runs this test binary as the plumtree command with args and
// returns its exit status and standard error.
func runMain(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // a watchdog
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), "PLUMTREE_TEST_MAIN=1")
	cmd.Stdin = strings.NewReader("")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, stderr.String()
	case errors.As(err, &exit) && ctx.Err() == nil:
		return exit.ExitCode(), stderr.String()
	}
	t.Fatalf("plumtree %q: %v\n%s", args, err, stderr.String())
	return 0, ""
}

// Every subcommand follows the same conventions: -h describes it and exits
// 0, a bad flag or value exits 2 with the reason, an unknown command says
// so and exits 2.
func TestCLIConventions(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"demo", "node", "sim", "bench"} {
		code, out := runMain(t, cmd, "-h")
		if code != 0 || !strings.Contains(out, "usage: plumtree "+cmd+" [flags]") || !strings.Contains(out, "flags:") {
			t.Errorf("plumtree %s -h: exit %d, want 0 with a description\n%s", cmd, code, out)
		}
		if desc := strings.SplitN(out, "\n", 4); len(desc) < 4 || len(strings.TrimSpace(desc[2])) < 20 {
			t.Errorf("plumtree %s -h: no description after the usage line\n%s", cmd, out)
		}
		code, out = runMain(t, cmd, "-bogus")
		if code != 2 || !strings.Contains(out, "flag provided but not defined: -bogus") {
			t.Errorf("plumtree %s -bogus: exit %d, want 2 with the reason\n%s", cmd, code, out)
		}
		code, out = runMain(t, cmd, "stray")
		if code != 2 || !strings.Contains(out, "unexpected arguments") {
			t.Errorf("plumtree %s stray: exit %d, want 2 with the reason\n%s", cmd, code, out)
		}
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"bogus"}, 2, `unknown command "bogus"`},
		{nil, 2, "usage: plumtree <command>"},
		{[]string{"-h"}, 0, ""},
		{[]string{"node", "-transport", "mem"}, 2, `unknown transport "mem" (want udp+tcp, tcp, quic)`},
		{[]string{"demo", "-nodes", "1"}, 2, "need -nodes >= 2"},
		{[]string{"sim", "-preset", "fast"}, 2, `unknown preset "fast"`},
		{[]string{"bench", "-nodes", "1"}, 2, "nodes"},
		{[]string{"node", "-listen", ":0", "-transport", "udp+tcp"}, 1, "-advertise"},
	} {
		code, out := runMain(t, c.args...)
		if code != c.code || !strings.Contains(out, c.want) {
			t.Errorf("plumtree %q: exit %d, want %d with %q\n%s", c.args, code, c.code, c.want, out)
		}
	}
}

// TestNodeService runs two nodes whose standard input is empty (as a
// service's /dev/null): they keep running; one publishes through its HTTP
// API, the other streams the delivery; members, peers, health and metrics
// answer, and /metrics has every metric the tuning guide names.
func TestNodeService(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	deadline := time.Now().Add(2 * time.Minute) // the watchdog of every wait here
	type running struct {
		stat *lineWriter
		done chan error
		api  string
	}
	start := func(name, join string) *running {
		r := &running{stat: &lineWriter{ch: make(chan struct{}, 1)}, done: make(chan error, 1)}
		args := []string{"-name", name, "-listen", "127.0.0.1:0", "-cluster-listen", "127.0.0.1:0", "-transport", "udp+tcp", "-http", "127.0.0.1:0"}
		if join != "" {
			args = append(args, "-join", join)
		}
		go func() { r.done <- node(ctx, args, strings.NewReader(""), io.Discard, r.stat) }()
		for !r.stat.has("HTTP API on http://") {
			select {
			case <-r.stat.ch:
			case err := <-r.done:
				t.Fatalf("node %s exited: %v %q", name, err, r.stat.lines)
			case <-time.After(time.Until(deadline)):
				t.Fatalf("node %s: no HTTP API: %q", name, r.stat.lines)
			}
		}
		r.api = "http://" + fieldAfter(r.stat, "HTTP API on http://")
		return r
	}
	a := start("a", "")
	b := start("b", fieldAfter(a.stat, "cluster on "))
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	defer client.CloseIdleConnections() // no keep-alive outlives the test

	get := func(r *running, path string, v any) string {
		t.Helper()
		resp, err := client.Get(r.api + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s %s", path, resp.Status, body)
		}
		if v != nil {
			if err := json.Unmarshal(body, v); err != nil {
				t.Fatalf("GET %s: %v\n%s", path, err, body)
			}
		}
		return string(body)
	}
	// b's subscription, open before anything is published.
	req, _ := http.NewRequestWithContext(ctx, "GET", b.api+"/subscribe", nil)
	sub, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Body.Close()
	events := make(chan event, 16)
	go func() {
		sc := bufio.NewScanner(sub.Body)
		for sc.Scan() {
			var e event
			if json.Unmarshal(sc.Bytes(), &e) == nil {
				events <- e
			}
		}
	}()
	// A second subscriber on b, with server-sent events.
	sseReq, _ := http.NewRequestWithContext(ctx, "GET", b.api+"/subscribe", nil)
	sseReq.Header.Set("Accept", "text/event-stream")
	sse, err := client.Do(sseReq)
	if err != nil {
		t.Fatal(err)
	}
	defer sse.Body.Close()
	if ct := sse.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("SSE subscription's Content-Type %q", ct)
	}
	sseEvents := make(chan event, 16)
	go func() {
		sc := bufio.NewScanner(sse.Body)
		for sc.Scan() {
			var e event
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok && json.Unmarshal([]byte(data), &e) == nil {
				sseEvents <- e
			}
		}
	}()
	// Publish on a until b streams it (until both memberships have the
	// other, a message may go nowhere).
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var got event
	for got.Origin == "" {
		resp, err := client.Post(a.api+"/publish", "text/plain", strings.NewReader("hello over http"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST /publish: %s", resp.Status)
		}
		select {
		case got = <-events:
		case <-tick.C:
		case <-time.After(time.Until(deadline)):
			t.Fatalf("b streamed nothing; status %q", b.stat.lines)
		}
	}
	if got.Origin != "a" || got.Text != "hello over http" || string(got.Data) != "hello over http" || got.Hops != 1 {
		t.Errorf("streamed %+v", got)
	}
	select {
	case e := <-sseEvents:
		if e.Origin != "a" || e.Text != "hello over http" {
			t.Errorf("server-sent event %+v", e)
		}
	case <-time.After(time.Until(deadline)):
		t.Fatal("no server-sent event")
	}
	resp, err := client.Post(a.api+"/publish?topic=x", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("POST /publish?topic=x: %s; want 400 (no topics yet)", resp.Status)
	}

	var members []struct{ ID, Addr string }
	get(a, "/members", &members)
	var ids []string
	for _, m := range members {
		ids = append(ids, m.ID)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"a", "b"}) {
		t.Errorf("/members: %+v", members)
	}
	var peers struct{ Eager, Lazy []string }
	get(a, "/peers", &peers)
	if !slices.Contains(append(peers.Eager, peers.Lazy...), "b") {
		t.Errorf("/peers: %+v", peers)
	}
	var health struct {
		Status string
		ID     string
	}
	get(b, "/health", &health)
	if health.Status != "ok" || health.ID != "b" {
		t.Errorf("/health: %+v", health)
	}
	metrics := get(b, "/metrics", nil)
	guide, err := os.ReadFile("../../docs/TUNING.md")
	if err != nil {
		t.Fatal(err)
	}
	names := regexp.MustCompile(`plumtree_[a-z_]+[a-z]`).FindAllString(string(guide), -1)
	if len(names) < 20 {
		t.Fatalf("found only %d metric names in docs/TUNING.md", len(names))
	}
	for _, n := range names {
		if !strings.Contains(metrics, "# TYPE "+n+" ") {
			t.Errorf("/metrics lacks %s, which docs/TUNING.md names", n)
		}
	}
	if !regexp.MustCompile(`(?m)^plumtree_messages_delivered_total [1-9]`).MatchString(metrics) {
		t.Errorf("/metrics counts no delivery:\n%s", metrics)
	}

	// Standard input ended long ago: the nodes still run, until cancelled.
	for _, r := range []*running{a, b} {
		select {
		case err := <-r.done:
			t.Fatalf("a node exited at the end of its input: %v", err)
		default:
		}
	}
	cancel()
	for _, r := range []*running{a, b} {
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("node: %v", err)
			}
		case <-time.After(time.Minute):
			t.Fatal("a node did not leave within a minute of its cancellation")
		}
	}
}

// -http binds loopback unless an address says otherwise.
func TestHTTPListenAddr(t *testing.T) {
	for in, want := range map[string]string{
		":8080": "127.0.0.1:8080", "8080": "127.0.0.1:8080", "0.0.0.0:8080": "0.0.0.0:8080",
		"10.0.0.5:8080": "10.0.0.5:8080", "[::1]:8080": "[::1]:8080",
	} {
		if got, err := httpListenAddr(in); err != nil || got != want {
			t.Errorf("-http %s binds %q (%v), want %q", in, got, err, want)
		}
	}
}

// The refusal report says only what it has to: nothing when nothing was
// refused, and no counter at zero.
func TestReportRefusedOnlyNonZero(t *testing.T) {
	tr, err := udptcp.Listen("127.0.0.1:0", udp.Config{}, tcp.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	var b strings.Builder
	reportRefused(&b, "a", tr, func() (gossip.Stats, error) { return gossip.Stats{}, nil })
	if b.String() != "" {
		t.Errorf("nothing refused, yet: %q", b.String())
	}
	reportRefused(&b, "a", tr, func() (gossip.Stats, error) { return gossip.Stats{DecodeErrors: 3}, nil })
	if got := b.String(); got != "node a: refused: gossip 3 unreadable or unauthenticated frames\n" {
		t.Errorf("report %q", got)
	}
}
