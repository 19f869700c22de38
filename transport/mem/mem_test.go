package mem_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/plumtree-go/plumtree/transport"
	"github.com/plumtree-go/plumtree/transport/mem"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// listen opens a transport and closes it when the test ends.
func listen(t *testing.T, n *mem.Network, addr string) *mem.Transport {
	t.Helper()
	tr, err := n.Listen(addr)
	if err != nil {
		t.Fatalf("Listen(%q): %v", addr, err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// recv takes one message from ch without waiting.
func recv(t *testing.T, ch <-chan transport.Message) transport.Message {
	t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatal("channel closed, want a message")
		}
		return m
	default:
		t.Fatal("no message ready")
		return transport.Message{}
	}
}

// none asserts that ch has nothing ready.
func none(t *testing.T, ch <-chan transport.Message) {
	t.Helper()
	select {
	case m, ok := <-ch:
		if ok {
			t.Fatalf("unexpected message %q from %s", m.Data, m.From)
		}
		t.Fatal("channel unexpectedly closed")
	default:
	}
}

// recvFrame waits for one frame; frames go through the transport's
// goroutine, so they are read with a blocking receive inside a bubble or
// with a bounded wait outside one.
func recvFrame(t *testing.T, tr *mem.Transport) transport.Message {
	t.Helper()
	m, ok := <-tr.Frames()
	if !ok {
		t.Fatal("Frames closed, want a frame")
	}
	return m
}

func seqBytes(i int) []byte { return binary.BigEndian.AppendUint32(nil, uint32(i)) }
func seqOf(b []byte) int    { return int(binary.BigEndian.Uint32(b)) }

func TestInterfaces(t *testing.T) {
	var tr any = (*mem.Transport)(nil)
	if _, ok := tr.(transport.Datagram); !ok {
		t.Error("not a transport.Datagram")
	}
	if _, ok := tr.(transport.Stream); !ok {
		t.Error("not a transport.Stream")
	}
	if _, ok := tr.(transport.StatsReporter); !ok {
		t.Error("not a transport.StatsReporter")
	}
}

func TestDatagramBothDirections(t *testing.T) {
	ctx := context.Background()
	n := mem.NewNetwork(mem.Config{})
	a, b := listen(t, n, "a"), listen(t, n, "b")

	buf := []byte("hello b")
	if err := a.SendDatagram(ctx, "b", buf); err != nil {
		t.Fatal(err)
	}
	copy(buf, "XXXXX") // the sender keeps ownership; the receiver has a copy
	m := recv(t, b.Datagrams())
	if m.From != "a" || m.Path != transport.PathDatagram || string(m.Data) != "hello b" {
		t.Fatalf("b got %+v (%q)", m, m.Data)
	}

	if err := b.SendDatagram(ctx, "a", []byte("hello a")); err != nil {
		t.Fatal(err)
	}
	m = recv(t, a.Datagrams())
	if m.From != "b" || m.Path != transport.PathDatagram || string(m.Data) != "hello a" {
		t.Fatalf("a got %+v (%q)", m, m.Data)
	}
	none(t, a.Datagrams())
	none(t, b.Datagrams())

	if got := a.MaxDatagramSize(); got != mem.DefaultMaxDatagramSize {
		t.Errorf("MaxDatagramSize = %d, want %d", got, mem.DefaultMaxDatagramSize)
	}
}

func TestFrameBothDirections(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		n := mem.NewNetwork(mem.Config{})
		a, b := listen(t, n, "a"), listen(t, n, "b")

		buf := []byte("frame to b")
		if err := a.SendFrame(ctx, "b", buf); err != nil {
			t.Fatal(err)
		}
		copy(buf, "XXXXX")
		m := recvFrame(t, b)
		if m.From != "a" || m.Path != transport.PathStream || string(m.Data) != "frame to b" {
			t.Fatalf("b got %+v (%q)", m, m.Data)
		}

		if err := b.SendFrame(ctx, "a", []byte("frame to a")); err != nil {
			t.Fatal(err)
		}
		m = recvFrame(t, a)
		if m.From != "b" || m.Path != transport.PathStream || string(m.Data) != "frame to a" {
			t.Fatalf("a got %+v (%q)", m, m.Data)
		}

		if got := a.MaxFrameSize(); got != mem.DefaultMaxFrameSize {
			t.Errorf("MaxFrameSize = %d, want %d", got, mem.DefaultMaxFrameSize)
		}
		sa, sb := a.Stats(), b.Stats()
		if sa.FramesSent != 1 || sa.FramesReceived != 1 || sb.FramesSent != 1 || sb.FramesReceived != 1 {
			t.Errorf("stats a=%+v b=%+v", sa, sb)
		}
		if sa.Connections != 1 || sb.Connections != 1 || n.Stats().Connections != 1 {
			t.Errorf("connections a=%d b=%d net=%d, want 1 1 1", sa.Connections, sb.Connections, n.Stats().Connections)
		}
		b.Close()
		if c := a.Stats().Connections; c != 0 {
			t.Errorf("connections after peer closed = %d, want 0", c)
		}
	})
}

