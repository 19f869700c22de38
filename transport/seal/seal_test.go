package seal_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/plumtree-go/plumtree/clock"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/plumtree-go/plumtree/transport"
	"github.com/plumtree-go/plumtree/transport/devcert"
	"github.com/plumtree-go/plumtree/transport/mem"
	"github.com/plumtree-go/plumtree/transport/seal"
	"github.com/plumtree-go/plumtree/transport/tcp"
	"github.com/plumtree-go/plumtree/transport/udp"
	"github.com/plumtree-go/plumtree/transport/udptcp"
)

func listenMem(t *testing.T, n *mem.Network, addr string) *mem.Transport {
	t.Helper()
	tr, err := n.Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func wrap(t *testing.T, tr transport.Transport, kr *seal.Keyring, opts ...seal.Option) seal.Transport {
	t.Helper()
	s, err := seal.Wrap(tr, kr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func keyring(t *testing.T, primary []byte, others ...[]byte) *seal.Keyring {
	t.Helper()
	kr, err := seal.NewKeyring(primary, others...)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// drain returns what is queued on ch now, without waiting.
func drain(ch <-chan transport.Message) []transport.Message {
	var out []transport.Message
	for {
		select {
		case m := <-ch:
			out = append(out, m)
		default:
			return out
		}
	}
}

func TestKeyring(t *testing.T) {
	for _, n := range []int{0, 1, 15, 17, 31, 33, 64} {
		if _, err := seal.NewKeyring(make([]byte, n)); !errors.Is(err, seal.ErrKeySize) {
			t.Errorf("a %d-byte key: err %v, want ErrKeySize", n, err)
		}
	}
	k16, k24, k32 := bytes.Repeat([]byte{1}, 16), bytes.Repeat([]byte{2}, 24), bytes.Repeat([]byte{3}, 32)
	kr := keyring(t, k16, k24)
	if _, err := seal.NewKeyring(k16, make([]byte, 5)); !errors.Is(err, seal.ErrKeySize) {
		t.Errorf("a bad extra key: err %v", err)
	}
	if err := kr.AddKey(k32); err != nil {
		t.Fatal(err)
	}
	if err := kr.AddKey(k32); err != nil {
		t.Errorf("adding a key twice: %v", err)
	}
	if got := kr.Keys(); !slices.EqualFunc(got, [][]byte{k16, k24, k32}, bytes.Equal) {
		t.Errorf("Keys() = %x", got)
	}
	if err := kr.UseKey(bytes.Repeat([]byte{9}, 16)); err == nil {
		t.Error("UseKey of a key never added succeeded")
	}
	if err := kr.UseKey(k32); err != nil {
		t.Fatal(err)
	}
	if got := kr.Keys(); !bytes.Equal(got[0], k32) || len(got) != 3 {
		t.Errorf("after UseKey, Keys() = %x; want the new primary first", got)
	}
	if err := kr.RemoveKey(k32); !errors.Is(err, seal.ErrRemovePrimary) {
		t.Errorf("removing the primary: err %v, want ErrRemovePrimary", err)
	}
	if err := kr.RemoveKey(k16); err != nil {
		t.Fatal(err)
	}
	if err := kr.RemoveKey(k16); err != nil {
		t.Errorf("removing a key twice: %v", err)
	}
	if got := kr.Keys(); !slices.EqualFunc(got, [][]byte{k32, k24}, bytes.Equal) {
		t.Errorf("Keys() = %x", got)
	}
	// Keys returns copies.
	kr.Keys()[0][0] ^= 0xff
	if !bytes.Equal(kr.Keys()[0], k32) {
		t.Error("changing what Keys returned changed the keyring")
	}
}

// Wrapping keeps exactly the inner transport's paths, and the limits are
// the inner ones less the seal's overhead, in TooLargeError too.
func TestShapesAndLimits(t *testing.T) {
	n := mem.NewNetwork(mem.Config{MaxDatagramSize: 500, MaxFrameSize: 1000})
	kr := keyring(t, testKey(1))
	s := wrap(t, listenMem(t, n, "a"), kr)
	dg, okD := s.(transport.Datagram)
	st, okS := s.(transport.Stream)
	if !okD || !okS {
		t.Fatalf("%T: datagram %v, stream %v; want both", s, okD, okS)
	}
	if dg.MaxDatagramSize() != 500-seal.Overhead || st.MaxFrameSize() != 1000-seal.Overhead {
		t.Errorf("limits %d, %d; want %d, %d", dg.MaxDatagramSize(), st.MaxFrameSize(), 500-seal.Overhead, 1000-seal.Overhead)
	}
	var tl *transport.TooLargeError
	err := dg.SendDatagram(t.Context(), "b", make([]byte, 500-seal.Overhead+1))
	if !errors.As(err, &tl) || tl.Limit != 500-seal.Overhead || tl.Size != 500-seal.Overhead+1 || tl.Path != transport.PathDatagram {
		t.Errorf("datagram over the limit: %v", err)
	}
	err = st.SendFrame(t.Context(), "b", make([]byte, 1000-seal.Overhead+1))
	if !errors.As(err, &tl) || tl.Limit != 1000-seal.Overhead || tl.Path != transport.PathStream {
		t.Errorf("frame over the limit: %v", err)
	}
	if s.Unwrap() == nil || s.Keyring() != kr {
		t.Error("Unwrap or Keyring lost")
	}

	// One path in, one path out.
	inner := listenMem(t, n, "c")
	d := wrap(t, dgOnly{inner}, kr)
	if _, ok := d.(transport.Stream); ok {
		t.Errorf("%T wraps a datagram-only transport but claims a stream path", d)
	}
	if _, ok := d.(transport.Datagram); !ok {
		t.Errorf("%T lost the datagram path", d)
	}
	inner2 := listenMem(t, n, "d")
	f := wrap(t, stOnly{inner2}, kr)
	if _, ok := f.(transport.Datagram); ok {
		t.Errorf("%T wraps a stream-only transport but claims a datagram path", f)
	}

	// No room for the seal: refused at Wrap.
	tiny := mem.NewNetwork(mem.Config{MaxDatagramSize: seal.Overhead})
	tr := listenMem(t, tiny, "x")
	defer tr.Close()
	if _, err := seal.Wrap(tr, kr); err == nil {
		t.Error("Wrap accepted a datagram limit that leaves no room")
	}
	if _, err := seal.Wrap(tr, nil); err == nil {
		t.Error("Wrap accepted a nil keyring")
	}
}

type dgOnly struct{ t *mem.Transport }

func (d dgOnly) LocalAddr() string                   { return d.t.LocalAddr() }
func (d dgOnly) Close() error                        { return d.t.Close() }
func (d dgOnly) MaxDatagramSize() int                { return d.t.MaxDatagramSize() }
func (d dgOnly) Datagrams() <-chan transport.Message { return d.t.Datagrams() }
func (d dgOnly) SendDatagram(ctx context.Context, addr string, b []byte) error {
	return d.t.SendDatagram(ctx, addr, b)
}

type stOnly struct{ t *mem.Transport }

func (s stOnly) LocalAddr() string                { return s.t.LocalAddr() }
func (s stOnly) Close() error                     { return s.t.Close() }
func (s stOnly) MaxFrameSize() int                { return s.t.MaxFrameSize() }
func (s stOnly) Frames() <-chan transport.Message { return s.t.Frames() }
func (s stOnly) SendFrame(ctx context.Context, addr string, b []byte) error {
	return s.t.SendFrame(ctx, addr, b)
}

// A node with another key receives nothing, on either path; every frame is
// counted as refused for its unknown key. A node with the key receives it
// all.
func TestWrongKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := mem.NewNetwork(mem.Config{})
		a := wrap(t, listenMem(t, n, "a"), keyring(t, testKey(1)))
		b := wrap(t, listenMem(t, n, "b"), keyring(t, testKey(2)))
		c := wrap(t, listenMem(t, n, "c"), keyring(t, testKey(1)))
		ctx := t.Context()
		const k = 5
		for i := range k {
			for _, to := range []string{"b", "c"} {
				p := fmt.Appendf(nil, "secret %d", i)
				if err := a.(transport.Datagram).SendDatagram(ctx, to, p); err != nil {
					t.Fatal(err)
				}
				if err := a.(transport.Stream).SendFrame(ctx, to, p); err != nil {
					t.Fatal(err)
				}
			}
		}
		synctest.Wait()
		if got := drain(b.(transport.Datagram).Datagrams()); len(got) != 0 {
			t.Errorf("the node with the wrong key received %d datagrams", len(got))
		}
		if got := drain(b.(transport.Stream).Frames()); len(got) != 0 {
			t.Errorf("the node with the wrong key received %d frames", len(got))
		}
		if s := b.SealStats(); s.Refused.UnknownKey != 2*k || s.Refused.Total() != 2*k || s.Opened != 0 {
			t.Errorf("wrong key: %+v; want %d refused for an unknown key", s, 2*k)
		}
		if st := b.Stats(); st.DatagramsReceived != 0 || st.FramesReceived != 0 || st.BytesReceived != 0 {
			t.Errorf("refused frames counted as received: %+v", st)
		}
		dgs, frs := drain(c.(transport.Datagram).Datagrams()), drain(c.(transport.Stream).Frames())
		if len(dgs) != k || len(frs) != k {
			t.Fatalf("the node with the key received %d datagrams and %d frames; want %d each", len(dgs), len(frs), k)
		}
		for i, m := range frs {
			if want := fmt.Sprintf("secret %d", i); string(m.Data) != want || m.From != "a" || m.Path != transport.PathStream {
				t.Errorf("frame %d: %q from %q on %v", i, m.Data, m.From, m.Path)
			}
		}
		if s := c.SealStats(); s.Refused.Total() != 0 || s.Opened != 2*k {
			t.Errorf("right key: %+v", s)
		}
		// What went over the wire is not the payload.
		if s := a.SealStats(); s.Sealed != 4*k || s.Inner.BytesSent != uint64(4*k*(len("secret 0")+seal.Overhead)) {
			t.Errorf("sender: %+v", s)
		}
	})
}

// capture returns the raw frame a sends to a tap (an unsealed transport)
// for payload p on path.
func capture(t *testing.T, a seal.Transport, tap *mem.Transport, to string, p []byte, path transport.Path) []byte {
	t.Helper()
	ctx := t.Context()
	var ch <-chan transport.Message
	if path == transport.PathDatagram {
		if err := a.(transport.Datagram).SendDatagram(ctx, tap.LocalAddr(), p); err != nil {
			t.Fatal(err)
		}
		ch = tap.Datagrams()
	} else {
		if err := a.(transport.Stream).SendFrame(ctx, tap.LocalAddr(), p); err != nil {
			t.Fatal(err)
		}
		ch = tap.Frames()
	}
	m := <-ch
	if bytes.Contains(m.Data, p) {
		t.Fatalf("the payload %q is visible on the wire: %x", p, m.Data)
	}
	if to == tap.LocalAddr() {
		return m.Data
	}
	// The frame a sends to to (the destination is sealed into it).
	return seal.SealFor(a, p, path, to)
}

// inject sends raw bytes from the raw transport under a sealed one (so that
// they arrive from its address).
func inject(t *testing.T, from transport.Transport, to string, raw []byte, path transport.Path) {
	t.Helper()
	var err error
	if path == transport.PathDatagram {
		err = from.(transport.Datagram).SendDatagram(t.Context(), to, raw)
	} else {
		err = from.(transport.Stream).SendFrame(t.Context(), to, raw)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// Every one-byte change of a sealed frame is refused, for the reason the
// changed field gives; so are truncated frames, a frame moved to the other
// path and a frame sent from another address. The frame as sealed opens.
func TestTamper(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := mem.NewNetwork(mem.Config{})
		kr := keyring(t, testKey(1))
		a := wrap(t, listenMem(t, n, "a"), kr)
		b := wrap(t, listenMem(t, n, "b"), kr)
		x := listenMem(t, n, "x") // an outsider's raw transport
		defer x.Close()
		tap := listenMem(t, n, "tap")
		defer tap.Close()
		frames := b.(transport.Stream).Frames()
		payload := []byte("the payload")
		raw := capture(t, a, tap, "b", payload, transport.PathStream)
		if len(raw) != len(payload)+seal.Overhead {
			t.Fatalf("sealed frame of %d bytes; want %d", len(raw), len(payload)+seal.Overhead)
		}

		// As sealed: opens.
		inject(t, a.Unwrap(), "b", bytes.Clone(raw), transport.PathStream)
		synctest.Wait()
		if got := drain(frames); len(got) != 1 || !bytes.Equal(got[0].Data, payload) {
			t.Fatalf("the untouched frame: got %v", got)
		}

		var want seal.Refused
		for i := range raw {
			for _, bit := range []byte{0x01, 0x80} {
				bad := bytes.Clone(raw)
				bad[i] ^= bit
				inject(t, a.Unwrap(), "b", bad, transport.PathStream)
				switch {
				case i == 0:
					want.Version++
				case i < 5:
					want.UnknownKey++
				default:
					want.Auth++
				}
			}
		}
		for l := range seal.Overhead {
			inject(t, a.Unwrap(), "b", bytes.Clone(raw[:l]), transport.PathStream)
			want.Short++
		}
		// Moved to the datagram path.
		inject(t, a.Unwrap(), "b", bytes.Clone(raw), transport.PathDatagram)
		want.Auth++
		// Sent by an outsider who captured it.
		inject(t, x, "b", bytes.Clone(raw), transport.PathStream)
		want.Auth++
		synctest.Wait()
		if got := drain(frames); len(got) != 0 {
			t.Errorf("%d changed frames were delivered", len(got))
		}
		if got := drain(b.(transport.Datagram).Datagrams()); len(got) != 0 {
			t.Errorf("%d changed datagrams were delivered", len(got))
		}
		if got := b.SealStats().Refused; got != want {
			t.Errorf("refused %+v; want %+v", got, want)
		}

		// Without address binding (on both sides), a frame opens wherever
		// it comes from; the path is still bound.
		c := wrap(t, listenMem(t, n, "c"), kr, seal.WithoutAddressBinding())
		d := wrap(t, listenMem(t, n, "d"), kr, seal.WithoutAddressBinding())
		raw = capture(t, c, tap, "tap", payload, transport.PathDatagram)
		inject(t, x, "d", bytes.Clone(raw), transport.PathDatagram)
		inject(t, x, "d", bytes.Clone(raw), transport.PathStream)
		synctest.Wait()
		if got := drain(d.(transport.Datagram).Datagrams()); len(got) != 1 || !bytes.Equal(got[0].Data, payload) || got[0].From != "x" {
			t.Errorf("unbound: got %v", got)
		}
		if got := d.SealStats().Refused; got != (seal.Refused{Auth: 1}) {
			t.Errorf("unbound, other path: refused %+v", got)
		}
	})
}

// settableClock is a settable clock for WithClock (seal reads only Now;
// its timers are the system's).
type settableClock struct {
	clock.System
	now atomic.Int64
}

func (c *settableClock) set(t time.Time)     { c.now.Store(t.UnixNano()) }
func (c *settableClock) Now() time.Time      { return time.Unix(0, c.now.Load()) }
func newClock(t time.Time) *settableClock    { c := new(settableClock); c.set(t); return c }
func (c *settableClock) add(d time.Duration) { c.now.Add(int64(d)) }

// A captured frame replayed later than the window after it was sent, or
// stamped further ahead than the window, is refused as outside the window;
// within the window it opened once and is refused as a replay. Window 0
// never refuses: no replay protection at all.
func TestReplayWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := mem.NewNetwork(mem.Config{})
		kr := keyring(t, testKey(1))
		t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		const window = time.Minute
		sender := newClock(t0)
		receiver := newClock(t0)
		a := wrap(t, listenMem(t, n, "a"), kr, seal.WithClock(sender), seal.WithWindow(window))
		b := wrap(t, listenMem(t, n, "b"), kr, seal.WithClock(receiver), seal.WithWindow(window))
		off := wrap(t, listenMem(t, n, "c"), kr, seal.WithClock(receiver), seal.WithWindow(0))
		tap := listenMem(t, n, "tap")
		defer tap.Close()
		raw := map[string][]byte{
			"b": capture(t, a, tap, "b", []byte("captured"), transport.PathDatagram),
			"c": capture(t, a, tap, "c", []byte("captured"), transport.PathDatagram),
		}

		try := func(to seal.Transport, at time.Duration) bool {
			t.Helper()
			receiver.set(t0.Add(at))
			inject(t, a.Unwrap(), to.LocalAddr(), bytes.Clone(raw[to.LocalAddr()]), transport.PathDatagram)
			synctest.Wait()
			return len(drain(to.(transport.Datagram).Datagrams())) == 1
		}
		for _, c := range []struct {
			at   time.Duration
			want bool
		}{
			{0, true},
			{window, false}, // a replay
			{window + 1, false},
			{time.Hour, false},
			{-window, false}, // the receiver's clock behind the sender's: a replay
			{-window - 1, false},
		} {
			if got := try(b, c.at); got != c.want {
				t.Errorf("replayed %v after it was sent, with a window of %v: opened %v, want %v", c.at, window, got, c.want)
			}
		}
		if got := b.SealStats().Refused; got != (seal.Refused{Window: 3, Replay: 2}) {
			t.Errorf("refused %+v; want 3 outside the window, 2 replays", got)
		}

		for _, at := range []time.Duration{0, time.Hour, -time.Hour} {
			if !try(off, at) {
				t.Errorf("with window 0, a frame replayed %v later was refused", at)
			}
		}
		// Frames sent later carry later times: the window follows the clocks.
		sender.add(time.Hour)
		receiver.set(t0.Add(time.Hour))
		if err := a.(transport.Datagram).SendDatagram(t.Context(), "b", []byte("fresh")); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got := drain(b.(transport.Datagram).Datagrams()); len(got) != 1 || string(got[0].Data) != "fresh" {
			t.Errorf("a fresh datagram an hour later: got %v", got)
		}
	})
}

