package topic

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/plumtree-go/plumtree/codec"
	"github.com/plumtree-go/plumtree/gossip"
	"github.com/plumtree-go/plumtree/internal/watchdog"
	"github.com/plumtree-go/plumtree/membership"
	"github.com/plumtree-go/plumtree/membership/static"
	"github.com/plumtree-go/plumtree/transport/mem"
)

// TestRefusedFrames: a frame the host cannot place is refused and counted,
// never delivered and never a panic: too short for the prefix, an unknown
// host version, a tag this host does not subscribe to (on either path), a
// malformed control frame, an announcement from a node that is not a
// member, or in a member's name from another address.
func TestRefusedFrames(t *testing.T) {
	watchdog.Test(t, func(t *testing.T) {
		h, evil, stop := hostWithPeer(t, "evil", HostOptions[string]{})
		defer stop()
		tp, err := Subscribe(h, "known", gossip.DefaultConfig(), Options[string, []byte]{Codec: codec.Bytes()})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		send := func(b []byte) {
			if err := evil.SendDatagram(ctx, "a", b); err != nil {
				t.Fatal(err)
			}
		}
		send([]byte{HostVersion, 1, 2})                                                   // short
		send(append([]byte{0x02}, make([]byte, 20)...))                                   // a gossip frame without the host prefix
		send(appendPrefix(nil, Tag("unknown")))                                           // unknown topic, datagram
		if err := evil.SendFrame(ctx, "a", appendPrefix(nil, Tag("other"))); err != nil { // unknown topic, stream
			t.Fatal(err)
		}
		send(append(appendPrefix(nil, controlTag), 9, 0))                   // unknown control kind
		send(append(appendPrefix(nil, controlTag), ctlAnnounce, 0, 200, 1)) // sender longer than the frame
		bad := appendAnnouncement(nil, &announcement{sender: []byte("evil"), incarnation: 1, version: 1, tags: []uint64{Tag("known")}})
		send(bad[:len(bad)-3])                                                                                                      // truncated tag list
		send(bad)                                                                                                                   // a well-formed announcement from a non-member
		send(appendAnnouncement(nil, &announcement{sender: []byte("b"), incarnation: 1, version: 1, tags: []uint64{Tag("known")}})) // in b's name, from evil's address
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		s := h.Stats()
		if s.RefusedMalformed != 5 || s.RefusedUnknownTopic != 2 || s.RefusedUnknownSender != 2 {
			t.Errorf("refused: malformed %d (want 5), unknown topic %d (want 2), unknown sender %d (want 2)",
				s.RefusedMalformed, s.RefusedUnknownTopic, s.RefusedUnknownSender)
		}
		if subs := h.Subscribers("known"); len(subs) != 0 {
			t.Errorf("a forged announcement was taken: subscribers %v", subs)
		}
		select {
		case d := <-tp.Deliveries():
			t.Errorf("delivered %v from refused frames", d)
		default:
		}
		if st, _ := tp.Stats(); st.DecodeErrors != 0 {
			t.Errorf("the topic's Plumtree saw %d undecodable frames: the host let refused frames through", st.DecodeErrors)
		}
	})
}

// TestSubscribeErrors: a second subscription to a name, and a name whose
// tag collides with one already subscribed, are refused.
func TestSubscribeErrors(t *testing.T) {
	net := mem.NewNetwork(mem.Config{})
	tr, _ := net.Listen("a")
	defer tr.Close()
	ms := static.New(membership.Member[string]{ID: "a", Addr: "a"})
	defer ms.Close()
	h, err := NewHost(HostOptions[string]{ID: "a", Transport: tr, Membership: ms})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	o := Options[string, []byte]{Codec: codec.Bytes()}
	if _, err := Subscribe(h, "x", gossip.DefaultConfig(), o); err != nil {
		t.Fatal(err)
	}
	if _, err := Subscribe(h, "x", gossip.DefaultConfig(), o); err == nil {
		t.Error("a second subscription to the same name was accepted")
	}
	// Plant a colliding name: register it under x's tag by hand.
	h.mu.Lock()
	h.topics[Tag("x")].name = "y"
	h.mu.Unlock()
	if _, err := Subscribe(h, "x", gossip.DefaultConfig(), o); err == nil {
		t.Error("a name whose tag another subscribed name has was accepted")
	}
	if _, err := Subscribe(h, "z", gossip.DefaultConfig(), Options[string, []byte]{}); err == nil {
		t.Error("a subscription without a codec was accepted")
	}
	h.Close()
	if _, err := Subscribe(h, "w", gossip.DefaultConfig(), o); err != ErrHostClosed {
		t.Errorf("Subscribe on a closed host: %v, want ErrHostClosed", err)
	}
}

