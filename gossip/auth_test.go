package gossip_test

import (
	"errors"
	"testing"
	"time"

	"github.com/plumtree-go/plumtree/codec"
	"github.com/plumtree-go/plumtree/gossip"
	"github.com/plumtree-go/plumtree/membership"
	"github.com/plumtree-go/plumtree/membership/static"
	"github.com/plumtree-go/plumtree/transport/devcert"
	"github.com/plumtree-go/plumtree/transport/tcp"
)

func TestMatchIdentity(t *testing.T) {
	if err := gossip.MatchIdentity("alice", "alice"); err != nil {
		t.Errorf("alice as alice: %v", err)
	}
	if err := gossip.MatchIdentity("alice", "mallory"); !errors.Is(err, gossip.ErrIdentityMismatch) {
		t.Errorf("alice as mallory: %v", err)
	}
	if err := gossip.MatchIdentity("alice", ""); !errors.Is(err, gossip.ErrNotAuthenticated) {
		t.Errorf("alice unauthenticated: %v", err)
	}
	if err := gossip.MatchIdentity(7, "7"); err != nil {
		t.Errorf("7 as 7: %v", err)
	}
}

// TestAuthenticateRefusesImpersonation runs three nodes over TCP with
// mutual TLS. Bob and carol hold certificates under their IDs; the third
// node holds mallory's certificate (issued by the same CA) but claims the
// ID alice. Bob and carol check sender IDs against the certificates: what
// "alice" sends is refused and counted, what bob sends reaches carol.
func TestAuthenticateRefusesImpersonation(t *testing.T) {
	ca, err := devcert.NewUnsafeCA()
	if err != nil {
		t.Fatal(err)
	}
	type spec struct{ id, certName string }
	specs := []spec{{"alice", "mallory"}, {"bob", "bob"}, {"carol", "carol"}}
	var trs []*tcp.Transport
	var members []membership.Member[string]
	for _, s := range specs {
		conf, err := ca.UnsafeMutualTLS(s.certName, "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		tr, err := tcp.Listen("127.0.0.1:0", tcp.Config{TLS: conf})
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		trs = append(trs, tr)
		members = append(members, membership.Member[string]{ID: s.id, Addr: tr.LocalAddr()})
	}
	got := make(chan string, 16)
	var nodes []*gossip.Plumtree[string, []byte]
	for i, s := range specs {
		o := gossip.Options[string, []byte]{
			ID: s.id, Transport: trs[i], Membership: static.New(members...), Codec: codec.Bytes(),
			OnDeliver: func(d gossip.Delivery[string, []byte]) { got <- s.id + " got " + string(d.Value) },
		}
		if s.id != "alice" {
			o.Authenticate = gossip.MatchIdentity[string]
		}
		n, err := gossip.New(gossip.LANConfig(), o)
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		nodes = append(nodes, n)
	}
	ctx := t.Context()
	if _, err := nodes[0].Broadcast(ctx, []byte("forged")); err != nil {
		t.Fatal(err)
	}
	if _, err := nodes[1].Broadcast(ctx, []byte("genuine")); err != nil {
		t.Fatal(err)
	}
	// Bob's message reaches carol (and alice, who checks nothing). Wait
	// for carol's; by then the forged one, sent first on the same
	// connections, has been refused.
	timeout := time.After(time.Minute)
	for carol := false; !carol; {
		select {
		case s := <-got:
			switch s {
			case "carol got genuine":
				carol = true
			case "bob got forged", "carol got forged":
				t.Errorf("%s: a frame from a node whose certificate says mallory was accepted as alice's", s)
			}
		case <-timeout:
			t.Fatal("carol never got bob's broadcast")
		}
	}
	// Both count the refusal of what "alice" sent them (her broadcast, her
	// greetings).
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for i := 1; i < 3; i++ {
		for {
			st, err := nodes[i].Stats()
			if err != nil {
				t.Fatal(err)
			}
			if st.DecodeErrors > 0 {
				break
			}
			select {
			case <-tick.C:
			case <-timeout:
				t.Fatalf("%s never counted a refused frame", specs[i].id)
			}
		}
	}
	select {
	case s := <-got:
		if s == "bob got forged" || s == "carol got forged" {
			t.Errorf("%s", s)
		}
	default:
	}
}
