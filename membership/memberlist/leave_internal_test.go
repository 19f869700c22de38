package memberlist

import (
	"testing"

	"github.com/plumtree-go/plumtree/membership"
)

// TestLeavingNoticeWaitsForMetadata: a leaving notice is reported as a
// Leave at once, but acknowledged only once memberlist's view of the leaver
// carries the leaving metadata. Until then memberlist would hand the old
// metadata to a node that joins after the leaver is gone, which would
// report a Join for it and then a Fail (TestConformance/leave, seen under
// load: the sentinel node reported Fail for the node that left).
func TestLeavingNoticeWaitsForMetadata(t *testing.T) {
	m, err := Prepare(Config[string]{Addr: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	notice := message{kind: msgLeaving, name: "b", addr: "10.0.0.2:7946"}
	leavingNotice := func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.leavingNotice(notice)
	}

	if leavingNotice() {
		t.Error("notice from a node memberlist does not know: acknowledged")
	}
	b := testNode("b", 2)
	testApply(m, nodeJoin, b)
	if leavingNotice() {
		t.Error("notice before memberlist has the leaving metadata: acknowledged")
	}
	var kinds []membership.EventKind
	for len(kinds) < 2 {
		select {
		case ev := <-m.Events():
			kinds = append(kinds, ev.Kind)
		default:
			t.Fatalf("events %v; want join, leave (the notice alone reports the Leave)", kinds)
		}
	}
	if kinds[0] != membership.Join || kinds[1] != membership.Leave {
		t.Errorf("events %v; want join, leave", kinds)
	}

	b.Meta = appendMeta(nil, meta{addr: "bcast-b", boot: 1, leaving: true})
	testApply(m, nodeUpdate, b)
	if !leavingNotice() {
		t.Error("notice once memberlist has the leaving metadata: not acknowledged")
	}
	wrong := notice
	wrong.addr = "10.0.0.66:7946"
	m.mu.Lock()
	ack := m.leavingNotice(wrong)
	m.mu.Unlock()
	if ack {
		t.Error("notice naming another address than memberlist's: acknowledged")
	}
	select {
	case ev := <-m.Events():
		t.Errorf("an extra event: %v", ev)
	default:
	}
}