func TestTooLarge(t *testing.T) {
	ctx := context.Background()
	n := mem.NewNetwork(mem.Config{MaxDatagramSize: 10, MaxFrameSize: 20})
	a := listen(t, n, "a")
	listen(t, n, "b")

	if err := a.SendDatagram(ctx, "b", make([]byte, 10)); err != nil {
		t.Fatalf("datagram at the limit: %v", err)
	}
	err := a.SendDatagram(ctx, "b", make([]byte, 11))
	var tl *transport.TooLargeError
	if !errors.As(err, &tl) {
		t.Fatalf("datagram over the limit: err = %v, want *TooLargeError", err)
	}
	if *tl != (transport.TooLargeError{Path: transport.PathDatagram, Size: 11, Limit: 10}) {
		t.Errorf("datagram: %+v", *tl)
	}

	if err := a.SendFrame(ctx, "b", make([]byte, 20)); err != nil {
		t.Fatalf("frame at the limit: %v", err)
	}
	err = a.SendFrame(ctx, "b", make([]byte, 21))
	if !errors.As(err, &tl) {
		t.Fatalf("frame over the limit: err = %v, want *TooLargeError", err)
	}
	if *tl != (transport.TooLargeError{Path: transport.PathStream, Size: 21, Limit: 20}) {
		t.Errorf("frame: %+v", *tl)
	}
	if a.MaxDatagramSize() != 10 || a.MaxFrameSize() != 20 {
		t.Errorf("limits = %d, %d", a.MaxDatagramSize(), a.MaxFrameSize())
	}
	if s := a.Stats(); s.DatagramsSent != 1 || s.FramesSent != 1 {
		t.Errorf("refused frames must not count as sent: %+v", s)
	}
}

func TestStreamOrderingWithLatency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		const latency = 10 * time.Millisecond
		n := mem.NewNetwork(mem.Config{Latency: latency, Jitter: 50 * time.Millisecond})
		a, b := listen(t, n, "a"), listen(t, n, "b")
		start := time.Now()

		// Frames sent at different times, in bursts, all arrive in order and
		// no earlier than latency after they were sent.
		const total = 60
		sentAt := make([]time.Time, total)
		go func() {
			for i := range total {
				sentAt[i] = time.Now()
				if err := a.SendFrame(ctx, "b", seqBytes(i)); err != nil {
					t.Error(err)
					return
				}
				if i%7 == 0 {
					time.Sleep(3 * time.Millisecond)
				}
			}
		}()

		synctest.Wait()
		for i := range total {
			m := recvFrame(t, b)
			if got := seqOf(m.Data); got != i {
				t.Fatalf("frame number %d arrived in place %d", got, i)
			}
			if d := time.Since(sentAt[i]); d < latency {
				t.Fatalf("frame %d arrived %v after sending, want >= %v", i, d, latency)
			}
		}
		if time.Since(start) < latency {
			t.Fatal("no latency at all")
		}
		if s := b.Stats(); s.FramesReceived != total {
			t.Errorf("FramesReceived = %d, want %d", s.FramesReceived, total)
		}
	})
}

func TestStreamLatencyExact(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := mem.NewNetwork(mem.Config{Latency: 5 * time.Millisecond})
		a, b := listen(t, n, "a"), listen(t, n, "b")
		if err := a.SendFrame(context.Background(), "b", []byte("x")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5*time.Millisecond - time.Nanosecond)
		synctest.Wait()
		none(t, b.Frames())
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if m := recv(t, b.Frames()); string(m.Data) != "x" {
			t.Fatalf("got %q", m.Data)
		}
	})
}