// Within the window each sealed frame opens once, at its destination only:
// a copy sent again from the sender's address (as a spoofed UDP source
// would) is refused as a replay, on both paths, whatever it carries (the
// seal cannot tell a data frame from a Prune). Another receiver refuses it
// (the destination is sealed), replay cache or not. With the replay cache
// off, every copy opens at its destination.
func TestReplay(t *testing.T) {
	for _, path := range []transport.Path{transport.PathDatagram, transport.PathStream} {
		t.Run(path.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n := mem.NewNetwork(mem.Config{})
				kr := keyring(t, testKey(1))
				a := wrap(t, listenMem(t, n, "a"), kr)
				b := wrap(t, listenMem(t, n, "b"), kr)
				c := wrap(t, listenMem(t, n, "c"), kr)
				off := wrap(t, listenMem(t, n, "d"), kr, seal.WithReplayCache(0))
				tap := listenMem(t, n, "tap")
				defer tap.Close()
				received := func(s seal.Transport) []transport.Message {
					synctest.Wait()
					if path == transport.PathDatagram {
						return drain(s.(transport.Datagram).Datagrams())
					}
					return drain(s.(transport.Stream).Frames())
				}
				raw := capture(t, a, tap, "b", []byte("prune"), path)
				for range 3 {
					inject(t, a.Unwrap(), "b", bytes.Clone(raw), path)
				}
				if got := received(b); len(got) != 1 || string(got[0].Data) != "prune" {
					t.Errorf("3 copies: delivered %v; want 1", got)
				}
				if got := b.SealStats(); got.Refused != (seal.Refused{Replay: 2}) || got.Opened != 1 {
					t.Errorf("3 copies: opened %d, refused %+v; want 1 opened, 2 replays", got.Opened, got.Refused)
				}
				// A fresh frame with the same payload has a fresh nonce.
				inject(t, a.Unwrap(), "b", capture(t, a, tap, "b", []byte("prune"), path), path)
				if got := received(b); len(got) != 1 {
					t.Errorf("a fresh frame: delivered %d", len(got))
				}
				for range 2 {
					inject(t, a.Unwrap(), "c", bytes.Clone(raw), path)
					inject(t, a.Unwrap(), "d", bytes.Clone(raw), path)
				}
				if got := received(c); len(got) != 0 || c.SealStats().Refused != (seal.Refused{Auth: 2}) {
					t.Errorf("another receiver: delivered %d, refused %+v; want 0 and 2 refused (auth)", len(got), c.SealStats().Refused)
				}
				if got := received(off); len(got) != 0 || off.SealStats().Refused != (seal.Refused{Auth: 2}) {
					t.Errorf("another receiver without a replay cache: delivered %d, refused %+v; want 0 and 2 refused (auth)", len(got), off.SealStats().Refused)
				}
				forD := capture(t, a, tap, "d", []byte("prune"), path)
				for range 2 {
					inject(t, a.Unwrap(), "d", bytes.Clone(forD), path)
				}
				if got := received(off); len(got) != 2 {
					t.Errorf("without a replay cache: delivered %d; want both copies", len(got))
				}
			})
		})
	}
}

