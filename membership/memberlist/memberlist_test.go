package memberlist_test

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/plumtree-go/plumtree/membership"
	plum "github.com/plumtree-go/plumtree/membership/memberlist"
)

// TestLifecycle: three nodes form a cluster from one seed; each reports the
// others joining once, with their broadcast addresses; a node that closes is
// reported as leaving, one that stops without leaving as failed; nothing is
// reported about the local node; Events is closed by Close.
func TestLifecycle(t *testing.T) {
	a := start(t, "a", nil, nil)
	b := start(t, "b", []string{a.addr()}, nil)
	c := start(t, "c", []string{a.addr()}, nil)
	nodes := []*tnode{a, b, c}
	for _, n := range nodes {
		for _, o := range nodes {
			if o != n {
				n.waitEvent(membership.Join, o.name, "bcast-"+o.name)
			}
		}
		if got := n.m.Members(); !slices.Equal(got, members("a", "b", "c")) {
			t.Errorf("%s: Members() = %v", n.name, got)
		}
		if got, want := n.m.Self(), (member{ID: n.name, Addr: "bcast-" + n.name}); got != want {
			t.Errorf("%s: Self() = %v, want %v", n.name, got, want)
		}
	}

	if err := c.m.Close(); err != nil {
		t.Fatalf("close c: %v", err)
	}
	a.waitEvent(membership.Leave, "c", "bcast-c")
	b.waitEvent(membership.Leave, "c", "bcast-c")
	if got := a.m.Members(); !slices.Equal(got, members("a", "b")) {
		t.Errorf("a: Members() after c left = %v", got)
	}

	if err := b.m.Shutdown(); err != nil {
		t.Fatalf("shutdown b: %v", err)
	}
	a.waitEvent(membership.Fail, "b", "bcast-b")
	if got := a.m.Members(); !slices.Equal(got, members("a")) {
		t.Errorf("a: Members() after b failed = %v", got)
	}
	if err := a.m.Close(); err != nil {
		t.Fatalf("close a: %v", err)
	}
	if err := a.m.Close(); err != nil {
		t.Fatalf("second close of a: %v", err)
	}

	want := map[string][]event{
		"a": {ev(membership.Join, "b"), ev(membership.Join, "c"), ev(membership.Leave, "c"), ev(membership.Fail, "b")},
		"b": {ev(membership.Join, "a"), ev(membership.Join, "c"), ev(membership.Leave, "c")},
		"c": {ev(membership.Join, "a"), ev(membership.Join, "b")},
	}
	for _, n := range nodes {
		got := n.drain()
		if !sameEvents(got, want[n.name]) {
			t.Errorf("%s: events %v, want %v in some order", n.name, got, want[n.name])
		}
		// Per member, the join comes first.
		for _, e := range got {
			if e.Kind != membership.Join {
				if i := slices.Index(got, ev(membership.Join, e.Member.ID)); i < 0 || i > slices.Index(got, e) {
					t.Errorf("%s: %v before the join of %s: %v", n.name, e.Kind, e.Member.ID, got)
				}
			}
		}
	}
}

// TestEncryption: memberlist's keyring passes through: nodes with the same
// key form a cluster, a node with another key cannot join it.
func TestEncryption(t *testing.T) {
	key := func(b byte) func(*plum.Config[string]) {
		return func(c *plum.Config[string]) { c.Memberlist.SecretKey = bytes.Repeat([]byte{b}, 32) }
	}
	a := start(t, "a", nil, key(1))
	b := start(t, "b", []string{a.addr()}, key(1))
	a.waitEvent(membership.Join, "b", "bcast-b")
	b.waitEvent(membership.Join, "a", "bcast-a")

	if _, err := tryStart(t, "x", []string{a.addr()}, key(2)); err == nil {
		t.Fatal("a node with another key joined")
	}
	if _, err := tryStart(t, "y", []string{a.addr()}, nil); err == nil {
		t.Fatal("a node without a key joined")
	}
	if got := a.m.Members(); !slices.Equal(got, members("a", "b")) {
		t.Errorf("a: Members() = %v", got)
	}
	a.m.Close()
	b.m.Close()
	for _, n := range []*tnode{a, b} {
		for _, e := range n.drain() {
			if e.Member.ID == "x" || e.Member.ID == "y" {
				t.Errorf("%s: event %v about a node with the wrong key", n.name, e)
			}
		}
	}
}