func TestDatagramLatencyAndJitter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const latency, jitter = 5 * time.Millisecond, 10 * time.Millisecond
		n := mem.NewNetwork(mem.Config{Seed: 7, Latency: latency, Jitter: jitter})
		a, b := listen(t, n, "a"), listen(t, n, "b")
		start := time.Now()
		const total = 200
		for i := range total {
			if err := a.SendDatagram(context.Background(), "b", seqBytes(i)); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		none(t, b.Datagrams())

		var arrivals []time.Duration
		inOrder := true
		last := -1
		for len(arrivals) < total {
			m := <-b.Datagrams()
			arrivals = append(arrivals, time.Since(start))
			if seqOf(m.Data) < last {
				inOrder = false
			}
			last = seqOf(m.Data)
		}
		minA, maxA := arrivals[0], arrivals[len(arrivals)-1]
		if minA < latency || maxA >= latency+jitter {
			t.Errorf("arrivals in [%v, %v], want within [%v, %v)", minA, maxA, latency, latency+jitter)
		}
		if maxA-minA < jitter/2 {
			t.Errorf("arrivals spread over %v only: no jitter", maxA-minA)
		}
		if inOrder {
			t.Error("jitter never reordered 200 datagrams")
		}
	})
}

// dropPattern sends total datagrams and reports which arrived.
func dropPattern(t *testing.T, cfg mem.Config, total int) ([]bool, transport.Stats) {
	t.Helper()
	n := mem.NewNetwork(cfg)
	a := listen(t, n, "a")
	b := listen(t, n, "b")
	got := make([]bool, total)
	for i := range total {
		if err := a.SendDatagram(context.Background(), "b", seqBytes(i)); err != nil {
			t.Fatal(err)
		}
	drain:
		for {
			select {
			case m := <-b.Datagrams():
				got[seqOf(m.Data)] = true
			default:
				break drain
			}
		}
	}
	return got, n.Stats()
}

func TestDropRateDeterministic(t *testing.T) {
	const total, rate = 2000, 0.3
	cfg := mem.Config{Seed: 42, DropRate: rate}
	p1, s1 := dropPattern(t, cfg, total)
	p2, _ := dropPattern(t, cfg, total)
	if fmt.Sprint(p1) != fmt.Sprint(p2) {
		t.Fatal("same seed gave different drop patterns")
	}
	dropped := 0
	for _, ok := range p1 {
		if !ok {
			dropped++
		}
	}
	if got := float64(dropped) / total; got < rate-0.05 || got > rate+0.05 {
		t.Errorf("drop rate %.3f, want about %.2f", got, rate)
	}
	if s1.DatagramsDropped != uint64(dropped) || s1.DatagramsReceived != uint64(total-dropped) || s1.DatagramsSent != total {
		t.Errorf("stats %+v, dropped %d of %d", s1, dropped, total)
	}

	// Another seed gives another pattern, and the drop pattern does not
	// depend on the other rates: duplicates change nothing about which
	// datagrams are lost.
	p3, _ := dropPattern(t, mem.Config{Seed: 43, DropRate: rate}, total)
	if fmt.Sprint(p1) == fmt.Sprint(p3) {
		t.Error("different seeds gave the same drop pattern")
	}
	p4, _ := dropPattern(t, mem.Config{Seed: 42, DropRate: rate, DuplicateRate: 0.5}, total)
	if fmt.Sprint(p1) != fmt.Sprint(p4) {
		t.Error("adding duplicates changed the drop pattern")
	}
}