// A full replay cache forgets the granule sent earliest (a 32nd of the
// window) and refuses, as outside the window, every frame sent in it from
// then on: the window shrinks, and a replay is still refused. Frames sent
// later open.
func TestReplayCacheFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := mem.NewNetwork(mem.Config{})
		kr := keyring(t, testKey(1))
		const window = 32 * time.Second // granules of 1 s
		clk := newClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
		opts := []seal.Option{seal.WithClock(clk), seal.WithWindow(window), seal.WithReplayCache(4)}
		a := wrap(t, listenMem(t, n, "a"), kr, opts...)
		b := wrap(t, listenMem(t, n, "b"), kr, opts...)
		tap := listenMem(t, n, "tap")
		defer tap.Close()
		send := func() []byte {
			t.Helper()
			raw := capture(t, a, tap, "b", []byte("data"), transport.PathDatagram)
			inject(t, a.Unwrap(), "b", bytes.Clone(raw), transport.PathDatagram)
			return raw
		}
		delivered := func() int {
			synctest.Wait()
			return len(drain(b.(transport.Datagram).Datagrams()))
		}
		first := send()
		for range 3 {
			send()
		}
		if got := delivered(); got != 4 {
			t.Fatalf("4 frames into a cache of 4: delivered %d", got)
		}
		send() // the cache forgets the second they were all sent in
		inject(t, a.Unwrap(), "b", bytes.Clone(first), transport.PathDatagram)
		if got := delivered(); got != 0 {
			t.Errorf("a fifth frame and a replay of the first: delivered %d; want 0", got)
		}
		if got := b.SealStats().Refused; got != (seal.Refused{Window: 2}) {
			t.Errorf("refused %+v; want 2 outside the (shrunk) window", got)
		}
		clk.add(time.Second)
		raw := send()
		inject(t, a.Unwrap(), "b", bytes.Clone(raw), transport.PathDatagram)
		if got := delivered(); got != 1 {
			t.Errorf("a frame sent a second later and its replay: delivered %d; want 1", got)
		}
		if got := b.SealStats().Refused; got != (seal.Refused{Window: 2, Replay: 1}) {
			t.Errorf("refused %+v; want 2 outside the window and 1 replay", got)
		}
	})
}

