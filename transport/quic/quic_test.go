package quic

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	qgo "github.com/quic-go/quic-go"
	"go.uber.org/goleak"

	"github.com/plumtree-go/plumtree/transport"
	"github.com/plumtree-go/plumtree/transport/devcert"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// watchdog breaks hangs; no assertion depends on it.
const watchdog = 20 * time.Second

func newCA(t testing.TB) *devcert.UnsafeCA {
	t.Helper()
	ca, err := devcert.NewUnsafeCA()
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// listen opens a transport on 127.0.0.1 with a mutual-TLS certificate for
// name from ca, and closes it when the test ends.
func listen(t testing.TB, ca *devcert.UnsafeCA, name string, mod func(*Config)) *Transport {
	t.Helper()
	tlsConf, err := ca.UnsafeMutualTLS(name, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return listenTLS(t, "127.0.0.1:0", tlsConf, mod)
}

func listenTLS(t testing.TB, addr string, tlsConf *tls.Config, mod func(*Config)) *Transport {
	t.Helper()
	cfg := Config{TLS: tlsConf, HandshakeTimeout: 2 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	tr, err := Listen(addr, cfg)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// listenForeign listens as "mallory", who trusts the peers of trusted but
// presents a certificate of own, which they do not trust: a peer refuses
// it once the handshake is done.
func listenForeign(t testing.TB, trusted, own *devcert.UnsafeCA) *Transport {
	t.Helper()
	cert, err := own.Issue("mallory", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return listenTLS(t, "127.0.0.1:0", &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		RootCAs:      trusted.Pool(),
		ClientCAs:    own.Pool(),
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}, nil)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), watchdog)
	t.Cleanup(cancel)
	return ctx
}

// recv waits for one message on ch.
func recv(t *testing.T, ch <-chan transport.Message) transport.Message {
	t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatal("channel closed, want a message")
		}
		return m
	case <-time.After(watchdog):
		t.Fatal("watchdog: no message")
		return transport.Message{}
	}
}

// sendDatagramUntilSeen resends a datagram until to receives one from from.
func sendDatagramUntilSeen(t *testing.T, from, to *Transport, b []byte) transport.Message {
	t.Helper()
	ctx := testCtx(t)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := from.SendDatagram(ctx, to.LocalAddr(), b); err != nil {
			t.Fatalf("SendDatagram: %v", err)
		}
		select {
		case m := <-to.Datagrams():
			return m
		case <-tick.C:
		case <-ctx.Done():
			t.Fatal("watchdog: datagram never arrived")
		}
	}
}

// detached returns a channel that receives every connection t detaches.
func detached(tr *Transport) <-chan *conn {
	ch := make(chan *conn, 64)
	tr.hookDetached = func(c *conn) { ch <- c }
	return ch
}