func TestSetDropRate(t *testing.T) {
	ctx := context.Background()
	n := mem.NewNetwork(mem.Config{Seed: 1})
	a, b := listen(t, n, "a"), listen(t, n, "b")
	n.SetDropRate(1)
	for range 50 {
		if err := a.SendDatagram(ctx, "b", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	none(t, b.Datagrams())
	if s := a.Stats(); s.DatagramsDropped != 50 {
		t.Errorf("DatagramsDropped = %d, want 50", s.DatagramsDropped)
	}
	n.SetDropRate(0)
	for range 50 {
		if err := a.SendDatagram(ctx, "b", []byte("y")); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(b.Datagrams()); got != 50 {
		t.Errorf("%d datagrams queued after SetDropRate(0), want 50", got)
	}
}

func TestDropRateDoesNotAffectStreams(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := mem.NewNetwork(mem.Config{DropRate: 1, DuplicateRate: 1, ReorderRate: 1})
		a, b := listen(t, n, "a"), listen(t, n, "b")
		for i := range 20 {
			if err := a.SendFrame(context.Background(), "b", seqBytes(i)); err != nil {
				t.Fatal(err)
			}
		}
		for i := range 20 {
			if got := seqOf(recvFrame(t, b).Data); got != i {
				t.Fatalf("frame %d, want %d", got, i)
			}
		}
		synctest.Wait()
		none(t, b.Frames())
	})
}

func TestDuplicate(t *testing.T) {
	ctx := context.Background()
	n := mem.NewNetwork(mem.Config{DuplicateRate: 1})
	a, b := listen(t, n, "a"), listen(t, n, "b")
	if err := a.SendDatagram(ctx, "b", []byte("dup")); err != nil {
		t.Fatal(err)
	}
	m1, m2 := recv(t, b.Datagrams()), recv(t, b.Datagrams())
	none(t, b.Datagrams())
	if string(m1.Data) != "dup" || string(m2.Data) != "dup" || m1.From != "a" || m2.From != "a" {
		t.Fatalf("got %+v and %+v", m1, m2)
	}
	m1.Data[0] = 'X'
	if string(m2.Data) != "dup" {
		t.Error("the two copies share their bytes")
	}
	if s := b.Stats(); s.DatagramsReceived != 2 {
		t.Errorf("DatagramsReceived = %d, want 2", s.DatagramsReceived)
	}

	// About half with rate 0.5.
	n2 := mem.NewNetwork(mem.Config{Seed: 9, DuplicateRate: 0.5, QueueSize: 5000})
	c, d := listen(t, n2, "c"), listen(t, n2, "d")
	for range 1000 {
		c.SendDatagram(ctx, "d", []byte("x"))
	}
	if got := len(d.Datagrams()); got < 1400 || got > 1600 {
		t.Errorf("%d datagrams received for 1000 sent at duplicate rate 0.5", got)
	}
}

func TestReorder(t *testing.T) {
	run := func() []int {
		var order []int
		synctest.Test(t, func(t *testing.T) {
			n := mem.NewNetwork(mem.Config{Seed: 5, ReorderRate: 0.2})
			a, b := listen(t, n, "a"), listen(t, n, "b")
			const total = 100
			for i := range total {
				if err := a.SendDatagram(context.Background(), "b", seqBytes(i)); err != nil {
					t.Fatal(err)
				}
			}
			for range total {
				order = append(order, seqOf((<-b.Datagrams()).Data))
			}
			synctest.Wait()
			none(t, b.Datagrams())
		})
		return order
	}
	o1, o2 := run(), run()
	if fmt.Sprint(o1) != fmt.Sprint(o2) {
		t.Fatal("same seed gave different orders")
	}
	late := 0
	for i := 1; i < len(o1); i++ {
		if o1[i] < o1[i-1] {
			late++
		}
	}
	if late == 0 {
		t.Error("nothing was reordered at rate 0.2")
	}
	seen := map[int]bool{}
	for _, v := range o1 {
		seen[v] = true
	}
	if len(seen) != 100 {
		t.Errorf("%d distinct datagrams arrived, want 100", len(seen))
	}
}

func TestPartitionAndHeal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		n := mem.NewNetwork(mem.Config{})
		a, b, c := listen(t, n, "a"), listen(t, n, "b"), listen(t, n, "c")
		n.Partition([]string{"a"}, []string{"b"}) // c is in no group

		// a and b cannot reach each other, on either path.
		if err := a.SendDatagram(ctx, "b", []byte("d")); err != nil {
			t.Fatal(err)
		}
		if err := b.SendFrame(ctx, "a", []byte("f")); err != nil {
			t.Fatalf("frame across the partition: %v, want nil (lost)", err)
		}
		synctest.Wait()
		none(t, b.Datagrams())
		none(t, a.Frames())
		if s := a.Stats(); s.DatagramsDropped != 1 {
			t.Errorf("a.DatagramsDropped = %d, want 1", s.DatagramsDropped)
		}
		if s := b.Stats(); s.FramesDropped != 1 || s.FramesSent != 1 {
			t.Errorf("b stats %+v, want 1 frame sent and dropped", s)
		}

		// c reaches both and both reach c.
		for _, from := range []*mem.Transport{a, b} {
			if err := from.SendDatagram(ctx, "c", []byte(from.LocalAddr())); err != nil {
				t.Fatal(err)
			}
			if m := recv(t, c.Datagrams()); m.From != from.LocalAddr() {
				t.Errorf("c got datagram from %s, want %s", m.From, from.LocalAddr())
			}
			if err := c.SendFrame(ctx, from.LocalAddr(), []byte("c")); err != nil {
				t.Fatal(err)
			}
			if m := recvFrame(t, from); m.From != "c" {
				t.Errorf("%s got frame from %s", from.LocalAddr(), m.From)
			}
		}

		// A new partition replaces the old one.
		n.Partition([]string{"a", "b"}, []string{"c"})
		a.SendDatagram(ctx, "b", []byte("ab"))
		if m := recv(t, b.Datagrams()); string(m.Data) != "ab" {
			t.Errorf("got %q", m.Data)
		}
		a.SendDatagram(ctx, "c", []byte("ac"))
		none(t, c.Datagrams())

		n.Heal()
		a.SendDatagram(ctx, "c", []byte("healed"))
		if m := recv(t, c.Datagrams()); string(m.Data) != "healed" {
			t.Errorf("got %q", m.Data)
		}
		if err := c.SendFrame(ctx, "a", []byte("healed")); err != nil {
			t.Fatal(err)
		}
		if m := recvFrame(t, a); string(m.Data) != "healed" {
			t.Errorf("got %q", m.Data)
		}
	})
}