// progress counts frames received in order from one sender and wakes a
// waiter when a count is reached.
type progress struct {
	mu     sync.Mutex
	next   int // the index of the frame expected next
	want   int
	reach  chan struct{}
	errors []string
}

func (p *progress) got(data []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if want := fmt.Sprintf("frame %d", p.next); string(data) != want {
		p.errors = append(p.errors, fmt.Sprintf("got %q, want %q", data, want))
	}
	p.next++
	if p.reach != nil && p.next >= p.want {
		close(p.reach)
		p.reach = nil
	}
}

// waitFor blocks until n frames have arrived.
func (p *progress) waitFor(n int) {
	p.mu.Lock()
	if p.next >= n {
		p.mu.Unlock()
		return
	}
	ch := make(chan struct{})
	p.reach, p.want = ch, n
	p.mu.Unlock()
	<-ch
}

// Keys rotate while frames flow both ways, in the documented order: add the
// new key everywhere, use it everywhere, remove the old one once frames
// sealed with it have drained. No frame is lost or refused.
func TestRotation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := mem.NewNetwork(mem.Config{QueueSize: 8})
		oldKey, newKey := testKey(1), testKey(2)
		ka, kb := keyring(t, oldKey), keyring(t, oldKey)
		a := wrap(t, listenMem(t, n, "a"), ka)
		b := wrap(t, listenMem(t, n, "b"), kb)
		type side struct {
			s     seal.Transport
			kr    *seal.Keyring
			sent  atomic.Int64 // frames whose SendFrame returned
			limit atomic.Int64 // how many frames to send in all
			recv  progress     // frames from the other side
		}
		sa, sb := &side{s: a, kr: ka}, &side{s: b, kr: kb}
		sa.limit.Store(math.MaxInt64)
		sb.limit.Store(math.MaxInt64)
		var wg sync.WaitGroup
		for _, p := range [][2]*side{{sa, sb}, {sb, sa}} {
			from, to := p[0], p[1]
			wg.Add(2)
			go func() { // sender: frames until the limit, then "end"
				defer wg.Done()
				st := from.s.(transport.Stream)
				for i := 0; int64(i) < from.limit.Load(); i++ {
					if err := st.SendFrame(t.Context(), to.s.LocalAddr(), fmt.Appendf(nil, "frame %d", i)); err != nil {
						t.Errorf("send %d: %v", i, err)
						break
					}
					from.sent.Add(1)
				}
				if err := st.SendFrame(t.Context(), to.s.LocalAddr(), []byte("end")); err != nil {
					t.Errorf("send end: %v", err)
				}
			}()
			go func() { // receiver
				defer wg.Done()
				for m := range to.s.(transport.Stream).Frames() {
					if string(m.Data) == "end" {
						return
					}
					to.recv.got(m.Data)
				}
			}()
		}
		// Step 1: add the new key, one node after the other, traffic going.
		sb.recv.waitFor(300)
		must(t, ka.AddKey(newKey))
		sa.recv.waitFor(600)
		must(t, kb.AddKey(newKey))
		// Step 2: seal with it, one node after the other.
		sb.recv.waitFor(900)
		must(t, ka.UseKey(newKey))
		drainA := int(sa.sent.Load()) + 1 // every frame a sealed with the old key
		sa.recv.waitFor(1200)
		must(t, kb.UseKey(newKey))
		drainB := int(sb.sent.Load()) + 1
		// Step 3: once what was sealed with the old key has arrived,
		// remove it.
		sa.recv.waitFor(drainB)
		sb.recv.waitFor(drainA)
		must(t, ka.RemoveKey(oldKey))
		must(t, kb.RemoveKey(oldKey))
		// Traffic goes on with the new key alone, then stops.
		sa.limit.Store(sa.sent.Load() + 300)
		sb.limit.Store(sb.sent.Load() + 300)
		wg.Wait()
		for name, s := range map[string]*side{"a": sa, "b": sb} {
			if len(s.recv.errors) > 0 {
				t.Errorf("%s received out of order: %v", name, s.recv.errors[:min(5, len(s.recv.errors))])
			}
			other := sb
			if s == sb {
				other = sa
			}
			if got, want := int64(s.recv.next), other.sent.Load(); got != want || want < 1200 {
				t.Errorf("%s received %d frames; the other sent %d (at least 1200 expected)", name, got, want)
			}
			if r := s.s.SealStats().Refused; r.Total() != 0 {
				t.Errorf("%s refused %+v", name, r)
			}
			if k := s.kr.Keys(); len(k) != 1 || !bytes.Equal(k[0], newKey) {
				t.Errorf("%s keys %x; want only the new key", name, k)
			}
		}
		// And the old key no longer opens anything.
		old := wrap(t, listenMem(t, n, "old"), keyring(t, oldKey))
		must(t, old.(transport.Stream).SendFrame(t.Context(), "a", []byte("old")))
		synctest.Wait()
		if r := a.SealStats().Refused; r.UnknownKey != 1 {
			t.Errorf("a frame sealed with the removed key: refused %+v", r)
		}
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// The authenticated identity of an inner TLS transport passes through, in
// Message.Identity and PeerIdentity.
func TestIdentityPassThrough(t *testing.T) {
	ca, err := devcert.NewUnsafeCA()
	must(t, err)
	kr := keyring(t, testKey(1))
	listen := func(name string) seal.Transport {
		conf, err := ca.UnsafeMutualTLS(name, "127.0.0.1")
		must(t, err)
		tr, err := tcp.Listen("127.0.0.1:0", tcp.Config{TLS: conf})
		must(t, err)
		return wrap(t, tr, kr)
	}
	a, b := listen("alpha"), listen("beta")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // a hang guard only
	defer cancel()
	must(t, a.(transport.Stream).SendFrame(ctx, b.LocalAddr(), []byte("hi")))
	select {
	case m := <-b.(transport.Stream).Frames():
		if string(m.Data) != "hi" || m.Identity != "alpha" || m.From != a.LocalAddr() {
			t.Errorf("got %q from %q with identity %q", m.Data, m.From, m.Identity)
		}
	case <-ctx.Done():
		t.Fatal("no frame")
	}
	if id, ok := b.PeerIdentity(a.LocalAddr()); !ok || id != "alpha" {
		t.Errorf("PeerIdentity = %q, %v", id, ok)
	}
}