// sendConn returns the connection tr sends to addr on.
func sendConn(t *testing.T, tr *Transport, addr string) *conn {
	t.Helper()
	tr.mu.Lock()
	p := tr.peers[addr]
	tr.mu.Unlock()
	if p == nil {
		t.Fatalf("no peer %s", addr)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.send == nil {
		t.Fatalf("no connection to %s", addr)
	}
	return p.send
}

func TestFromIsLocalAddrAndOneConnection(t *testing.T) {
	ca := newCA(t)
	a := listen(t, ca, "a", nil)
	b := listen(t, ca, "b", nil)
	ctx := testCtx(t)

	if err := a.SendFrame(ctx, b.LocalAddr(), []byte("ab")); err != nil {
		t.Fatal(err)
	}
	m := recv(t, b.Frames())
	if m.From != a.LocalAddr() || string(m.Data) != "ab" || m.Path != transport.PathStream {
		t.Fatalf("b got %+v, want ab from %s", m, a.LocalAddr())
	}
	// b received on the connection a dialed, so it sends back on it.
	if err := b.SendFrame(ctx, a.LocalAddr(), []byte("ba")); err != nil {
		t.Fatal(err)
	}
	m = recv(t, a.Frames())
	if m.From != b.LocalAddr() || string(m.Data) != "ba" {
		t.Fatalf("a got %+v, want ba from %s", m, b.LocalAddr())
	}
	if ca, cb := a.Stats().Connections, b.Stats().Connections; ca != 1 || cb != 1 {
		t.Fatalf("connections: a %d, b %d; want 1 and 1", ca, cb)
	}
	// The remote address of the accepted connection is a's listening address.
	if got := sendConn(t, b, a.LocalAddr()).qc.RemoteAddr().String(); got != a.LocalAddr() {
		t.Fatalf("b sees a at %s, a listens on %s", got, a.LocalAddr())
	}

	m = sendDatagramUntilSeen(t, a, b, []byte("dab"))
	if m.From != a.LocalAddr() || string(m.Data) != "dab" || m.Path != transport.PathDatagram {
		t.Fatalf("b got datagram %+v", m)
	}
	m = sendDatagramUntilSeen(t, b, a, []byte("dba"))
	if m.From != b.LocalAddr() || string(m.Data) != "dba" {
		t.Fatalf("a got datagram %+v", m)
	}
	if ca, cb := a.Stats().Connections, b.Stats().Connections; ca != 1 || cb != 1 {
		t.Fatalf("connections after datagrams: a %d, b %d; want 1 and 1", ca, cb)
	}

	if cert := a.PeerCertificate(b.LocalAddr()); cert == nil || devcert.PeerName(cert) != "b" {
		t.Fatalf("a's view of b's identity: %v", cert)
	}
	if cert := b.PeerCertificate(a.LocalAddr()); cert == nil || devcert.PeerName(cert) != "a" {
		t.Fatalf("b's view of a's identity: %v", cert)
	}
}

func TestOrderFromManyGoroutines(t *testing.T) {
	ca := newCA(t)
	a := listen(t, ca, "a", func(c *Config) { c.SendQueueSize = 8 })
	b := listen(t, ca, "b", nil)
	ctx := testCtx(t)
	const goroutines, each = 4, 200
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			buf := make([]byte, 100)
			for i := range each {
				buf[0] = byte(g)
				binary.BigEndian.PutUint32(buf[1:], uint32(i))
				if err := a.SendFrame(ctx, b.LocalAddr(), buf); err != nil {
					t.Errorf("SendFrame: %v", err)
					return
				}
				buf[1] = 0xff // the transport must have copied
			}
		})
	}
	next := make([]uint32, goroutines)
	for range goroutines * each {
		m := recv(t, b.Frames())
		g, i := m.Data[0], binary.BigEndian.Uint32(m.Data[1:])
		if len(m.Data) != 100 || i != next[g] {
			t.Fatalf("from goroutine %d got frame %d (len %d), want %d", g, i, len(m.Data), next[g])
		}
		next[g]++
	}
	wg.Wait()
}

func TestSizes(t *testing.T) {
	ca := newCA(t)
	const maxFrame = 1 << 20
	a := listen(t, ca, "a", func(c *Config) { c.MaxFrameSize = maxFrame })
	b := listen(t, ca, "b", func(c *Config) { c.MaxFrameSize = maxFrame })
	ctx := testCtx(t)
	for _, n := range []int{0, 1, maxFrame} {
		b0 := make([]byte, n)
		for i := range b0 {
			b0[i] = byte(i * 7)
		}
		if err := a.SendFrame(ctx, b.LocalAddr(), b0); err != nil {
			t.Fatal(err)
		}
		if m := recv(t, b.Frames()); string(m.Data) != string(b0) || m.Data == nil {
			t.Fatalf("frame of %d bytes arrived as %d bytes (nil %v)", n, len(m.Data), m.Data == nil)
		}
	}
	for _, n := range []int{0, MaxDatagramSize} {
		d := []byte(strings.Repeat("d", n))
		if m := sendDatagramUntilSeen(t, a, b, d); string(m.Data) != string(d) || m.Data == nil {
			t.Fatalf("datagram of %d bytes arrived as %d bytes", n, len(m.Data))
		}
	}
	var tl *transport.TooLargeError
	err := a.SendFrame(ctx, b.LocalAddr(), make([]byte, maxFrame+1))
	if !errors.As(err, &tl) || tl.Limit != a.MaxFrameSize() || tl.Size != maxFrame+1 || tl.Path != transport.PathStream {
		t.Fatalf("oversized frame: %v", err)
	}
	err = a.SendDatagram(ctx, b.LocalAddr(), make([]byte, MaxDatagramSize+1))
	if !errors.As(err, &tl) || tl.Limit != a.MaxDatagramSize() || tl.Path != transport.PathDatagram {
		t.Fatalf("oversized datagram: %v", err)
	}
}

