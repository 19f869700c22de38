package memberlist

import (
	"net"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// TestRejoinTargets: a node that memberlist declares dead without a leaving
// notice is a rejoin target, at its memberlist address, until it is alive
// again or RejoinTimeout passes; a node that announced its departure never
// is; Config.Join is added only while no other node is alive.
func TestRejoinTargets(t *testing.T) {
	m, err := Prepare(Config[string]{Addr: "127.0.0.1:1", Join: []string{"10.0.0.9:7946"},
		RejoinInterval: time.Second, RejoinTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	node := func(name string, host byte) *memberlist.Node {
		return &memberlist.Node{Name: name, Addr: net.IPv4(10, 0, 0, host), Port: 7946,
			Meta: appendMeta(nil, meta{addr: "bcast-" + name, boot: 1})}
	}
	apply := func(kind nodeEvent, n *memberlist.Node) {
		m.mu.Lock()
		m.apply(kind, n)
		m.mu.Unlock()
	}
	const local = "10.0.0.1:7946"
	now := time.Now()

	if got := m.rejoinTargets(now, local); !slices.Equal(got, []string{"10.0.0.9:7946"}) {
		t.Errorf("alone, no failures: targets %v; want the seed", got)
	}
	apply(nodeJoin, node("b", 2))
	apply(nodeJoin, node("c", 3))
	apply(nodeJoin, node("d", 4))
	if got := m.rejoinTargets(now, local); len(got) != 0 {
		t.Errorf("all alive: targets %v; want none", got)
	}

	apply(nodeGone, node("b", 2)) // failed
	m.onMessage(appendMessage(nil, message{kind: msgLeaving, name: "c", addr: "10.0.0.3:7946"}))
	apply(nodeGone, node("c", 3)) // left
	if got := m.rejoinTargets(now, local); !slices.Equal(got, []string{"10.0.0.2:7946"}) {
		t.Errorf("b failed, c left, d alive: targets %v; want b only", got)
	}

	apply(nodeJoin, node("b", 2)) // back
	if got := m.rejoinTargets(now, local); len(got) != 0 {
		t.Errorf("b back: targets %v; want none", got)
	}

	apply(nodeGone, node("b", 2))
	apply(nodeGone, node("d", 4))
	got := m.rejoinTargets(now, local)
	if len(got) != 2 || !slices.Contains([]string{"10.0.0.2:7946", "10.0.0.4:7946"}, got[0]) || got[1] != "10.0.0.9:7946" {
		t.Errorf("alone after b and d failed: targets %v; want one of them, then the seed", got)
	}

	if got := m.rejoinTargets(now.Add(2*time.Minute), local); !slices.Equal(got, []string{"10.0.0.9:7946"}) {
		t.Errorf("after RejoinTimeout: targets %v; want the seed only", got)
	}
	if len(m.failed) != 0 {
		t.Errorf("failed nodes not forgotten after RejoinTimeout: %v", m.failed)
	}
}