// Wrapping a TCP transport makes its connections prove their hello with
// the key, also inside udptcp and DatagramsOverStream: sealed nodes talk;
// a dialer without the key, or with another, is refused at the handshake
// (counted in ConnectionsRefused, through the seal's Stats) and delivers
// nothing, before any frame.
func TestWrapProvesTCPHellos(t *testing.T) {
	shapes := map[string]func() transport.Stream{
		"tcp": func() transport.Stream {
			tr, err := tcp.Listen("127.0.0.1:0", tcp.Config{})
			must(t, err)
			return tr
		},
		"DatagramsOverStream": func() transport.Stream {
			tr, err := tcp.Listen("127.0.0.1:0", tcp.Config{})
			must(t, err)
			return transport.DatagramsOverStream(tr, 0)
		},
		"udptcp": func() transport.Stream {
			tr, err := udptcp.Listen("127.0.0.1:0", udp.Config{}, tcp.Config{})
			must(t, err)
			return tr
		},
	}
	for name, listen := range shapes {
		t.Run(name, func(t *testing.T) {
			sealed := func(kr *seal.Keyring) transport.Stream { return wrap(t, listen(), kr).(transport.Stream) }
			kr := keyring(t, testKey(1))
			a, b := sealed(kr), sealed(kr)
			outsider := sealed(keyring(t, testKey(2)))
			plain, err := tcp.Listen("127.0.0.1:0", tcp.Config{})
			must(t, err)
			defer plain.Close()
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // a hang guard only
			defer cancel()
			for _, x := range []transport.Stream{outsider, plain} {
				x.SendFrame(ctx, b.LocalAddr(), []byte("evil"))
			}
			must(t, a.SendFrame(ctx, b.LocalAddr(), []byte("hi")))
			select {
			case m := <-b.Frames():
				if string(m.Data) != "hi" || m.From != a.LocalAddr() {
					t.Errorf("got %q from %q", m.Data, m.From)
				}
			case <-ctx.Done():
				t.Fatal("no frame")
			}
			// b refuses the two on its own goroutines, after their dials
			// returned: round trips from a let them run, for as long as a
			// loaded machine needs (a count of round trips was not enough
			// under -race on two busy cores), up to the hang guard.
			for b.(seal.Transport).Stats().ConnectionsRefused < 2 {
				must(t, a.SendFrame(ctx, b.LocalAddr(), []byte("again")))
				select {
				case <-b.Frames():
				case <-ctx.Done():
					t.Fatalf("watchdog: b refused %d connections in a minute; want the outsider's and the plain one's", b.(seal.Transport).Stats().ConnectionsRefused)
				}
			}
			st := b.(seal.Transport).SealStats()
			if st.Inner.ConnectionsRefused < 2 || st.Refused.Total() != 0 {
				t.Errorf("refused %d connections and %+v frames; want 2 connections refused at the handshake, no frame", st.Inner.ConnectionsRefused, st.Refused)
			}
		})
	}
}