func TestStreamBackpressure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := mem.NewNetwork(mem.Config{QueueSize: 2})
		a, b := listen(t, n, "a"), listen(t, n, "b")
		ctx := context.Background()
		for i := range 2 {
			if err := a.SendFrame(ctx, "b", seqBytes(i)); err != nil {
				t.Fatal(err)
			}
		}

		// The third frame blocks: nobody reads b.
		cctx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() { errc <- a.SendFrame(cctx, "b", seqBytes(2)) }()
		synctest.Wait()
		select {
		case err := <-errc:
			t.Fatalf("SendFrame to a full queue returned %v, want it to block", err)
		default:
		}
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatalf("after cancel: %v, want context.Canceled", err)
		}

		// A deadline works the same way, in virtual time.
		dctx, dcancel := context.WithTimeout(ctx, time.Second)
		defer dcancel()
		start := time.Now()
		if err := a.SendFrame(dctx, "b", seqBytes(2)); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("with deadline: %v", err)
		}
		if d := time.Since(start); d != time.Second {
			t.Errorf("blocked for %v, want 1s", d)
		}

		// Reading one frame makes room for a blocked sender.
		go func() { errc <- a.SendFrame(ctx, "b", seqBytes(2)) }()
		synctest.Wait()
		if got := seqOf(recvFrame(t, b).Data); got != 0 {
			t.Fatalf("first frame %d", got)
		}
		if err := <-errc; err != nil {
			t.Fatalf("blocked sender after a read: %v", err)
		}
		for want := 1; want <= 2; want++ {
			if got := seqOf(recvFrame(t, b).Data); got != want {
				t.Fatalf("frame %d, want %d", got, want)
			}
		}
		if s := a.Stats(); s.FramesSent != 3 || s.FramesDropped != 0 {
			t.Errorf("a stats %+v, want 3 sent and none dropped", s)
		}
	})
}

func TestBackpressureWithLatency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Frames in flight count against the queue.
		n := mem.NewNetwork(mem.Config{QueueSize: 3, Latency: time.Second})
		a, b := listen(t, n, "a"), listen(t, n, "b")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		for i := range 3 {
			if err := a.SendFrame(ctx, "b", seqBytes(i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := a.SendFrame(ctx, "b", seqBytes(3)); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("fourth frame: %v, want DeadlineExceeded", err)
		}
		for i := range 3 {
			if got := seqOf(recvFrame(t, b).Data); got != i {
				t.Fatalf("frame %d, want %d", got, i)
			}
		}
	})
}

func TestDatagramQueueFull(t *testing.T) {
	ctx := context.Background()
	n := mem.NewNetwork(mem.Config{QueueSize: 3})
	a, b := listen(t, n, "a"), listen(t, n, "b")
	for i := range 5 {
		if err := a.SendDatagram(ctx, "b", seqBytes(i)); err != nil {
			t.Fatalf("SendDatagram to a full queue: %v, want nil", err)
		}
	}
	for i := range 3 {
		if got := seqOf(recv(t, b.Datagrams()).Data); got != i {
			t.Errorf("datagram %d, want %d", got, i)
		}
	}
	none(t, b.Datagrams())
	if s := b.Stats(); s.DatagramsReceived != 3 || s.DatagramsDropped != 2 || s.BytesReceived != 12 {
		t.Errorf("receiver stats %+v, want 3 received, 2 dropped, 12 bytes", s)
	}
	if s := a.Stats(); s.DatagramsSent != 5 || s.BytesSent != 20 {
		t.Errorf("sender stats %+v, want 5 sent, 20 bytes", s)
	}
	if s := n.Stats(); s.DatagramsSent != 5 || s.DatagramsReceived != 3 || s.DatagramsDropped != 2 {
		t.Errorf("network stats %+v", s)
	}
}

