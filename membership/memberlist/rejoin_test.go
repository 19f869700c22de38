package memberlist_test

import (
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/plumtree-go/plumtree/membership"
	plum "github.com/plumtree-go/plumtree/membership/memberlist"
)

// TestRejoin: a node that crashed and came back at the same address without
// joining anyone (alone, as each side of a healed partition is to the other)
// is found again by a node with RejoinInterval set, which remembered where
// the failed node was; both report the other joining. memberlist gossips to
// dead nodes for no time at all here (GossipToTheDeadTime 0), so only the
// rejoin can bring them together.
func TestRejoin(t *testing.T) {
	noGhostGossip := func(c *plum.Config[string]) { c.Memberlist.GossipToTheDeadTime = 0 }
	a := start(t, "a", nil, func(c *plum.Config[string]) {
		noGhostGossip(c)
		c.RejoinInterval = 100 * time.Millisecond
	})
	b := start(t, "b", []string{a.addr()}, noGhostGossip)
	a.waitEvent(membership.Join, "b", "bcast-b")
	b.waitEvent(membership.Join, "a", "bcast-a")

	bAddr := b.addr()
	_, portStr, err := net.SplitHostPort(bAddr)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.m.Shutdown(); err != nil {
		t.Fatalf("shutdown b: %v", err)
	}
	a.waitEvent(membership.Fail, "b", "bcast-b")

	// b again, at the same address, joining nobody.
	b2 := start(t, "b", nil, func(c *plum.Config[string]) {
		noGhostGossip(c)
		c.Memberlist.BindPort = port
	})
	if got := b2.addr(); got != bAddr {
		t.Fatalf("b restarted at %s, not %s", got, bAddr)
	}
	b2.waitEvent(membership.Join, "a", "bcast-a")
	a.waitUntil("b joining again", func(evs []event) bool {
		return len(evs) > 0 && evs[len(evs)-1] == ev(membership.Join, "b")
	})
}