func TestOversizedIncomingFrameClosesConnection(t *testing.T) {
	ca := newCA(t)
	a := listen(t, ca, "a", func(c *Config) { c.MaxFrameSize = 4096 })
	b := listen(t, ca, "b", func(c *Config) { c.MaxFrameSize = 1024 })
	ctx := testCtx(t)
	// A first frame within the limit opens the connection and is taken from
	// b's queue, so the connection is in hand before b closes it: a closed
	// connection leaves a's peer map at once.
	if err := a.SendFrame(ctx, b.LocalAddr(), []byte("ok")); err != nil {
		t.Fatal(err)
	}
	if m := recv(t, b.Frames()); string(m.Data) != "ok" {
		t.Fatalf("first frame arrived as %q", m.Data)
	}
	c := sendConn(t, a, b.LocalAddr())
	if err := a.SendFrame(ctx, b.LocalAddr(), make([]byte, 2048)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.qc.Context().Done():
	case <-ctx.Done():
		t.Fatal("watchdog: connection not closed")
	}
	var ae *qgo.ApplicationError
	if err := context.Cause(c.qc.Context()); !errors.As(err, &ae) || ae.ErrorCode != codeFrameTooLarge {
		t.Fatalf("connection closed with %v, want application error %d", err, codeFrameTooLarge)
	}
	if s := b.Stats(); s.FramesDropped != 1 || s.FramesReceived != 1 {
		t.Fatalf("b stats %+v, want 1 dropped and 1 received", s)
	}
	select {
	case m := <-b.Frames():
		t.Fatalf("b delivered %d bytes", len(m.Data))
	default:
	}
}

func TestReadFrameAllocatesAsBytesArrive(t *testing.T) {
	// A length of 1 GiB followed by 3 bytes must fail, not allocate 1 GiB.
	if _, err := readFrame(strings.NewReader("abc"), 1<<30); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short frame: %v", err)
	}
	big := strings.Repeat("x", 300<<10)
	got, err := readFrame(io.MultiReader(strings.NewReader(big), strings.NewReader("tail")), len(big))
	if err != nil || string(got) != big {
		t.Fatalf("long frame: %d bytes, %v", len(got), err)
	}
	if got, err := readFrame(strings.NewReader(""), 0); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("empty frame: %v %v", got, err)
	}
}

func TestSlowReceiverBackpressure(t *testing.T) {
	ca := newCA(t)
	small := func(c *Config) { c.SendQueueSize = 4; c.MaxStreamData = 16 << 10 }
	a := listen(t, ca, "a", small)
	b := listen(t, ca, "b", small)
	ctx := testCtx(t)
	frame := make([]byte, 4<<10)
	sent := 0
	for {
		binary.BigEndian.PutUint32(frame, uint32(sent))
		sctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		err := a.SendFrame(sctx, b.LocalAddr(), frame)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				t.Fatal("watchdog: SendFrame never blocked")
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("blocked SendFrame returned %v, want the ctx error", err)
			}
			break
		}
		sent++
	}
	for i := range sent {
		m := recv(t, b.Frames())
		if got := binary.BigEndian.Uint32(m.Data); got != uint32(i) {
			t.Fatalf("frame %d arrived as %d", i, got)
		}
	}
	// The stream still works after the stall.
	if err := a.SendFrame(ctx, b.LocalAddr(), []byte("after")); err != nil {
		t.Fatal(err)
	}
	if m := recv(t, b.Frames()); string(m.Data) != "after" {
		t.Fatalf("got %q", m.Data)
	}
}