func TestUnreachable(t *testing.T) {
	ctx := context.Background()
	n := mem.NewNetwork(mem.Config{})
	a := listen(t, n, "a")
	if err := a.SendFrame(ctx, "nobody", []byte("x")); !errors.Is(err, transport.ErrUnreachable) {
		t.Fatalf("SendFrame to nobody: %v, want ErrUnreachable", err)
	}
	if err := a.SendDatagram(ctx, "nobody", []byte("x")); err != nil {
		t.Fatalf("SendDatagram to nobody: %v, want nil", err)
	}
	if s := a.Stats(); s.DatagramsDropped != 1 || s.FramesSent != 0 {
		t.Errorf("stats %+v, want 1 datagram dropped and no frame sent", s)
	}
}

func TestClose(t *testing.T) {
	ctx := context.Background()
	n := mem.NewNetwork(mem.Config{})
	a, b := listen(t, n, "a"), listen(t, n, "b")
	if err := a.SendDatagram(ctx, "b", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	// Datagrams already buffered can be drained, then both channels are closed.
	if m, ok := <-b.Datagrams(); !ok || string(m.Data) != "kept" {
		t.Fatalf("buffered datagram: %q %v", m.Data, ok)
	}
	if _, ok := <-b.Datagrams(); ok {
		t.Error("Datagrams not closed")
	}
	if _, ok := <-b.Frames(); ok {
		t.Error("Frames not closed")
	}

	if err := b.SendDatagram(ctx, "a", []byte("x")); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("SendDatagram after Close: %v", err)
	}
	if err := b.SendFrame(ctx, "a", []byte("x")); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("SendFrame after Close: %v", err)
	}
	// The peer sees b as gone.
	if err := a.SendFrame(ctx, "b", []byte("x")); !errors.Is(err, transport.ErrUnreachable) {
		t.Errorf("SendFrame to a closed transport: %v", err)
	}
	if err := a.SendDatagram(ctx, "b", []byte("x")); err != nil {
		t.Errorf("SendDatagram to a closed transport: %v", err)
	}
}

func TestCloseUnblocksSenders(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		n := mem.NewNetwork(mem.Config{QueueSize: 1})
		a, b, c := listen(t, n, "a"), listen(t, n, "b"), listen(t, n, "c")
		// Fill b's queue; then a blocks sending to b, and b blocks sending
		// to c once c's queue is full too.
		if err := a.SendFrame(ctx, "b", []byte("1")); err != nil {
			t.Fatal(err)
		}
		if err := b.SendFrame(ctx, "c", []byte("1")); err != nil {
			t.Fatal(err)
		}
		towards := make(chan error, 1)
		from := make(chan error, 1)
		go func() { towards <- a.SendFrame(ctx, "b", []byte("2")) }()
		go func() { from <- b.SendFrame(ctx, "c", []byte("2")) }()
		synctest.Wait()
		if len(towards) != 0 || len(from) != 0 {
			t.Fatal("senders did not block")
		}

		b.Close()
		if err := <-towards; !errors.Is(err, transport.ErrUnreachable) {
			t.Errorf("sender towards the closed transport: %v, want ErrUnreachable", err)
		}
		if err := <-from; !errors.Is(err, transport.ErrClosed) {
			t.Errorf("sender on the closed transport: %v, want ErrClosed", err)
		}
		if s := b.Stats(); s.FramesReceived != 1 || s.FramesDropped != 0 {
			t.Errorf("b stats %+v, want the unread frame received, none dropped", s)
		}
		if m := recvFrame(t, c); string(m.Data) != "1" {
			t.Errorf("c got %q", m.Data)
		}
	})
}

func TestCloseDropsDeliveriesInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		n := mem.NewNetwork(mem.Config{Latency: time.Second})
		a, b := listen(t, n, "a"), listen(t, n, "b")
		for range 3 {
			a.SendDatagram(ctx, "b", []byte("d"))
			if err := a.SendFrame(ctx, "b", []byte("f")); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(time.Second / 2)
		b.Close()
		time.Sleep(time.Second) // the timers would have fired by now
		if _, ok := <-b.Datagrams(); ok {
			t.Error("datagram delivered to a closed transport")
		}
		if _, ok := <-b.Frames(); ok {
			t.Error("frame delivered to a closed transport")
		}
		s := b.Stats()
		if s.DatagramsDropped != 3 || s.FramesDropped != 3 || s.DatagramsReceived != 0 || s.FramesReceived != 0 {
			t.Errorf("receiver stats %+v, want 3+3 dropped, none received", s)
		}
	})
}

