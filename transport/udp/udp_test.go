package udp_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/plumtree-go/plumtree/transport"
	"github.com/plumtree-go/plumtree/transport/udp"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// hang bounds waits that only a bug would make long.
const hang = 10 * time.Second

func listen(t testing.TB, cfg udp.Config) *udp.Transport {
	t.Helper()
	tr, err := udp.Listen("127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// exchange sends b from a to b's address until b receives a datagram with
// that content (datagrams may be lost, even on loopback) and returns it.
func exchange(t *testing.T, from, to *udp.Transport, data []byte) transport.Message {
	t.Helper()
	ctx := context.Background()
	deadline := time.After(hang)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	buf := bytes.Clone(data)
	for {
		if err := from.SendDatagram(ctx, to.LocalAddr(), buf); err != nil {
			t.Fatal(err)
		}
		for i := range buf {
			buf[i] ^= 0xff // the sender's slice is the sender's again
		}
		select {
		case m := <-to.Datagrams():
			if bytes.Equal(m.Data, data) {
				return m
			}
		case <-tick.C:
		case <-deadline:
			t.Fatalf("no datagram of %d bytes from %s to %s", len(data), from.LocalAddr(), to.LocalAddr())
		}
		copy(buf, data)
	}
}

func TestBothDirections(t *testing.T) {
	a, b := listen(t, udp.Config{}), listen(t, udp.Config{})
	m := exchange(t, a, b, []byte("hello b"))
	if m.From != a.LocalAddr() || m.Path != transport.PathDatagram {
		t.Errorf("b got From=%q Path=%v, want From=%q Path=datagram", m.From, m.Path, a.LocalAddr())
	}
	m = exchange(t, b, a, []byte("hello a"))
	if m.From != b.LocalAddr() {
		t.Errorf("a got From=%q, want %q", m.From, b.LocalAddr())
	}
}

func TestSizes(t *testing.T) {
	for _, max := range []int{0, 64, 1400, udp.MaxDatagramSizeLimit} {
		a, b := listen(t, udp.Config{MaxDatagramSize: max}), listen(t, udp.Config{MaxDatagramSize: max})
		limit := a.MaxDatagramSize()
		if max == 0 && limit != udp.DefaultMaxDatagramSize {
			t.Fatalf("default MaxDatagramSize = %d, want %d", limit, udp.DefaultMaxDatagramSize)
		}
		if m := exchange(t, a, b, []byte{}); len(m.Data) != 0 || m.Data == nil {
			t.Errorf("empty datagram arrived as %v", m.Data)
		}
		full := bytes.Repeat([]byte{0x5a}, limit)
		full[0], full[limit-1] = 1, 2
		exchange(t, a, b, full)

		err := a.SendDatagram(context.Background(), b.LocalAddr(), make([]byte, limit+1))
		var tl *transport.TooLargeError
		if !errors.As(err, &tl) || tl.Limit != limit || tl.Size != limit+1 || tl.Path != transport.PathDatagram {
			t.Errorf("over-limit send: %v, want *TooLargeError{datagram, %d, %d}", err, limit+1, limit)
		}
	}
}

func TestConfigRange(t *testing.T) {
	for _, max := range []int{-1, udp.MaxDatagramSizeLimit + 1} {
		if tr, err := udp.Listen("127.0.0.1:0", udp.Config{MaxDatagramSize: max}); err == nil {
			tr.Close()
			t.Errorf("Listen with MaxDatagramSize %d succeeded", max)
		}
	}
}

// A receiver with a smaller limit drops (and counts) what it cannot accept.
func TestReceiveOverLimit(t *testing.T) {
	a := listen(t, udp.Config{MaxDatagramSize: 2000})
	b := listen(t, udp.Config{MaxDatagramSize: 100})
	ctx := context.Background()
	// Send big then small, until a small one arrives; every big one before
	// it reached b or was lost, and none may be delivered.
	deadline := time.After(hang)
	for {
		if err := a.SendDatagram(ctx, b.LocalAddr(), make([]byte, 1000)); err != nil {
			t.Fatal(err)
		}
		if err := a.SendDatagram(ctx, b.LocalAddr(), []byte("small")); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-b.Datagrams():
			if string(m.Data) != "small" {
				t.Fatalf("b delivered %d bytes over its limit", len(m.Data))
			}
			if b.Stats().DatagramsDropped == 0 {
				// The big one before it was lost on the way; try again.
				continue
			}
			return
		case <-deadline:
			t.Fatal("nothing arrived")
		}
	}
}

// SendDatagram to a peer that never reads does not block; the receiver
// drops what its queue cannot hold, and the sender's counters add up.
func TestNonReadingPeer(t *testing.T) {
	a := listen(t, udp.Config{})
	b := listen(t, udp.Config{ReceiveQueueSize: 4})
	ctx := context.Background()
	const n = 2000
	ok := 0
	for range n {
		if err := a.SendDatagram(ctx, b.LocalAddr(), []byte("x")); err != nil {
			t.Fatal(err)
		}
		ok++
	}
	s := a.Stats()
	if s.DatagramsSent+s.DatagramsDropped != uint64(ok) {
		t.Errorf("sender: sent %d + dropped %d != %d accepted", s.DatagramsSent, s.DatagramsDropped, ok)
	}
	if s.BytesSent != s.DatagramsSent {
		t.Errorf("BytesSent = %d, want %d", s.BytesSent, s.DatagramsSent)
	}
	// b's queue holds 4; the rest that reached it were dropped.
	b.Close()
	rs := b.Stats()
	if rs.DatagramsReceived > 4 {
		t.Errorf("receiver queued %d datagrams, queue size 4", rs.DatagramsReceived)
	}
	got := 0
	for range b.Datagrams() {
		got++
	}
	if uint64(got) != rs.DatagramsReceived {
		t.Errorf("read %d datagrams after Close, Stats says %d received", got, rs.DatagramsReceived)
	}
}

func TestClose(t *testing.T) {
	a, b := listen(t, udp.Config{}), listen(t, udp.Config{})
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, ok := <-a.Datagrams(); ok {
		t.Error("Datagrams not closed")
	}
	err := a.SendDatagram(context.Background(), b.LocalAddr(), []byte("x"))
	if !errors.Is(err, transport.ErrClosed) {
		t.Errorf("send after Close: %v, want ErrClosed", err)
	}
}

// A peer closed and listening again on its address is reachable again.
func TestRestart(t *testing.T) {
	a := listen(t, udp.Config{})
	b, err := udp.Listen("127.0.0.1:0", udp.Config{})
	if err != nil {
		t.Fatal(err)
	}
	addr := b.LocalAddr()
	exchange(t, a, b, []byte("one"))
	b.Close()
	b2, err := udp.Listen(addr, udp.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	if m := exchange(t, a, b2, []byte("two")); m.From != a.LocalAddr() {
		t.Errorf("From = %q", m.From)
	}
}

func TestBadAddress(t *testing.T) {
	a := listen(t, udp.Config{})
	if err := a.SendDatagram(context.Background(), "no port", []byte("x")); err == nil {
		t.Error("send to an address without a port succeeded")
	}
}

// The read loop takes several datagrams per system call; every one of a
// batch is delivered, whole, in order per sender, with its own sender's
// address.
func TestBatchedReadKeepsEveryDatagram(t *testing.T) {
	var mu sync.Mutex
	largest := 0
	r, start, err := udp.ListenPaused("127.0.0.1:0", udp.Config{}, func(k int) {
		mu.Lock()
		largest = max(largest, k)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	a, b := listen(t, udp.Config{}), listen(t, udp.Config{})
	const each = 20
	ctx := context.Background()
	for i := range each {
		for j, s := range []*udp.Transport{a, b} {
			if err := s.SendDatagram(ctx, r.LocalAddr(), []byte(fmt.Sprintf("%d-%02d", j, i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	start() // the kernel holds the 40 datagrams: the first reads are full batches
	next := map[string]int{}
	senders := map[string]string{a.LocalAddr(): "0", b.LocalAddr(): "1"}
	watchdog := time.NewTimer(10 * time.Second)
	defer watchdog.Stop()
	for range 2 * each {
		select {
		case m := <-r.Datagrams():
			j, ok := senders[m.From]
			if !ok {
				t.Fatalf("datagram %q from %s, not a sender", m.Data, m.From)
			}
			if want := fmt.Sprintf("%s-%02d", j, next[j]); string(m.Data) != want {
				t.Fatalf("from %s: got %q, want %q", m.From, m.Data, want)
			}
			next[j]++
		case <-watchdog.C:
			t.Fatalf("watchdog: received %v of %d from each sender", next, each)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if largest < 2 {
		t.Errorf("no read returned more than one datagram (largest batch %d): the batched path went untested", largest)
	}
}