func TestDatagramsNeverBlockAndAreCounted(t *testing.T) {
	ca := newCA(t)
	a := listen(t, ca, "a", func(c *Config) { c.DatagramQueueSize = 16 })
	b := listen(t, ca, "b", func(c *Config) { c.DatagramQueueSize = 16 })
	ctx := testCtx(t)
	const n = 5000
	ok := uint64(0)
	for i := range n {
		if err := a.SendDatagram(ctx, b.LocalAddr(), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		ok++
	}
	// Every accepted datagram is counted, as sent (queued), dropped, or
	// both (queued, then refused: counters never go down); none twice as
	// sent.
	check := func(when string) {
		t.Helper()
		s := a.Stats()
		if s.DatagramsSent+s.DatagramsDropped < ok || s.DatagramsSent > ok || s.DatagramsDropped > ok {
			t.Fatalf("%s: sent %d, dropped %d, for %d accepted", when, s.DatagramsSent, s.DatagramsDropped, ok)
		}
	}
	check("before Close")
	a.Close()
	check("after Close")
}

func TestCloseUnblocksAndClosesChannels(t *testing.T) {
	ca := newCA(t)
	small := func(c *Config) { c.SendQueueSize = 2; c.MaxStreamData = 8 << 10 }
	a := listen(t, ca, "a", small)
	b := listen(t, ca, "b", small)
	ctx := testCtx(t)
	frame := make([]byte, 4<<10)
	for { // fill until SendFrame blocks
		sctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		err := a.SendFrame(sctx, b.LocalAddr(), frame)
		cancel()
		if ctx.Err() != nil {
			t.Fatal("watchdog")
		}
		if err != nil {
			break
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- a.SendFrame(context.Background(), b.LocalAddr(), frame) }()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, transport.ErrClosed) {
			t.Fatalf("blocked SendFrame returned %v, want ErrClosed", err)
		}
	case <-ctx.Done():
		t.Fatal("watchdog: SendFrame still blocked after Close")
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, ok := <-a.Frames(); ok {
		t.Fatal("Frames not closed")
	}
	for range a.Datagrams() {
	}
	if err := a.SendFrame(ctx, b.LocalAddr(), nil); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("SendFrame after Close: %v", err)
	}
	if err := a.SendDatagram(ctx, b.LocalAddr(), nil); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("SendDatagram after Close: %v", err)
	}
	if s := a.Stats(); s.Connections != 0 {
		t.Fatalf("connections after Close: %d", s.Connections)
	}
}

func TestRestartOnSameAddress(t *testing.T) {
	ca := newCA(t)
	a := listen(t, ca, "a", func(c *Config) { c.Enable0RTT = true })
	b := listen(t, ca, "b", func(c *Config) { c.Enable0RTT = true })
	ctx := testCtx(t)
	addr := b.LocalAddr()
	if err := a.SendFrame(ctx, addr, []byte("before")); err != nil {
		t.Fatal(err)
	}
	recv(t, b.Frames())
	b.Close()
	tlsConf, err := ca.UnsafeMutualTLS("b2", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	// b2 has new session ticket keys: a's 0-RTT attempt is rejected and its
	// frames are sent again after the handshake.
	b2 := listenTLS(t, addr, tlsConf, func(c *Config) { c.Enable0RTT = true })
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		_ = a.SendFrame(ctx, addr, []byte("after")) // the first may fail or be lost
		select {
		case m := <-b2.Frames():
			if string(m.Data) != "after" || m.From != a.LocalAddr() {
				t.Fatalf("b2 got %+v", m)
			}
			return
		case <-tick.C:
		case <-ctx.Done():
			t.Fatal("watchdog: restarted peer never reached")
		}
	}
}

// notifyingCache is a session cache that says when it stores a ticket.
type notifyingCache struct {
	tls.ClientSessionCache
	put chan struct{}
}

func (c notifyingCache) Put(key string, cs *tls.ClientSessionState) {
	c.ClientSessionCache.Put(key, cs)
	select {
	case c.put <- struct{}{}:
	default:
	}
}