// FuzzDecodeControl: any bytes decode to an announcement or an error,
// never a panic, and an announcement re-encodes to the same bytes.
func FuzzDecodeControl(f *testing.F) {
	f.Add(appendAnnouncement(nil, &announcement{sender: []byte("n1"), incarnation: 7, version: 3, tags: []uint64{1, 2, 3}})[PrefixLen:])
	f.Add(appendAnnouncement(nil, &announcement{want: true, sender: []byte("node"), incarnation: 1, version: 1})[PrefixLen:])
	f.Add([]byte{ctlAnnounce, 0, 1, 'a'})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := decodeControl(b)
		if err != nil {
			return
		}
		re := appendAnnouncement(nil, a)[PrefixLen:]
		// Flags other than want are ignored and uvarints may be padded: the
		// re-encoding is canonical, so compare by decoding it again.
		a2, err := decodeControl(re)
		if err != nil || a2.want != a.want || string(a2.sender) != string(a.sender) || a2.version != a.version ||
			a2.incarnation != a.incarnation || len(a2.tags) != len(a.tags) {
			t.Fatalf("re-encoding %x gave %x (%v)", b, re, err)
		}
	})
}

// TestRequestFloodBounded: a member (or whoever forges its address) asking
// for this host's set again and again draws at most one answer per
// AnnounceDelay for a new incarnation and one per AnnounceInterval for the
// same one, not one per request. Catches (planted: every request answered)
// a host that reflects a flood of small requests as larger answers.
func TestRequestFloodBounded(t *testing.T) {
	watchdog.Test(t, func(t *testing.T) {
		h, b, stop := hostWithPeer(t, "b", HostOptions[string]{AnnounceInterval: time.Hour})
		defer stop()
		time.Sleep(time.Second) // the host's first announcements
		synctest.Wait()
		before := h.Stats().AnnouncementsSent
		ctx := context.Background()
		// 100 requests of one incarnation, 100 of new ones, 1 ms apart.
		for i := range 200 {
			inc := uint64(1)
			if i >= 100 {
				inc = uint64(i)
			}
			req := appendAnnouncement(nil, &announcement{sender: []byte("b"), incarnation: inc, version: uint64(i + 1), want: true})
			if err := b.SendDatagram(ctx, "a", req); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		s := h.Stats()
		answers := s.AnnouncementsSent - before
		// One for the first incarnation, then the new ones at most one per
		// 10 ms (the default AnnounceDelay) over 100 ms: about 11.
		if answers < 2 || answers > 12 {
			t.Errorf("%d answers to 200 requests (%d limited), want 2 to 12", answers, s.RepliesLimited)
		}
		if s.RepliesLimited+answers != 200 {
			t.Errorf("%d answered + %d limited, want 200 requests accounted", answers, s.RepliesLimited)
		}
	})
}

// hostWithPeer starts host "a" of members a and b on a fresh in-memory
// network (o gives the other options), and a transport at peer to send to
// it from; stop closes them all.
func hostWithPeer(t *testing.T, peer string, o HostOptions[string]) (*Host[string], *mem.Transport, func()) {
	t.Helper()
	net := mem.NewNetwork(mem.Config{})
	tr, err := net.Listen("a")
	if err != nil {
		t.Fatal(err)
	}
	from, err := net.Listen(peer)
	if err != nil {
		t.Fatal(err)
	}
	ms := static.New(membership.Member[string]{ID: "a", Addr: "a"}, membership.Member[string]{ID: "b", Addr: "b"})
	o.ID, o.Transport, o.Membership = "a", tr, ms
	h, err := NewHost(o)
	if err != nil {
		t.Fatal(err)
	}
	return h, from, func() {
		h.Close()
		ms.Close()
		from.Close()
		tr.Close()
	}
}