func TestListenAddresses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		n := mem.NewNetwork(mem.Config{})
		a := listen(t, n, "a")
		if _, err := n.Listen("a"); err == nil {
			t.Fatal("second Listen on an open address succeeded")
		}

		// Automatic addresses are unique.
		x, y := listen(t, n, ""), listen(t, n, "")
		if x.LocalAddr() == "" || x.LocalAddr() == y.LocalAddr() || x.LocalAddr() == "a" {
			t.Fatalf("automatic addresses %q and %q", x.LocalAddr(), y.LocalAddr())
		}

		b := listen(t, n, "b")
		if err := a.SendFrame(ctx, "b", []byte("old")); err != nil {
			t.Fatal(err)
		}
		b.Close()

		// A restarted peer at the same address is reachable again, and gets
		// nothing meant for its predecessor.
		b2 := listen(t, n, "b")
		if err := a.SendFrame(ctx, "b", []byte("new")); err != nil {
			t.Fatal(err)
		}
		if m := recvFrame(t, b2); string(m.Data) != "new" || m.From != "a" {
			t.Fatalf("restarted peer got %q from %s", m.Data, m.From)
		}
		a.SendDatagram(ctx, "b", []byte("dg"))
		if m := recv(t, b2.Datagrams()); string(m.Data) != "dg" {
			t.Fatalf("restarted peer got datagram %q", m.Data)
		}
		// Closing the old transport again does not unregister the new one.
		b.Close()
		if err := a.SendFrame(ctx, "b", []byte("still")); err != nil {
			t.Fatalf("after closing the old transport again: %v", err)
		}
		if m := recvFrame(t, b2); string(m.Data) != "still" {
			t.Fatalf("got %q", m.Data)
		}
	})
}

func TestSendToSelf(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		n := mem.NewNetwork(mem.Config{})
		a := listen(t, n, "a")
		a.SendDatagram(ctx, "a", []byte("d"))
		if err := a.SendFrame(ctx, "a", []byte("f")); err != nil {
			t.Fatal(err)
		}
		if m := recv(t, a.Datagrams()); m.From != "a" || string(m.Data) != "d" {
			t.Errorf("datagram %+v", m)
		}
		if m := recvFrame(t, a); m.From != "a" || string(m.Data) != "f" {
			t.Errorf("frame %+v", m)
		}
	})
}

func TestNetworkStats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		n := mem.NewNetwork(mem.Config{})
		a, b, c := listen(t, n, "a"), listen(t, n, "b"), listen(t, n, "c")
		a.SendDatagram(ctx, "b", []byte("12345"))
		a.SendFrame(ctx, "b", []byte("123"))
		c.SendFrame(ctx, "b", []byte("1"))
		a.SendFrame(ctx, "c", []byte("1"))
		recvFrame(t, b)
		recvFrame(t, b)
		recvFrame(t, c)
		a.Close() // counts of closed transports remain in the totals
		s := n.Stats()
		want := transport.Stats{
			DatagramsSent: 1, DatagramsReceived: 1,
			FramesSent: 3, FramesReceived: 3,
			BytesSent: 10, BytesReceived: 10,
			Connections: 1, // b–c; a is closed
		}
		if s != want {
			t.Errorf("network stats\n got %+v\nwant %+v", s, want)
		}
		if sb := b.Stats(); sb.Connections != 1 || sb.BytesReceived != 9 {
			t.Errorf("b stats %+v", sb)
		}
	})
}