func TestReconnectUses0RTT(t *testing.T) {
	ca := newCA(t)
	on := func(c *Config) { c.Enable0RTT = true }
	cache := notifyingCache{tls.NewLRUClientSessionCache(8), make(chan struct{}, 1)}
	a := listen(t, ca, "a", func(c *Config) { c.Enable0RTT = true; c.TLS.ClientSessionCache = cache })
	b := listen(t, ca, "b", on)
	gone := detached(a)
	ctx := testCtx(t)
	if err := a.SendFrame(ctx, b.LocalAddr(), []byte("first")); err != nil {
		t.Fatal(err)
	}
	recv(t, b.Frames())
	select { // the session ticket arrives after the handshake
	case <-cache.put:
	case <-ctx.Done():
		t.Fatal("watchdog: no session ticket")
	}
	c1 := sendConn(t, a, b.LocalAddr())
	if st := c1.qc.ConnectionState(); st.Used0RTT || st.TLS.DidResume {
		t.Fatalf("first connection resumed: %+v", st)
	}
	c1.qc.CloseWithError(0, "test reconnect")
	for c := range gone {
		if c == c1 {
			break
		}
	}
	if err := a.SendFrame(ctx, b.LocalAddr(), []byte("second")); err != nil {
		t.Fatal(err)
	}
	if m := recv(t, b.Frames()); string(m.Data) != "second" {
		t.Fatalf("got %q", m.Data)
	}
	c2 := sendConn(t, a, b.LocalAddr())
	if c2 == c1 || !c2.early {
		t.Fatalf("second connection was not dialed early (same %v, early %v)", c2 == c1, c2.early)
	}
	<-c2.qc.HandshakeComplete()
	if st := c2.qc.ConnectionState(); !st.Used0RTT || !st.TLS.DidResume {
		t.Fatalf("second connection: Used0RTT %v, DidResume %v; want both", st.Used0RTT, st.TLS.DidResume)
	}
}

func TestMutualTLSRefusesOtherCA(t *testing.T) {
	ca1, ca2 := newCA(t), newCA(t)
	b := listen(t, ca1, "b", nil)
	ctx := testCtx(t)

	// A server from another CA: the dial fails.
	a := listen(t, ca2, "a", nil)
	err := a.SendFrame(ctx, b.LocalAddr(), []byte("x"))
	if !errors.Is(err, transport.ErrUnreachable) {
		t.Fatalf("SendFrame to a server of another CA: %v, want ErrUnreachable", err)
	}

	// A client that trusts b but presents a certificate of another CA: b
	// refuses it after the client's side of the handshake is done.
	m := listenForeign(t, ca1, ca2)
	gone := detached(m)
	if err := m.SendFrame(ctx, b.LocalAddr(), []byte("evil")); err == nil {
		select { // the client's side of the handshake completed; b closes it
		case <-gone:
		case <-ctx.Done():
			t.Fatal("watchdog: b did not close the connection")
		}
	} else if !errors.Is(err, transport.ErrUnreachable) {
		t.Fatalf("SendFrame: %v", err)
	}
	_ = m.SendDatagram(ctx, b.LocalAddr(), []byte("evil"))

	// A legitimate peer gets through; nothing from the others came first.
	good := listen(t, ca1, "good", nil)
	if err := good.SendFrame(ctx, b.LocalAddr(), []byte("good")); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, b.Frames()); string(got.Data) != "good" {
		t.Fatalf("b delivered %q from %s", got.Data, got.From)
	}
	select {
	case d := <-b.Datagrams():
		t.Fatalf("b delivered datagram %q from %s", d.Data, d.From)
	default:
	}
	if s := b.Stats(); s.FramesReceived != 1 || s.DatagramsReceived != 0 {
		t.Fatalf("b stats %+v", s)
	}
	// The handshakes b refused (mallory's client certificate) are counted
	// on b.
	for b.Stats().ConnectionsRefused < 1 {
		select {
		case <-ctx.Done():
			t.Fatalf("watchdog: b counted no refused connection; want mallory's")
		case <-time.After(10 * time.Millisecond): // polls a counter; bounds nothing
		}
	}
}