// TestUpdate: a new broadcast address is reported as an Update with it.
func TestUpdate(t *testing.T) {
	a := start(t, "a", nil, nil)
	b := start(t, "b", []string{a.addr()}, nil)
	a.waitEvent(membership.Join, "b", "bcast-b")
	if err := b.m.SetAddr("bcast-b2"); err != nil {
		t.Fatal(err)
	}
	if got := b.m.Self(); got.Addr != "bcast-b2" {
		t.Errorf("Self() = %v after SetAddr", got)
	}
	a.waitEvent(membership.Update, "b", "bcast-b2")
	if got := a.m.Members(); !slices.Equal(got, []member{{ID: "a", Addr: "bcast-a"}, {ID: "b", Addr: "bcast-b2"}}) {
		t.Errorf("a: Members() = %v", got)
	}
	if err := b.m.SetAddr(""); err == nil {
		t.Error("SetAddr accepted an empty address")
	}
}

// TestMalformedMetadata: a memberlist node whose metadata is not this
// package's (or missing) is logged and left out, and does not disturb the
// members that are.
func TestMalformedMetadata(t *testing.T) {
	logs := newLogCatcher("malformed metadata")
	a := start(t, "a", nil, func(c *plum.Config[string]) { c.Logger = slog.New(logs) })
	start(t, "b", []string{a.addr()}, nil)
	a.waitEvent(membership.Join, "b", "bcast-b")

	for _, tc := range []struct {
		name string
		meta []byte
	}{
		{"raw-none", nil},
		{"raw-version", []byte{9, 0, 3, 'a', 'b', 'c'}},
		{"raw-truncated", []byte{1, 0, 40, 'a'}},
		{"raw-varint", []byte{1, 0, 0xff, 0xff}},
	} {
		conf := mlConfig(tc.name)
		if tc.meta != nil {
			conf.Delegate = metaDelegate(tc.meta)
		}
		raw, err := memberlist.Create(conf)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { raw.Shutdown() })
		if _, err := raw.Join([]string{a.addr()}); err != nil {
			t.Fatal(err)
		}
		timeout := time.After(watchdog)
	wait:
		for {
			select {
			case r := <-logs.ch:
				if attr(r, "node") == tc.name {
					break wait
				}
			case <-timeout:
				t.Fatalf("no log about %s's malformed metadata", tc.name)
			}
		}
	}
	if got := a.m.Members(); !slices.Equal(got, members("a", "b")) {
		t.Errorf("a: Members() = %v", got)
	}
	a.m.Close()
	if got := a.drain(); !slices.Equal(got, []event{ev(membership.Join, "b")}) {
		t.Errorf("a: events %v, want only b's join", got)
	}
}

type metaDelegate []byte

func (d metaDelegate) NodeMeta(int) []byte             { return d }
func (d metaDelegate) NotifyMsg([]byte)                {}
func (d metaDelegate) GetBroadcasts(int, int) [][]byte { return nil }
func (d metaDelegate) LocalState(bool) []byte          { return nil }
func (d metaDelegate) MergeRemoteState([]byte, bool)   {}

