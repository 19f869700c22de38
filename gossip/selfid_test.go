package gossip

import (
	"strings"
	"testing"

	"github.com/plumtree-go/plumtree/codec"
	"github.com/plumtree-go/plumtree/membership"
	"github.com/plumtree-go/plumtree/membership/static"
	"github.com/plumtree-go/plumtree/transport/mem"
)

// withSelf is a membership that knows which member is this node, as
// memberlist's adapter does.
type withSelf struct {
	*static.Static[string]
	self membership.Member[string]
}

func (m withSelf) Self() membership.Member[string] { return m.self }

// An Options.ID that the membership does not list as this node is refused
// by New: with memberlist, an ID other than the node name made broadcasts
// reach one peer of two, with no error anywhere.
func TestNewRefusesIDTheMembershipDoesNotList(t *testing.T) {
	net := mem.NewNetwork(mem.Config{})
	tr, _ := net.Listen("a")
	defer tr.Close()
	self := membership.Member[string]{ID: "node-a", Addr: "a"}
	m := withSelf{static.New(self, membership.Member[string]{ID: "b", Addr: "b"}), self}
	defer m.Close()
	_, err := New(DefaultConfig(), Options[string, []byte]{ID: "a", Transport: tr, Membership: m, Codec: codec.Bytes()})
	if err == nil || !strings.Contains(err.Error(), `Options.ID a is not this node`) || !strings.Contains(err.Error(), "node-a") {
		t.Fatalf("New with an ID the membership does not list: err = %v", err)
	}
	node, err := New(DefaultConfig(), Options[string, []byte]{ID: "node-a", Transport: tr, Membership: m, Codec: codec.Bytes()})
	if err != nil {
		t.Fatalf("New with the membership's own ID: %v", err)
	}
	node.Close()
}