// TestConcurrentUse runs senders on every path while transports close, for
// the race detector; every error must be one the interfaces allow.
func TestConcurrentUse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := mem.NewNetwork(mem.Config{Seed: 3, QueueSize: 4, Latency: time.Millisecond, Jitter: time.Millisecond, DropRate: 0.1, DuplicateRate: 0.1, ReorderRate: 0.1})
		addrs := []string{"a", "b", "c", "d"}
		trs := make([]*mem.Transport, len(addrs))
		for i, addr := range addrs {
			trs[i] = listen(t, n, addr)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		var wg sync.WaitGroup
		for _, tr := range trs {
			// Readers: drain until closed.
			wg.Go(func() {
				for range tr.Frames() {
				}
			})
			wg.Go(func() {
				for range tr.Datagrams() {
				}
			})
			// Senders.
			for _, to := range addrs {
				wg.Go(func() {
					for i := 0; ; i++ {
						err := tr.SendFrame(ctx, to, seqBytes(i))
						derr := tr.SendDatagram(ctx, to, seqBytes(i))
						if derr != nil && !errors.Is(derr, transport.ErrClosed) {
							t.Errorf("SendDatagram: %v", derr)
						}
						switch {
						case err == nil:
						case errors.Is(err, transport.ErrClosed):
							return
						case errors.Is(err, transport.ErrUnreachable), errors.Is(err, context.DeadlineExceeded):
							if ctx.Err() != nil {
								return
							}
						default:
							t.Errorf("SendFrame: %v", err)
							return
						}
						time.Sleep(100 * time.Microsecond)
					}
				})
			}
		}
		time.Sleep(10 * time.Millisecond)
		n.Partition([]string{"a", "b"}, []string{"c"})
		time.Sleep(10 * time.Millisecond)
		n.Heal()
		trs[1].Close()
		time.Sleep(10 * time.Millisecond)
		for _, tr := range trs {
			tr.Close()
		}
		wg.Wait()
		s := n.Stats()
		if s.FramesReceived == 0 || s.DatagramsReceived == 0 {
			t.Errorf("nothing delivered: %+v", s)
		}
		if s.FramesReceived+s.FramesDropped > s.FramesSent {
			t.Errorf("more frames received and dropped than sent: %+v", s)
		}
	})
}

// TestOrderingAcrossPairs checks that ordering is per pair, and that frames
// from different senders interleave freely.
func TestOrderingAcrossPairs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := mem.NewNetwork(mem.Config{Latency: 3 * time.Millisecond})
		a, b, c := listen(t, n, "a"), listen(t, n, "b"), listen(t, n, "c")
		var wg sync.WaitGroup
		for _, from := range []*mem.Transport{a, b} {
			wg.Go(func() {
				for i := range 50 {
					if err := from.SendFrame(context.Background(), "c", seqBytes(i)); err != nil {
						t.Error(err)
					}
					if i%5 == 0 {
						time.Sleep(time.Millisecond)
					}
				}
			})
		}
		next := map[string]int{}
		for range 100 {
			m := recvFrame(t, c)
			if got := seqOf(m.Data); got != next[m.From] {
				t.Fatalf("from %s: frame %d, want %d", m.From, got, next[m.From])
			}
			next[m.From]++
		}
		wg.Wait()
		if next["a"] != 50 || next["b"] != 50 {
			t.Errorf("got %v", next)
		}
	})
}

// TestStreamBandwidth: with StreamBandwidth, a link carries that many bytes
// per second: frames leave one after the other, each len/bandwidth after the
// one before, and each link (direction and pair) has its own capacity.
func TestStreamBandwidth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const bw, size, frames = 1 << 20, 64 << 10, 8 // 62.5 ms per frame
		n := mem.NewNetwork(mem.Config{StreamBandwidth: bw, QueueSize: 64})
		a, b := listen(t, n, "a"), listen(t, n, "b")
		c := listen(t, n, "c")
		start := time.Now()
		done := make(chan time.Duration, 2)
		for _, dst := range []string{"b", "c"} {
			go func() {
				for range frames {
					if err := a.SendFrame(context.Background(), dst, make([]byte, size)); err != nil {
						t.Error(err)
					}
				}
				done <- time.Since(start)
			}()
		}
		per := time.Duration(float64(size) / bw * float64(time.Second))
		for range 2 {
			if got := <-done; got != frames*per {
				t.Errorf("%d frames of %d bytes at %d B/s took %v, want %v", frames, size, bw, got, frames*per)
			}
		}
		for _, tr := range []*mem.Transport{b, c} {
			for range frames {
				recvFrame(t, tr)
			}
		}
	})
}

// TestStreamBandwidthCancel: a frame waiting for its link gives up when its
// context is done, and the link stays usable.
func TestStreamBandwidthCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := mem.NewNetwork(mem.Config{StreamBandwidth: 1000})
		a, b := listen(t, n, "a"), listen(t, n, "b")
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		if err := a.SendFrame(ctx, "b", make([]byte, 1000)); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("SendFrame of a 1 s frame with a 500 ms context: %v, want DeadlineExceeded", err)
		}
		synctest.Wait()
		none(t, b.Frames())
		if err := a.SendFrame(context.Background(), "b", []byte("x")); err != nil {
			t.Fatal(err)
		}
		if m := recvFrame(t, b); string(m.Data) != "x" {
			t.Fatalf("got %q", m.Data)
		}
	})
}