// TestIntIDs: ParseID maps node names to another ID type.
func TestIntIDs(t *testing.T) {
	startInt := func(name string, join []string) *plum.Membership[int] {
		m, err := plum.New(plum.Config[int]{Memberlist: mlConfig(name), Addr: "bcast-" + name, Join: join, ParseID: strconv.Atoi})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Shutdown() })
		return m
	}
	one := startInt("1", nil)
	two := startInt("2", []string{one.Memberlist().LocalNode().Address()})
	// A node whose name is not an int is not a member.
	start(t, "x", []string{one.Memberlist().LocalNode().Address()}, nil)
	select {
	case e := <-two.Events():
		if want := (membership.Event[int]{Kind: membership.Join, Member: membership.Member[int]{ID: 1, Addr: "bcast-1"}}); e != want {
			t.Errorf("event %v, want %v", e, want)
		}
	case <-time.After(watchdog):
		t.Fatal("no join")
	}
	if got := two.Self(); got.ID != 2 {
		t.Errorf("Self() = %v", got)
	}

	if _, err := plum.New(plum.Config[int]{Memberlist: mlConfig("3"), Addr: "x"}); err == nil {
		t.Error("New accepted int IDs without ParseID")
	}
	if _, err := plum.New(plum.Config[int]{Memberlist: mlConfig("three"), Addr: "x", ParseID: strconv.Atoi}); err == nil {
		t.Error("New accepted a node name that is not an ID")
	}
}

// TestConfigErrors: what New and Prepare refuse.
func TestConfigErrors(t *testing.T) {
	for name, cfg := range map[string]plum.Config[string]{
		"no memberlist config": {Addr: "x"},
		"no address":           {Memberlist: mlConfig("n")},
		"long address":         {Memberlist: mlConfig("n"), Addr: strings.Repeat("x", 256)},
		"delegate set":         {Memberlist: func() *memberlist.Config { c := mlConfig("n"); c.Delegate = metaDelegate(nil); return c }(), Addr: "x"},
		"negative buffer":      {Memberlist: mlConfig("n"), Addr: "x", EventBuffer: -1},
		"unreachable seed":     {Memberlist: mlConfig("n"), Addr: "x", Join: []string{"127.0.0.1:1"}},
	} {
		t.Run(name, func(t *testing.T) {
			if m, err := plum.New(cfg); err == nil {
				m.Shutdown()
				t.Fatal("New accepted it")
			}
		})
	}
	if _, err := plum.Prepare(plum.Config[string]{Memberlist: mlConfig("n"), Addr: "x"}); err == nil {
		t.Error("Prepare accepted a memberlist config")
	}
}

// TestPrepareAttach: a memberlist the caller creates with the adapter's
// delegates. Close announces that the broadcast layer leaves, which the
// others report, while the caller's memberlist keeps running.
func TestPrepareAttach(t *testing.T) {
	a := start(t, "a", nil, nil)
	p, err := plum.Prepare(plum.Config[string]{Addr: "bcast-p", Join: []string{a.addr()}})
	if err != nil {
		t.Fatal(err)
	}
	conf := mlConfig("p")
	p.Delegates().Apply(conf)
	ml, err := memberlist.Create(conf)
	if err != nil {
		t.Fatal(err)
	}
	defer ml.Shutdown()
	if err := p.Attach(ml); err != nil {
		t.Fatal(err)
	}
	if err := p.Attach(ml); err == nil {
		t.Error("second Attach accepted")
	}
	pn := &tnode{t: t, name: "p", m: p}
	pn.waitEvent(membership.Join, "a", "bcast-a")
	a.waitEvent(membership.Join, "p", "bcast-p")

	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	a.waitEvent(membership.Leave, "p", "bcast-p")
	if got := a.m.Members(); !slices.Equal(got, members("a")) {
		t.Errorf("a: Members() = %v", got)
	}
	if ml.NumMembers() != 2 {
		t.Errorf("the caller's memberlist has %d members after Close, want it still running with 2", ml.NumMembers())
	}
	if got := pn.drain(); !slices.Equal(got, []event{ev(membership.Join, "a")}) {
		t.Errorf("p: events %v", got)
	}
	if err := ml.Leave(time.Second); err != nil {
		t.Error(err)
	}
}

