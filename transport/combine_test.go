package transport_test

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/plumtree-go/plumtree/transport"
	"github.com/plumtree-go/plumtree/transport/mem"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// hang bounds waits that only a bug would make long.
const hang = 10 * time.Second

// dgOnly and stOnly hide the other path of a mem transport.
type dgOnly struct{ *mem.Transport }

func (d dgOnly) SendFrame()    {}
func (d dgOnly) Frames()       {}
func (d dgOnly) MaxFrameSize() {}

type stOnly struct{ *mem.Transport }

func (s stOnly) SendDatagram()    {}
func (s stOnly) Datagrams()       {}
func (s stOnly) MaxDatagramSize() {}

func TestJoinAddressMismatch(t *testing.T) {
	n := mem.NewNetwork(mem.Config{})
	a, _ := n.Listen("a")
	b, _ := n.Listen("b")
	defer a.Close()
	defer b.Close()
	if _, err := transport.Join(a, b); err == nil {
		t.Error("Join of different addresses succeeded")
	}
	j, err := transport.Join(a, a)
	if err != nil {
		t.Fatal(err)
	}
	if j.Datagram() != transport.Datagram(a) || j.Stream() != transport.Stream(a) {
		t.Error("Datagram/Stream do not return the parts")
	}
	if _, ok := j.PeerIdentity("b"); ok {
		t.Error("identity from a transport that has none")
	}
	if err := j.Close(); err != nil || j.Close() != nil {
		t.Error("Close failed")
	}
}

func recv(t *testing.T, ch <-chan transport.Message) transport.Message {
	t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatal("channel closed")
		}
		return m
	case <-time.After(hang):
		t.Fatal("nothing received")
	}
	return transport.Message{}
}

func TestDatagramsOverStreamSplit(t *testing.T) {
	ctx := context.Background()
	n := mem.NewNetwork(mem.Config{MaxFrameSize: 100})
	sa, _ := n.Listen("a")
	sb, _ := n.Listen("b")
	a := transport.DatagramsOverStream(sa, 0)
	b := transport.DatagramsOverStream(sb, 10)
	defer a.Close()
	defer b.Close()
	if a.MaxDatagramSize() != 99 || a.MaxFrameSize() != 99 || b.MaxDatagramSize() != 10 {
		t.Errorf("limits: %d %d %d", a.MaxDatagramSize(), a.MaxFrameSize(), b.MaxDatagramSize())
	}
	var tl *transport.TooLargeError
	if err := b.SendDatagram(ctx, "a", make([]byte, 11)); !errors.As(err, &tl) || tl.Limit != 10 || tl.Path != transport.PathDatagram {
		t.Errorf("over-limit datagram: %v", err)
	}
	if err := b.SendFrame(ctx, "a", make([]byte, 100)); !errors.As(err, &tl) || tl.Limit != 99 || tl.Path != transport.PathStream {
		t.Errorf("over-limit frame: %v", err)
	}

	if err := a.SendDatagram(ctx, "b", []byte("dg")); err != nil {
		t.Fatal(err)
	}
	if err := a.SendFrame(ctx, "b", []byte("fr")); err != nil {
		t.Fatal(err)
	}
	if m := recv(t, b.Datagrams()); string(m.Data) != "dg" || m.From != "a" || m.Path != transport.PathDatagram {
		t.Errorf("datagram %+v", m)
	}
	if m := recv(t, b.Frames()); string(m.Data) != "fr" || m.From != "a" || m.Path != transport.PathStream {
		t.Errorf("frame %+v", m)
	}
	// Untagged and unknown frames sent on the raw stream are dropped.
	sa.SendFrame(ctx, "b", nil)
	sa.SendFrame(ctx, "b", []byte("?x"))
	a.SendFrame(ctx, "b", []byte("after"))
	if m := recv(t, b.Frames()); string(m.Data) != "after" {
		t.Errorf("frame %q", m.Data)
	}
	if d := b.Stats().FramesDropped; d != 2 {
		t.Errorf("FramesDropped = %d, want 2", d)
	}
}

