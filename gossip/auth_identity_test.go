package gossip_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/plumtree-go/plumtree/codec"
	"github.com/plumtree-go/plumtree/gossip"
	"github.com/plumtree-go/plumtree/membership"
	"github.com/plumtree-go/plumtree/membership/static"
	"github.com/plumtree-go/plumtree/transport"
	"github.com/plumtree-go/plumtree/transport/mem"
)

// claimsIdentity is a transport that stamps an identity on every message
// it receives without verifying anything, and does not declare that it
// authenticates (transport.Authenticator).
type claimsIdentity struct {
	*mem.Transport
	dgrams, frames chan transport.Message
	done           chan struct{}
}

func newClaimsIdentity(tr *mem.Transport, ident string) *claimsIdentity {
	c := &claimsIdentity{Transport: tr, dgrams: make(chan transport.Message), frames: make(chan transport.Message), done: make(chan struct{})}
	fwd := func(in <-chan transport.Message, out chan transport.Message) {
		defer close(out)
		for m := range in {
			m.Identity = ident
			select {
			case out <- m:
			case <-c.done:
				return
			}
		}
	}
	go fwd(tr.Datagrams(), c.dgrams)
	go fwd(tr.Frames(), c.frames)
	return c
}

func (c *claimsIdentity) Datagrams() <-chan transport.Message { return c.dgrams }
func (c *claimsIdentity) Frames() <-chan transport.Message    { return c.frames }
func (c *claimsIdentity) Close() error {
	close(c.done)
	return c.Transport.Close()
}

// An identity from a transport that does not declare it authenticates is
// a claim nothing verified: with Authenticate set, the core takes it as no
// identity at all, and refuses the frame.
func TestAuthenticateIgnoresUndeclaredIdentity(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := mem.NewNetwork(mem.Config{})
		a, _ := net.Listen("a")
		b, _ := net.Listen("b")
		tb := newClaimsIdentity(b, "alice") // every frame "verified" as alice's
		defer a.Close()
		defer tb.Close()
		if transport.Authenticates(tb) {
			t.Fatal("the test transport declares that it authenticates")
		}
		members := []membership.Member[string]{{ID: "alice", Addr: "a"}, {ID: "bob", Addr: "b"}}
		got := make(chan []byte, 4)
		alice, err := gossip.New(gossip.LANConfig(), gossip.Options[string, []byte]{ID: "alice", Transport: a, Membership: static.New(members...), Codec: codec.Bytes()})
		if err != nil {
			t.Fatal(err)
		}
		defer alice.Close()
		bob, err := gossip.New(gossip.LANConfig(), gossip.Options[string, []byte]{
			ID: "bob", Transport: tb, Membership: static.New(members...), Codec: codec.Bytes(),
			Authenticate: gossip.MatchIdentity[string],
			OnDeliver:    func(d gossip.Delivery[string, []byte]) { got <- d.Value },
		})
		if err != nil {
			t.Fatal(err)
		}
		defer bob.Close()
		if _, err := alice.Broadcast(context.Background(), []byte("hello")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Second) // virtual time: graft timers and retries run out
		synctest.Wait()
		select {
		case v := <-got:
			t.Errorf("bob delivered %q on an identity its transport did not verify", v)
		default:
		}
		st, err := bob.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if st.DecodeErrors == 0 {
			t.Errorf("bob counted no refused frame")
		}
	})
}

// verifiesIdentity is a transport that declares it authenticates its peers
// (transport.Authenticator) and stamps the sender's name on what it
// receives; with datagrams set it declares that its datagrams carry the
// identity too (transport.DatagramAuthenticator), as QUIC's do.
type verifiesIdentity struct {
	*claimsIdentity
	datagrams bool
}

func (v verifiesIdentity) Authenticates() bool          { return true }
func (v verifiesIdentity) AuthenticatesDatagrams() bool { return v.datagrams }