// Past MaxInboundConnections, a new connection is closed as soon as it is
// accepted and counted: whoever can reach the port cannot hold memory
// without bound. Once a connection closes, there is room again.
func TestMaxInboundConnections(t *testing.T) {
	ca := newCA(t)
	b := listen(t, ca, "b", func(c *Config) { c.MaxInboundConnections = 1 })
	a, x := listen(t, ca, "a", nil), listen(t, ca, "x", nil)
	ctx := testCtx(t)
	if err := a.SendFrame(ctx, b.LocalAddr(), []byte("first")); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, b.Frames()); string(got.Data) != "first" {
		t.Fatalf("got %q", got.Data)
	}
	// x's connection is over the cap: b closes it at once, and whatever x
	// queued on it is lost; nothing of x's is delivered. b's listener hands
	// over connections before their handshake completes (0-RTT), so the
	// close reaches x either during its handshake (the dial fails) or
	// after it (the connection is detached): b's count is what shows it.
	gone := detached(x)
	x.SendFrame(ctx, b.LocalAddr(), []byte("over the cap"))
	for b.Stats().ConnectionsRefused < 1 {
		select {
		case <-ctx.Done():
			t.Fatal("watchdog: b did not refuse the connection over the cap")
		case <-time.After(10 * time.Millisecond): // polls a counter; bounds nothing
		}
	}
	// (x may count twice: with its frame still queued, x redials once the
	// first connection is gone, and is refused again.)
	select {
	case got := <-b.Frames():
		t.Fatalf("b delivered %q from %s over the cap", got.Data, got.From)
	default:
	}
	// a leaves: x gets in. Until b has seen a's connection close, x may be
	// refused again, by a failed dial or a detached connection: x retries.
	a.Close()
	for {
		x.SendFrame(ctx, b.LocalAddr(), []byte("x"))
		select {
		case got := <-b.Frames():
			if got.From != x.LocalAddr() {
				t.Fatalf("got %q from %s", got.Data, got.From)
			}
			return
		case <-gone:
		case <-time.After(50 * time.Millisecond): // a dial that failed says nothing: retry
		case <-ctx.Done():
			t.Fatal("watchdog: x never got in")
		}
	}
}

func TestIdleConnectionCloses(t *testing.T) {
	ca := newCA(t)
	idle := func(c *Config) { c.KeepAliveInterval = -1; c.IdleTimeout = 50 * time.Millisecond }
	a := listen(t, ca, "a", idle)
	b := listen(t, ca, "b", idle)
	gone := detached(a)
	ctx := testCtx(t)
	if err := a.SendFrame(ctx, b.LocalAddr(), []byte("x")); err != nil {
		t.Fatal(err)
	}
	recv(t, b.Frames())
	c := sendConn(t, a, b.LocalAddr())
	select {
	case g := <-gone:
		if g != c {
			t.Fatal("another connection closed")
		}
	case <-ctx.Done():
		t.Fatal("watchdog: idle connection never closed")
	}
	var ie *qgo.IdleTimeoutError
	if err := context.Cause(c.qc.Context()); !errors.As(err, &ie) {
		t.Fatalf("closed by %v, want an idle timeout", err)
	}
	if n := a.Stats().Connections; n != 0 {
		t.Fatalf("%d connections left", n)
	}
	// The next frame redials.
	if err := a.SendFrame(ctx, b.LocalAddr(), []byte("y")); err != nil {
		t.Fatal(err)
	}
	if m := recv(t, b.Frames()); string(m.Data) != "y" {
		t.Fatalf("got %q", m.Data)
	}
}