// SendDatagram never blocks, even when the stream towards a peer that does
// not read is full; every accepted datagram is counted once by Close.
func TestDatagramsOverStreamNeverBlocks(t *testing.T) {
	ctx := context.Background()
	n := mem.NewNetwork(mem.Config{QueueSize: 2})
	sa, _ := n.Listen("a")
	sb, _ := n.Listen("b")
	a := transport.DatagramsOverStream(sa, 0)
	b := transport.DatagramsOverStream(sb, 0)
	defer b.Close()
	const k = 1000
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range k {
				if err := a.SendDatagram(ctx, "b", []byte("x")); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	s := a.Stats()
	if s.DatagramsSent+s.DatagramsDropped != 4*k {
		t.Errorf("sent %d + dropped %d != %d", s.DatagramsSent, s.DatagramsDropped, 4*k)
	}
	if s.DatagramsDropped == 0 {
		t.Error("nothing dropped towards a peer that does not read")
	}
	if err := a.SendDatagram(ctx, "b", nil); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
	if err := a.SendFrame(ctx, "b", nil); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
}

// TestStatsAdd sets every field of two Stats to distinct values and checks
// that Add sums each one: a field added to Stats but not to Add fails here.
func TestStatsAdd(t *testing.T) {
	var a, b transport.Stats
	va, vb := reflect.ValueOf(&a).Elem(), reflect.ValueOf(&b).Elem()
	for i := range va.NumField() {
		switch va.Field(i).Kind() {
		case reflect.Uint64:
			va.Field(i).SetUint(uint64(1 + i))
			vb.Field(i).SetUint(uint64(100 * (1 + i)))
		case reflect.Int:
			va.Field(i).SetInt(int64(1 + i))
			vb.Field(i).SetInt(int64(100 * (1 + i)))
		default:
			t.Fatalf("Stats.%s has kind %s: teach Add and this test to sum it", va.Type().Field(i).Name, va.Field(i).Kind())
		}
	}
	sum := reflect.ValueOf(a.Add(b))
	for i := range sum.NumField() {
		var got, want int64
		if f := sum.Field(i); f.Kind() == reflect.Uint64 {
			got, want = int64(f.Uint()), int64(va.Field(i).Uint()+vb.Field(i).Uint())
		} else {
			got, want = f.Int(), va.Field(i).Int()+vb.Field(i).Int()
		}
		if got != want {
			t.Errorf("Add: %s = %d, want %d", sum.Type().Field(i).Name, got, want)
		}
	}
}

// authStream is a stream transport that declares it authenticates its peers.
type authStream struct{ stOnly }

func (authStream) Authenticates() bool { return true }

// Only datagrams that ride an authenticated stream carry a verified
// identity: DatagramsOverStream's do, Join's (UDP beside a TLS stream) do
// not, whatever the stream verifies. The gossip core sends by datagram
// with Authenticate set only on the first.
func TestAuthenticatesDatagrams(t *testing.T) {
	n := mem.NewNetwork(mem.Config{})
	a, _ := n.Listen("a")
	defer a.Close()
	over := transport.DatagramsOverStream(authStream{stOnly{a}}, 0)
	defer over.Close()
	if !transport.Authenticates(over) || !transport.AuthenticatesDatagrams(over) {
		t.Errorf("datagrams over an authenticated stream: Authenticates %v, AuthenticatesDatagrams %v; want both",
			transport.Authenticates(over), transport.AuthenticatesDatagrams(over))
	}
	plain := transport.DatagramsOverStream(stOnly{a}, 0)
	defer plain.Close()
	if transport.AuthenticatesDatagrams(plain) {
		t.Error("datagrams over a stream that authenticates nobody claim a verified identity")
	}
	j, err := transport.Join(dgOnly{a}, authStream{stOnly{a}})
	if err != nil {
		t.Fatal(err)
	}
	if !transport.Authenticates(j) || transport.AuthenticatesDatagrams(j) {
		t.Errorf("joined datagrams beside an authenticated stream: Authenticates %v, AuthenticatesDatagrams %v; want true, false",
			transport.Authenticates(j), transport.AuthenticatesDatagrams(j))
	}
}
