package memberlist_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/plumtree-go/plumtree/membership"
	plum "github.com/plumtree-go/plumtree/membership/memberlist"
)

// watchdog only breaks a hang: no assertion depends on how fast memberlist
// is, and a healthy run takes a few seconds at most.
const watchdog = 30 * time.Second

type (
	member = membership.Member[string]
	event  = membership.Event[string]
)

// mlConfig is memberlist's local preset on 127.0.0.1 with a port picked by
// the kernel, with probes and gossip made faster so that a crash is detected
// in two or three seconds. Faster probing than this starts to see live nodes
// as failed when -race and a parallel build share two cores: memberlist then
// reports Fail and Join again, correctly for what it saw, but not what the
// tests are about.
func mlConfig(name string) *memberlist.Config {
	c := memberlist.DefaultLocalConfig()
	c.Name = name
	c.BindAddr = "127.0.0.1"
	c.BindPort = 0
	c.ProbeInterval = 400 * time.Millisecond
	c.ProbeTimeout = 200 * time.Millisecond
	c.GossipInterval = 50 * time.Millisecond
	c.SuspicionMult = 3
	c.SuspicionMaxTimeoutMult = 2
	c.PushPullInterval = time.Second
	c.GossipToTheDeadTime = time.Second
	// A node restarted under the same name binds a new port: let it take
	// over its old entry once that was declared dead.
	c.DeadNodeReclaimTime = time.Millisecond
	// The local preset gives a join or push-pull 1 s over TCP; with -race
	// and a build on two cores a join then fails with an i/o timeout now and
	// then. The LAN preset's 10 s is what a slow machine needs.
	c.TCPTimeout = 10 * time.Second
	c.LogOutput = io.Discard // memberlist logs to stderr otherwise
	return c
}

// tnode is one adapter under test and the events read from it so far.
type tnode struct {
	t    *testing.T
	name string
	m    *plum.Membership[string]
	seen []event
}

// start starts node name with broadcast address "bcast-"+name, joining
// join, with cfg adjusted by mod.
func start(t *testing.T, name string, join []string, mod func(*plum.Config[string])) *tnode {
	t.Helper()
	n, err := tryStart(t, name, join, mod)
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	return n
}

func tryStart(t *testing.T, name string, join []string, mod func(*plum.Config[string])) (*tnode, error) {
	cfg := plum.Config[string]{Memberlist: mlConfig(name), Addr: "bcast-" + name, Join: join}
	if mod != nil {
		mod(&cfg)
	}
	m, err := plum.New(cfg)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { m.Shutdown() })
	return &tnode{t: t, name: name, m: m}, nil
}

// addr is the node's memberlist address, for others to join.
func (n *tnode) addr() string { return n.m.Memberlist().LocalNode().Address() }

// waitUntil reads events until done holds for all events read so far.
func (n *tnode) waitUntil(what string, done func([]event) bool) {
	n.t.Helper()
	timeout := time.After(watchdog)
	for !done(n.seen) {
		select {
		case ev, ok := <-n.m.Events():
			if !ok {
				n.t.Fatalf("%s: events closed while waiting for %s; events: %v", n.name, what, n.seen)
			}
			n.seen = append(n.seen, ev)
		case <-timeout:
			n.t.Fatalf("%s: no %s within %v; events: %v", n.name, what, watchdog, n.seen)
		}
	}
}

// waitEvent waits for an event of kind about id (with addr, if not empty).
func (n *tnode) waitEvent(kind membership.EventKind, id, addr string) {
	n.t.Helper()
	n.waitUntil(fmt.Sprintf("%v of %s", kind, id), func(evs []event) bool {
		return slices.ContainsFunc(evs, func(e event) bool {
			return e.Kind == kind && e.Member.ID == id && (addr == "" || e.Member.Addr == addr)
		})
	})
}

// drain reads the rest of the events after Close and checks the channel is
// closed.
func (n *tnode) drain() []event {
	n.t.Helper()
	timeout := time.After(watchdog)
	for {
		select {
		case ev, ok := <-n.m.Events():
			if !ok {
				return n.seen
			}
			n.seen = append(n.seen, ev)
		case <-timeout:
			n.t.Fatalf("%s: events not closed after Close", n.name)
		}
	}
}

// sameEvents compares event lists as multisets, for events about several
// members whose relative order is not defined.
func sameEvents(got, want []event) bool {
	key := func(e event) string { return fmt.Sprintf("%v %s %s", e.Kind, e.Member.ID, e.Member.Addr) }
	g, w := make([]string, len(got)), make([]string, len(want))
	for i, e := range got {
		g[i] = key(e)
	}
	for i, e := range want {
		w[i] = key(e)
	}
	slices.Sort(g)
	slices.Sort(w)
	return slices.Equal(g, w)
}

func ev(kind membership.EventKind, id string) event {
	return event{Kind: kind, Member: member{ID: id, Addr: "bcast-" + id}}
}

func members(ids ...string) []member {
	out := make([]member, len(ids))
	for i, id := range ids {
		out[i] = member{ID: id, Addr: "bcast-" + id}
	}
	return out
}

// logCatcher is a slog handler that passes records whose message contains
// match to a channel, without ever blocking (memberlist's goroutines log
// through it) and without t.Log, which must not be called after a test
// ends.
type logCatcher struct {
	match string
	ch    chan slog.Record
	mu    *sync.Mutex
}

func newLogCatcher(match string) *logCatcher {
	return &logCatcher{match: match, ch: make(chan slog.Record, 64), mu: new(sync.Mutex)}
}

func (h *logCatcher) Enabled(context.Context, slog.Level) bool { return true }
func (h *logCatcher) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logCatcher) WithGroup(string) slog.Handler            { return h }
func (h *logCatcher) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.match) {
		select {
		case h.ch <- r.Clone():
		default:
		}
	}
	return nil
}

// attr returns the string value of attribute key in r.
func attr(r slog.Record, key string) string {
	var v string
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value.String()
			return false
		}
		return true
	})
	return v
}

// nodeRecorder is a memberlist EventDelegate that reports node names on a
// channel without blocking memberlist.
type nodeRecorder struct{ joins chan string }

func newNodeRecorder() *nodeRecorder { return &nodeRecorder{joins: make(chan string, 64)} }

func (r *nodeRecorder) NotifyJoin(n *memberlist.Node) {
	select {
	case r.joins <- n.Name:
	default:
	}
}
func (r *nodeRecorder) NotifyLeave(*memberlist.Node)  {}
func (r *nodeRecorder) NotifyUpdate(*memberlist.Node) {}

func (r *nodeRecorder) waitJoin(t *testing.T, name string) {
	t.Helper()
	timeout := time.After(watchdog)
	for {
		select {
		case got := <-r.joins:
			if got == name {
				return
			}
		case <-timeout:
			t.Fatalf("memberlist never reported %s joining", name)
		}
	}
}
