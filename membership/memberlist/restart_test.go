package memberlist

import (
	"net"
	"testing"

	"github.com/hashicorp/memberlist"

	"github.com/plumtree-go/plumtree/membership"
)

// TestRestartAfterLeavingNotice: a node that announced its departure but
// was killed before memberlist saw it leave, then restarted under the same
// name, is a new node (its boot ID differs) and joins again; the departed
// incarnation's own metadata without the leaving flag does not bring it
// back.
func TestRestartAfterLeavingNotice(t *testing.T) {
	m, err := Prepare(Config[string]{Addr: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	node := func(boot uint64) *memberlist.Node {
		return &memberlist.Node{Name: "b", Addr: net.ParseIP("127.0.0.2"), Port: 7946,
			Meta: appendMeta(nil, meta{addr: "127.0.0.2:7947", boot: boot})}
	}
	apply := func(kind nodeEvent, n *memberlist.Node) {
		m.mu.Lock()
		m.apply(kind, n)
		m.mu.Unlock()
	}
	apply(nodeJoin, node(1))
	m.onMessage(appendMessage(nil, message{kind: msgLeaving, name: "b", addr: "127.0.0.2:7946"}))
	apply(nodeUpdate, node(1)) // older gossip about the same incarnation
	apply(nodeUpdate, node(2)) // restarted
	var kinds []membership.EventKind
	for len(kinds) < 3 {
		select {
		case ev := <-m.Events():
			kinds = append(kinds, ev.Kind)
		default:
			t.Fatalf("events %v; want join, leave, join", kinds)
		}
	}
	if kinds[0] != membership.Join || kinds[1] != membership.Leave || kinds[2] != membership.Join {
		t.Errorf("events %v; want join, leave, join", kinds)
	}
	select {
	case ev := <-m.Events():
		t.Errorf("an extra event: %v", ev)
	default:
	}
	found := false
	for _, mem := range m.Members() {
		found = found || mem.ID == "b"
	}
	if !found {
		t.Error("the restarted node is not a member")
	}
}