// authPair starts alice on ta and bob on tb, both checking identities with
// MatchIdentity; bob's deliveries go to the channel it returns. obs, if
// not nil, observes alice. The caller closes both.
func authPair(t *testing.T, ta, tb transport.Transport, obs gossip.Observer) (alice, bob *gossip.Plumtree[string, []byte], got chan []byte) {
	t.Helper()
	members := []membership.Member[string]{{ID: "alice", Addr: "a"}, {ID: "bob", Addr: "b"}}
	got = make(chan []byte, 4)
	alice, err := gossip.New(gossip.LANConfig(), gossip.Options[string, []byte]{
		ID: "alice", Transport: ta, Membership: static.New(members...), Codec: codec.Bytes(),
		Authenticate: gossip.MatchIdentity[string], Observer: obs,
	})
	if err != nil {
		t.Fatal(err)
	}
	bob, err = gossip.New(gossip.LANConfig(), gossip.Options[string, []byte]{
		ID: "bob", Transport: tb, Membership: static.New(members...), Codec: codec.Bytes(),
		Authenticate: gossip.MatchIdentity[string],
		OnDeliver:    func(d gossip.Delivery[string, []byte]) { got <- d.Value },
	})
	if err != nil {
		alice.Close()
		t.Fatal(err)
	}
	return alice, bob, got
}

// sentPaths records the paths of the gossip payloads a node sent.
type sentPaths chan transport.Path

func (s sentPaths) Observe(e gossip.Event) {
	if e.Kind == gossip.EventSent && e.Type == gossip.KindGossip {
		s <- e.Path
	}
}

// With Authenticate set, a node sends its payloads by stream when its
// transport's datagrams carry no verified identity (UDP's), and by datagram
// when they do (QUIC's: transport.DatagramAuthenticator); either way the
// receiver, which checks every frame, delivers them.
func TestAuthenticateKeepsAuthenticatedDatagrams(t *testing.T) {
	for _, tc := range []struct {
		datagrams bool
		want      transport.Path
	}{{false, transport.PathStream}, {true, transport.PathDatagram}} {
		t.Run(tc.want.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				net := mem.NewNetwork(mem.Config{})
				a, _ := net.Listen("a")
				b, _ := net.Listen("b")
				// Each side stamps the other's name: what it received
				// came from the only other node.
				ta := verifiesIdentity{newClaimsIdentity(a, "bob"), tc.datagrams}
				tb := verifiesIdentity{newClaimsIdentity(b, "alice"), tc.datagrams}
				defer ta.Close()
				defer tb.Close()
				if got := transport.AuthenticatesDatagrams(ta); got != tc.datagrams {
					t.Fatalf("AuthenticatesDatagrams = %v, want %v", got, tc.datagrams)
				}
				paths := make(sentPaths, 16)
				alice, bob, got := authPair(t, ta, tb, paths)
				defer alice.Close()
				defer bob.Close()
				if _, err := alice.Broadcast(context.Background(), []byte("hello")); err != nil {
					t.Fatal(err)
				}
				select {
				case v := <-got:
					if string(v) != "hello" {
						t.Fatalf("bob delivered %q, want hello", v)
					}
				case <-time.After(10 * time.Second): // virtual time
					t.Fatal("bob never delivered alice's broadcast")
				}
				// Alice's loop reports the send after it queued the frame
				// for her stream sender, which may have carried it to bob
				// first: wait for the report (virtual time bounds it).
				select {
				case p := <-paths:
					if p != tc.want {
						t.Errorf("alice sent her payload by %v, want %v (datagrams authenticated: %v)", p, tc.want, tc.datagrams)
					}
				case <-time.After(10 * time.Second): // virtual time
					t.Fatal("alice reported no payload sent")
				}
			})
		})
	}
}

// A transport that verifies its streams but not its datagrams (Joined's
// UDP beside TLS) may still stamp an identity on a datagram: the receiver
// takes it as none, and refuses the frame. Here alice's transport claims
// its datagrams are verified, so she sends by datagram; bob's does not
// vouch for them.
func TestAuthenticateIgnoresIdentityOnUnverifiedDatagrams(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := mem.NewNetwork(mem.Config{})
		a, _ := net.Listen("a")
		b, _ := net.Listen("b")
		ta := verifiesIdentity{newClaimsIdentity(a, "bob"), true}
		tb := verifiesIdentity{newClaimsIdentity(b, "alice"), false}
		defer ta.Close()
		defer tb.Close()
		alice, bob, got := authPair(t, ta, tb, nil)
		defer alice.Close()
		defer bob.Close()
		if _, err := alice.Broadcast(context.Background(), []byte("hello")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second) // virtual time: the payload, announcements and graft answers, all by datagram
		synctest.Wait()
		select {
		case v := <-got:
			t.Errorf("bob delivered %q from a datagram whose identity his transport did not verify", v)
		default:
		}
		st, err := bob.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if st.DecodeErrors == 0 {
			t.Errorf("bob counted no refused datagram")
		}
	})
}
