package tcp_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/plumtree-go/plumtree/transport"
	"github.com/plumtree-go/plumtree/transport/devcert"
	"github.com/plumtree-go/plumtree/transport/tcp"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// hang bounds waits that only a bug would make long.
const hang = 10 * time.Second

func listen(t testing.TB, cfg tcp.Config) *tcp.Transport {
	t.Helper()
	tr, err := tcp.Listen("127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// recv waits for one frame.
func recv(t *testing.T, tr *tcp.Transport) transport.Message {
	t.Helper()
	select {
	case m, ok := <-tr.Frames():
		if !ok {
			t.Fatal("Frames closed")
		}
		return m
	case <-time.After(hang):
		t.Fatal("no frame")
	}
	return transport.Message{}
}

func TestBothDirections(t *testing.T) {
	ctx := context.Background()
	a, b := listen(t, tcp.Config{}), listen(t, tcp.Config{})
	buf := []byte("to b")
	if err := a.SendFrame(ctx, b.LocalAddr(), buf); err != nil {
		t.Fatal(err)
	}
	copy(buf, "XXXX")
	m := recv(t, b)
	if m.From != a.LocalAddr() || string(m.Data) != "to b" || m.Path != transport.PathStream {
		t.Errorf("b got %+v", m)
	}
	if err := b.SendFrame(ctx, a.LocalAddr(), []byte("to a")); err != nil {
		t.Fatal(err)
	}
	if m := recv(t, a); m.From != b.LocalAddr() || string(m.Data) != "to a" {
		t.Errorf("a got %+v", m)
	}
	if c := a.Stats().Connections; c != 2 {
		t.Errorf("a has %d connections, want 2 (one each way)", c)
	}
	a.Close() // the writer has counted what it wrote when Close returns
	if s := a.Stats(); s.Connections != 0 || s.FramesSent != 1 || s.FramesReceived != 1 || s.BytesSent != 4 || s.BytesReceived != 4 {
		t.Errorf("a stats %+v", s)
	}
}

func TestSizes(t *testing.T) {
	ctx := context.Background()
	const max = 300000 // several read chunks
	a, b := listen(t, tcp.Config{MaxFrameSize: max}), listen(t, tcp.Config{MaxFrameSize: max})
	full := make([]byte, max)
	for i := range full {
		full[i] = byte(i * 7)
	}
	for _, f := range [][]byte{{}, full, []byte("x")} {
		if err := a.SendFrame(ctx, b.LocalAddr(), f); err != nil {
			t.Fatal(err)
		}
		if m := recv(t, b); !bytes.Equal(m.Data, f) || m.Data == nil {
			t.Errorf("sent %d bytes, got %d", len(f), len(m.Data))
		}
	}
	err := a.SendFrame(ctx, b.LocalAddr(), make([]byte, max+1))
	var tl *transport.TooLargeError
	if !errors.As(err, &tl) || *tl != (transport.TooLargeError{Path: transport.PathStream, Size: max + 1, Limit: max}) {
		t.Errorf("over-limit send: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []tcp.Config{
		{MaxConnectionsPerPeer: 2},
		{MaxFrameSize: -1},
		{MaxFrameSize: tcp.MaxFrameSizeLimit + 1},
	} {
		if tr, err := tcp.Listen("127.0.0.1:0", cfg); err == nil {
			tr.Close()
			t.Errorf("Listen(%+v) succeeded", cfg)
		}
	}
}

// Frames from many goroutines arrive in each goroutine's order.
func TestOrderManyGoroutines(t *testing.T) {
	ctx := context.Background()
	a, b := listen(t, tcp.Config{SendQueueSize: 8}), listen(t, tcp.Config{})
	const senders, each = 8, 300
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				var f [8]byte
				binary.BigEndian.PutUint32(f[:], uint32(g))
				binary.BigEndian.PutUint32(f[4:], uint32(i))
				if err := a.SendFrame(ctx, b.LocalAddr(), f[:]); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	next := make([]uint32, senders)
	for range senders * each {
		m := recv(t, b)
		g, i := binary.BigEndian.Uint32(m.Data), binary.BigEndian.Uint32(m.Data[4:])
		if i != next[g] {
			t.Fatalf("sender %d: frame %d arrived, want %d", g, i, next[g])
		}
		next[g]++
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A receiver that stops reading makes SendFrame block; frames accepted
// before that arrive in order once it reads again.
func TestSlowReceiver(t *testing.T) {
	a := listen(t, tcp.Config{SendQueueSize: 4})
	b := listen(t, tcp.Config{ReceiveQueueSize: 1})
	frame := make([]byte, 64<<10)
	sent := 0
	for {
		binary.BigEndian.PutUint32(frame, uint32(sent))
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		err := a.SendFrame(ctx, b.LocalAddr(), frame)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		sent++
		if sent > 100000 {
			t.Fatal("SendFrame never blocked")
		}
	}
	for i := range sent {
		m := recv(t, b)
		if got := binary.BigEndian.Uint32(m.Data); got != uint32(i) {
			t.Fatalf("frame %d arrived, want %d", got, i)
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestUnreachable(t *testing.T) {
	a := listen(t, tcp.Config{})
	err := a.SendFrame(context.Background(), freeAddr(t), []byte("x"))
	if !errors.Is(err, transport.ErrUnreachable) {
		t.Errorf("send to a dead address: %v, want ErrUnreachable", err)
	}
}

// Close unblocks a SendFrame blocked on a full queue.
func TestCloseUnblocksSend(t *testing.T) {
	a := listen(t, tcp.Config{SendQueueSize: 1})
	b := listen(t, tcp.Config{ReceiveQueueSize: 1})
	frame := make([]byte, 64<<10)
	// Fill the queue and the buffers until a send blocks.
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		err := a.SendFrame(ctx, b.LocalAddr(), frame)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	blocked := make(chan error, 1)
	go func() { blocked <- a.SendFrame(context.Background(), b.LocalAddr(), frame) }()
	a.Close()
	select {
	case err := <-blocked:
		if !errors.Is(err, transport.ErrClosed) {
			t.Errorf("blocked send: %v, want ErrClosed", err)
		}
	case <-time.After(hang):
		t.Fatal("SendFrame still blocked after Close")
	}
}

func TestClose(t *testing.T) {
	a, b := listen(t, tcp.Config{}), listen(t, tcp.Config{})
	if err := a.SendFrame(context.Background(), b.LocalAddr(), []byte("x")); err != nil {
		t.Fatal(err)
	}
	recv(t, b)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, ok := <-a.Frames(); ok {
		t.Error("Frames not closed")
	}
	if err := a.SendFrame(context.Background(), b.LocalAddr(), []byte("x")); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("send after Close: %v", err)
	}
	if s := a.Stats(); s.Connections != 0 {
		t.Errorf("Connections after Close = %d", s.Connections)
	}
}

// A peer restarted on its address is reachable again.
func TestRestart(t *testing.T) {
	ctx := context.Background()
	a := listen(t, tcp.Config{})
	b, err := tcp.Listen("127.0.0.1:0", tcp.Config{})
	if err != nil {
		t.Fatal(err)
	}
	addr := b.LocalAddr()
	if err := a.SendFrame(ctx, addr, []byte("one")); err != nil {
		t.Fatal(err)
	}
	recv(t, b)
	b.Close()
	b2, err := tcp.Listen(addr, tcp.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	deadline := time.After(hang)
	for i := 0; ; i++ {
		a.SendFrame(ctx, addr, []byte("two")) // the first may be lost or fail
		select {
		case m := <-b2.Frames():
			if string(m.Data) != "two" || m.From != a.LocalAddr() {
				t.Fatalf("got %+v", m)
			}
			return
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			t.Fatal("restarted peer unreachable")
		}
	}
}

// logHook is a slog handler that passes each message to a channel.
type logHook struct{ ch chan string }

func (h logHook) Enabled(context.Context, slog.Level) bool { return true }
func (h logHook) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	select {
	case h.ch <- b.String():
	default:
	}
	return nil
}
func (h logHook) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h logHook) WithGroup(string) slog.Handler      { return h }

func hooked() (*slog.Logger, chan string) {
	ch := make(chan string, 100)
	return slog.New(logHook{ch}), ch
}

// waitLog waits for a log line containing want.
func waitLog(t *testing.T, ch chan string, want string) string {
	t.Helper()
	deadline := time.After(hang)
	for {
		select {
		case l := <-ch:
			if strings.Contains(l, want) {
				return l
			}
		case <-deadline:
			t.Fatalf("no log line with %q", want)
		}
	}
}

func TestIdleTimeout(t *testing.T) {
	log, lines := hooked()
	a := listen(t, tcp.Config{IdleTimeout: 10 * time.Millisecond, Logger: log})
	b := listen(t, tcp.Config{})
	ctx := context.Background()
	for _, s := range []string{"one", "two"} {
		if err := a.SendFrame(ctx, b.LocalAddr(), []byte(s)); err != nil {
			t.Fatal(err)
		}
		if m := recv(t, b); string(m.Data) != s {
			t.Fatalf("got %q", m.Data)
		}
		waitLog(t, lines, "closed idle connection")
		if c := a.Stats().Connections; c != 0 {
			t.Errorf("Connections = %d after the idle close", c)
		}
	}
}

// dialRaw opens a raw connection to tr and sends a handshake.
func dialRaw(t *testing.T, tr *tcp.Transport, version byte, from string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", tr.LocalAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	hello := append([]byte("PLTS"), version, byte(len(from)))
	if _, err := c.Write(append(hello, from...)); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestHandshakeVersion(t *testing.T) {
	log, lines := hooked()
	b := listen(t, tcp.Config{Logger: log})
	c := dialRaw(t, b, 9, "1.2.3.4:5")
	c.SetDeadline(time.Now().Add(hang))
	reply, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if string(reply) != "PLTS\x02" {
		t.Errorf("reply %q, want PLTS and version 2, then EOF", reply)
	}
	waitLog(t, lines, "unsupported protocol version 9")
}

// A dialer meeting a listener of another version fails with a clear error.
func TestHandshakeVersionDialer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.Write([]byte("PLTS\x07"))
		io.Copy(io.Discard, c)
	}()
	a := listen(t, tcp.Config{})
	err = a.SendFrame(context.Background(), ln.Addr().String(), []byte("x"))
	if !errors.Is(err, transport.ErrUnreachable) || !strings.Contains(err.Error(), "version 7") {
		t.Errorf("got %v, want ErrUnreachable naming version 7", err)
	}
	a.Close()
	<-done
}

// A frame length over the limit closes the connection without allocating.
func TestFrameOverLimit(t *testing.T) {
	log, lines := hooked()
	b := listen(t, tcp.Config{MaxFrameSize: 1000, Logger: log})
	c := dialRaw(t, b, tcp.ProtocolVersion, "9.9.9.9:9")
	var reply [6]byte
	if _, err := io.ReadFull(c, reply[:]); err != nil {
		t.Fatal(err)
	}
	frame := binary.AppendUvarint(nil, 3)
	frame = append(frame, "abc"...)
	frame = binary.AppendUvarint(frame, 1<<40) // huge: must not be allocated
	c.Write(frame)
	if m := recv(t, b); string(m.Data) != "abc" || m.From != "9.9.9.9:9" {
		t.Errorf("got %+v", m)
	}
	waitLog(t, lines, "exceeds the limit")
	c.SetReadDeadline(time.Now().Add(hang))
	if _, err := c.Read(reply[:]); err == nil {
		t.Error("connection still open")
	}
	if d := b.Stats().FramesDropped; d != 1 {
		t.Errorf("FramesDropped = %d, want 1", d)
	}
}

// Garbage never panics the listener and is refused.
func TestGarbage(t *testing.T) {
	log, lines := hooked()
	b := listen(t, tcp.Config{Logger: log})
	for _, junk := range []string{"GET / HTTP/1.1\r\n\r\n", "PLTS\x02\x00", "PLTS\x02\x05ab", "\xff\xff\xff\xff\xff\xff\xff"} {
		c, err := net.Dial("tcp", b.LocalAddr())
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte(junk))
		if tc, ok := c.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		waitLog(t, lines, "refused connection")
		c.Close()
	}
}

func tlsPair(t *testing.T) (*devcert.UnsafeCA, *tls.Config, *tls.Config) {
	ca, err := devcert.NewUnsafeCA()
	if err != nil {
		t.Fatal(err)
	}
	ca1, err := ca.UnsafeMutualTLS("alice", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	ca2, err := ca.UnsafeMutualTLS("bob", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return ca, ca1, ca2
}

func TestTLSIdentity(t *testing.T) {
	_, ac, bc := tlsPair(t)
	a, b := listen(t, tcp.Config{TLS: ac}), listen(t, tcp.Config{TLS: bc})
	ctx := context.Background()
	if err := a.SendFrame(ctx, b.LocalAddr(), []byte("hi")); err != nil {
		t.Fatal(err)
	}
	m := recv(t, b)
	if id, ok := b.PeerIdentity(m.From); !ok || id != "alice" {
		t.Errorf("PeerIdentity(%s) = %q, %v; want alice", m.From, id, ok)
	}
	if _, ok := a.PeerIdentity(b.LocalAddr()); ok {
		t.Error("a knows an identity for b before b connected to it")
	}
}

// A peer whose certificate another CA signed is refused, both as dialer
// and as listener, and delivers nothing.
func TestTLSUntrusted(t *testing.T) {
	_, ac, bc := tlsPair(t)
	_, mallory, _ := tlsPair(t)
	log, lines := hooked()
	a := listen(t, tcp.Config{TLS: ac})
	b := listen(t, tcp.Config{TLS: bc, Logger: log})
	m := listen(t, tcp.Config{TLS: mallory})
	ctx := context.Background()

	err := m.SendFrame(ctx, b.LocalAddr(), []byte("evil"))
	if !errors.Is(err, transport.ErrUnreachable) {
		t.Errorf("untrusted dialer: %v, want ErrUnreachable", err)
	}
	waitLog(t, lines, "tls handshake")
	if err := b.SendFrame(ctx, m.LocalAddr(), []byte("secret")); !errors.Is(err, transport.ErrUnreachable) {
		t.Errorf("dialing an untrusted listener: %v, want ErrUnreachable", err)
	}
	if err := a.SendFrame(ctx, b.LocalAddr(), []byte("good")); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, b); string(got.Data) != "good" {
		t.Errorf("b got %q", got.Data)
	}
	select {
	case got := <-b.Frames():
		t.Errorf("b delivered %q", got.Data)
	default:
	}
	if s := m.Stats(); s.FramesSent != 0 {
		t.Errorf("untrusted sender sent %d frames", s.FramesSent)
	}
	if s := b.Stats(); s.FramesReceived != 1 {
		t.Errorf("b received %d frames, want 1", s.FramesReceived)
	}
}

// Plain TCP towards a TLS listener is refused.
func TestTLSPlainRefused(t *testing.T) {
	_, _, bc := tlsPair(t)
	b := listen(t, tcp.Config{TLS: bc, DialTimeout: time.Second})
	a := listen(t, tcp.Config{DialTimeout: time.Second})
	if err := a.SendFrame(context.Background(), b.LocalAddr(), []byte("x")); !errors.Is(err, transport.ErrUnreachable) {
		t.Errorf("plain to TLS: %v", err)
	}
}