func TestUnreachable(t *testing.T) {
	ca := newCA(t)
	a := listen(t, ca, "a", func(c *Config) { c.HandshakeTimeout = 200 * time.Millisecond })
	// A port nobody listens on.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := pc.LocalAddr().String()
	pc.Close()
	ctx := testCtx(t)
	if err := a.SendFrame(ctx, dead, []byte("x")); !errors.Is(err, transport.ErrUnreachable) {
		t.Fatalf("SendFrame to nobody: %v, want ErrUnreachable", err)
	}
	if err := a.SendDatagram(ctx, dead, []byte("x")); err != nil {
		t.Fatalf("SendDatagram to nobody: %v, want nil", err)
	}
	if err := a.SendFrame(ctx, "not an address", []byte("x")); !errors.Is(err, transport.ErrUnreachable) {
		t.Fatalf("SendFrame to a bad address: %v", err)
	}
	// The datagram was queued for a connection that never comes up: it is
	// counted as dropped once the dial fails, and may be counted as sent
	// too if it was queued first (Stats: counters never go down).
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		s := a.Stats()
		if s.DatagramsSent > 1 || s.DatagramsDropped > 1 {
			t.Fatalf("one datagram, counters %+v", s)
		}
		if s.DatagramsDropped == 1 {
			break
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("the datagram to nobody was never counted as dropped: %+v", s)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	if _, err := Listen("127.0.0.1:0", Config{}); err == nil {
		t.Fatal("Listen without TLS succeeded")
	}
	ca := newCA(t)
	tlsConf, err := ca.UnsafeMutualTLS("x", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	tlsConf.MaxVersion = tls.VersionTLS12
	if _, err := Listen("127.0.0.1:0", Config{TLS: tlsConf}); err == nil {
		t.Fatal("Listen with TLS 1.2 only succeeded")
	}
}

func TestSilentAddressTimesOut(t *testing.T) {
	ca := newCA(t)
	a := listen(t, ca, "a", func(c *Config) { c.HandshakeTimeout = 100 * time.Millisecond })
	// A socket that is open (so no ICMP error comes back) but never answers.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	err = a.SendFrame(testCtx(t), pc.LocalAddr().String(), []byte("x"))
	var ne net.Error // quic-go reports an idle timeout during the handshake
	if !errors.Is(err, transport.ErrUnreachable) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("SendFrame to a silent address: %v, want ErrUnreachable after a handshake timeout", err)
	}
}

func TestSimultaneousDials(t *testing.T) {
	ca := newCA(t)
	a := listen(t, ca, "a", nil)
	b := listen(t, ca, "b", nil)
	ctx := testCtx(t)
	const each = 50
	var wg sync.WaitGroup
	for _, pair := range [][2]*Transport{{a, b}, {b, a}} {
		from, to := pair[0], pair[1]
		wg.Go(func() {
			for i := range each {
				if err := from.SendFrame(ctx, to.LocalAddr(), []byte{byte(i)}); err != nil {
					t.Errorf("SendFrame: %v", err)
					return
				}
			}
		})
	}
	for _, pair := range [][2]*Transport{{a, b}, {b, a}} {
		from, to := pair[0], pair[1]
		for i := range each {
			m := recv(t, to.Frames())
			if m.From != from.LocalAddr() || m.Data[0] != byte(i) {
				t.Fatalf("frame %d: got %v from %s", i, m.Data, m.From)
			}
		}
	}
	wg.Wait()
	// Whichever connections the race left, each side sends on one of them.
	if n := a.Stats().Connections; n < 1 || n > 2 {
		t.Fatalf("a has %d connections", n)
	}
}

// TestDatagramsCarryIdentity: a datagram arrives on the connection whose
// handshake verified the peer's certificate, so with mutual TLS it carries
// the peer's name as a frame does, and the transport says so
// (transport.DatagramAuthenticator), which lets the gossip core send
// payloads by datagram with Authenticate set.
func TestDatagramsCarryIdentity(t *testing.T) {
	ca := newCA(t)
	a := listen(t, ca, "a", nil)
	b := listen(t, ca, "b", nil)
	if !transport.Authenticates(b) || !transport.AuthenticatesDatagrams(b) {
		t.Fatalf("with mutual TLS: Authenticates %v, AuthenticatesDatagrams %v; want both", transport.Authenticates(b), transport.AuthenticatesDatagrams(b))
	}
	m := sendDatagramUntilSeen(t, a, b, []byte("hi"))
	if m.Path != transport.PathDatagram || m.Identity != "a" {
		t.Fatalf("b got %+v, want a datagram from identity a", m)
	}
	if err := a.SendFrame(testCtx(t), b.LocalAddr(), []byte("frame")); err != nil {
		t.Fatal(err)
	}
	if m := recv(t, b.Frames()); m.Identity != "a" {
		t.Fatalf("b got frame %+v, want identity a", m)
	}
}

// dialsOf returns a channel that receives the address of every dial tr
// starts. Set before any connection exists.
func dialsOf(tr *Transport) <-chan string {
	ch := make(chan string, 16)
	hook := func(p *peer) { ch <- p.key }
	tr.hookDial.Store(&hook)
	return ch
}

// TestIncomingHandshakeStandsForDial: while a connection the peer dialed is
// in its handshake, what this side sends the peer waits for it instead of
// dialing a second connection (two nodes that pick each other at a cold
// start paid for two handshakes, on both sides), and goes out on it.
func TestIncomingHandshakeStandsForDial(t *testing.T) {
	ca := newCA(t)
	a := listen(t, ca, "a", nil)
	b := listen(t, ca, "b", nil)
	ctx := testCtx(t)
	dials := dialsOf(a)
	stood := make(chan bool, 1)
	bAddr := b.LocalAddr()
	hook := func(p *peer) {
		p.mu.Lock()
		standing := p.dial != nil && p.dial.incoming
		p.mu.Unlock()
		// Sent while b's handshake is under way: it must not dial.
		if err := a.SendDatagram(ctx, bAddr, []byte("early")); err != nil {
			t.Errorf("SendDatagram: %v", err)
		}
		stood <- standing
	}
	a.hookIncoming.Store(&hook)
	if err := b.SendFrame(ctx, a.LocalAddr(), []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if m := recv(t, a.Frames()); string(m.Data) != "hello" {
		t.Fatalf("a got %q", m.Data)
	}
	if !<-stood {
		t.Error("b's connection in its handshake did not stand for a dial to b")
	}
	if err := a.SendFrame(ctx, b.LocalAddr(), []byte("reply")); err != nil {
		t.Fatal(err)
	}
	if m := recv(t, b.Frames()); string(m.Data) != "reply" || m.From != a.LocalAddr() {
		t.Fatalf("b got %+v, want reply from a", m)
	}
	select {
	case k := <-dials:
		t.Fatalf("a dialed %s while b's connection was in its handshake", k)
	default:
	}
	if ca, cb := a.Stats().Connections, b.Stats().Connections; ca != 1 || cb != 1 {
		t.Fatalf("connections: a %d, b %d; want 1 and 1", ca, cb)
	}
	if d := a.Stats().DatagramsDropped; d != 0 {
		t.Fatalf("a dropped %d datagrams", d)
	}
}

// TestFailedIncomingHandshakeDials: when the connection that stood for a
// dial fails its handshake, what waits for the peer dials it.
func TestFailedIncomingHandshakeDials(t *testing.T) {
	ca1, ca2 := newCA(t), newCA(t)
	b := listen(t, ca1, "b", nil)
	ctx := testCtx(t)
	dials := dialsOf(b)
	// m trusts b but presents a certificate b does not: b refuses it
	// once the handshake is done.
	m := listenForeign(t, ca1, ca2)
	mAddr := m.LocalAddr()
	hook := func(p *peer) {
		if err := b.SendDatagram(ctx, mAddr, []byte("waits")); err != nil {
			t.Errorf("SendDatagram: %v", err)
		}
	}
	b.hookIncoming.Store(&hook)
	_ = m.SendFrame(ctx, b.LocalAddr(), []byte("x")) // refused by b, whatever m hears of it
	select {
	case k := <-dials:
		if k != m.LocalAddr() {
			t.Fatalf("b dialed %s, want %s", k, m.LocalAddr())
		}
	case <-ctx.Done():
		t.Fatal("watchdog: b never dialed m after m's connection failed its handshake")
	}
}