// TestSlowConsumer: with nobody reading and a full channel, memberlist is
// never blocked: later events are dropped and counted, and Members stays
// right.
func TestSlowConsumer(t *testing.T) {
	rec := newNodeRecorder()
	a := start(t, "a", nil, func(c *plum.Config[string]) {
		c.EventBuffer = 1
		c.Memberlist.Events = rec // chained after the adapter's
	})
	var others []string
	for _, name := range []string{"b", "c", "d"} {
		start(t, name, []string{a.addr()}, nil)
		rec.waitJoin(t, name)
		others = append(others, name)
	}
	if got := a.m.Dropped(); got != 2 {
		t.Errorf("Dropped() = %d, want 2", got)
	}
	if got := a.m.Members(); !slices.Equal(got, members("a", "b", "c", "d")) {
		t.Errorf("Members() = %v", got)
	}
	a.m.Close()
	if got := a.drain(); !slices.Equal(got, []event{ev(membership.Join, "b")}) {
		t.Errorf("events %v, want the first join only", got)
	}
}

// TestPeersFile: a node saves its peers and, restarted without a seed list,
// rejoins from them; after a crash as well as after leaving.
func TestPeersFile(t *testing.T) {
	for _, crash := range []bool{false, true} {
		t.Run(map[bool]string{false: "leave", true: "crash"}[crash], func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "peers.json")
			withFile := func(c *plum.Config[string]) { c.PeersFile = file }
			a := start(t, "a", nil, nil)
			b := start(t, "b", []string{a.addr()}, withFile)
			b.waitEvent(membership.Join, "a", "bcast-a")
			a.waitEvent(membership.Join, "b", "bcast-b")
			if crash {
				b.m.Shutdown()
				a.waitEvent(membership.Fail, "b", "bcast-b")
			} else {
				if err := b.m.Close(); err != nil {
					t.Fatal(err)
				}
				a.waitEvent(membership.Leave, "b", "bcast-b")
			}
			content, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(content, []byte(a.addr())) {
				t.Errorf("peers file does not list a at %s:\n%s", a.addr(), content)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Errorf("files left in the directory: %v", entries)
			}

			b2 := start(t, "b", nil, withFile) // no seed list
			b2.waitEvent(membership.Join, "a", "bcast-a")
			a.waitUntil("b's second join", func(evs []event) bool {
				return len(evs) == 3 && evs[2] == ev(membership.Join, "b")
			})
		})
	}
}

// TestPeersFileDamaged: a peers file that cannot be read is a clear error
// from New, which starts nothing; a missing file is a first start, and saved
// peers that cannot be reached are not an error.
func TestPeersFileDamaged(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"garbage":      "\x00\x01not json",
		"truncated":    `{"version":1,"peers":[{"name":"a","addr":"127.0.0`,
		"version":      `{"version":2,"peers":[]}`,
		"bad address":  `{"version":1,"peers":[{"name":"a","addr":"nowhere"}]}`,
		"bad port":     `{"version":1,"peers":[{"name":"a","addr":"127.0.0.1:99999"}]}`,
		"unknown":      `{"version":1,"peers":[],"extra":true}`,
		"trailing":     `{"version":1,"peers":[]} {}`,
		"wrong shape":  `[1,2,3]`,
		"a directory?": "",
	} {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
			if name == "a directory?" {
				if err := os.Mkdir(file, 0o700); err != nil {
					t.Fatal(err)
				}
			} else if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			m, err := tryStart(t, "n", nil, func(c *plum.Config[string]) { c.PeersFile = file })
			var pfe *plum.PeersFileError
			if !errors.As(err, &pfe) || pfe.Path != file {
				if m != nil {
					m.m.Shutdown()
				}
				t.Fatalf("New with a damaged peers file: err %v, want a *PeersFileError for %s", err, file)
			}
			t.Logf("%v", err)
		})
	}

	t.Run("unreachable peers", func(t *testing.T) {
		file := filepath.Join(dir, "unreachable")
		if err := os.WriteFile(file, []byte(`{"version":1,"peers":[{"name":"gone","addr":"127.0.0.1:1"}]}`), 0o600); err != nil {
			t.Fatal(err)
		}
		n := start(t, "n", nil, func(c *plum.Config[string]) { c.PeersFile = file })
		if got := n.m.Members(); !slices.Equal(got, members("n")) {
			t.Errorf("Members() = %v", got)
		}
	})
}
