package quic

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	qgo "github.com/quic-go/quic-go"

	"github.com/plumtree-go/plumtree/transport"
	resolveaddr "github.com/plumtree-go/plumtree/transport/internal/resolve"
)

// Application error codes sent when this side closes a connection.
const (
	codeClosing       qgo.ApplicationErrorCode = 0 // the transport is closing
	codeFrameTooLarge qgo.ApplicationErrorCode = 1 // the peer announced a frame above MaxFrameSize
	codeWriteFailed   qgo.ApplicationErrorCode = 2 // writing to the peer failed
	codeTooMany       qgo.ApplicationErrorCode = 3 // over Config.MaxInboundConnections
)

// readChunk is how much a stream reader allocates ahead of the bytes it has
// actually received.
const readChunk = 64 << 10

// batchBytes is how many bytes of queued frames the writer gathers into one
// stream write.
const batchBytes = 32 << 10

// Transport is a QUIC endpoint: one UDP socket that accepts and dials
// connections. It implements transport.Stream, transport.Datagram and
// transport.StatsReporter, and is safe for concurrent use.
type Transport struct {
	pushMu    sync.Mutex // held by the goroutines that push to dgrams
	cfg       Config
	addr      string
	udp       *net.UDPConn
	qt        *qgo.Transport
	ln        *qgo.EarlyListener
	dialQUIC  *qgo.Config
	clientTLS *tls.Config
	sessions  tls.ClientSessionCache // nil unless Enable0RTT

	frames chan transport.Message // unbuffered; closed by Close after every reader stopped
	dgrams chan transport.Message // buffered DatagramQueueSize; closed likewise
	done   chan struct{}          // closed by Close
	ctx    context.Context        // cancelled by Close: dials and accepts
	cancel context.CancelFunc

	closeOnce sync.Once
	isClosed  atomic.Bool

	lifeMu sync.Mutex // guards closed and wg.Add; taken last, never held while taking another lock
	closed bool
	wg     sync.WaitGroup

	mu          sync.Mutex // guards peers, conns, connsClosed; taken before any peer.mu
	peers       map[string]*peer
	conns       map[*conn]struct{}
	connsClosed bool

	c counters
	// inbound counts the accepted connections not yet closed, handshakes
	// in progress included (Config.MaxInboundConnections bounds it).
	inbound atomic.Int64

	// hookDetached, if set (by tests, before any connection exists), is
	// called once a closed connection has been detached from its peer.
	hookDetached func(*conn)
}

var (
	_ transport.Stream        = (*Transport)(nil)
	_ transport.Datagram      = (*Transport)(nil)
	_ transport.StatsReporter = (*Transport)(nil)
	_ transport.Authenticator = (*Transport)(nil)
)

// counters are the traffic counters. The datagram send counters move under a
// mutex together, so that sent+dropped always equals the datagrams accepted.
type counters struct {
	framesSent, framesReceived, framesDropped atomic.Uint64
	datagramsReceived                         atomic.Uint64
	bytesSent, bytesReceived                  atomic.Uint64
	connectionsRefused                        atomic.Uint64

	dmu                             sync.Mutex
	datagramsSent, datagramsDropped uint64
	datagramsDroppedRecv            uint64
}

// peer is what this transport knows of one remote address.
type peer struct {
	key    string // canonical "ip:port": the map key and Message.From
	udp    *net.UDPAddr
	frames chan []byte // length-prefixed frames waiting for the writer
	dgrams chan []byte // datagrams waiting for the writer

	users int // SendFrame/SendDatagram/accept calls holding p; guarded by Transport.mu

	mu    sync.Mutex
	send  *conn   // the connection frames and datagrams go out on
	conns []*conn // every live connection with this peer
	dial  *dialAttempt
}

// dialAttempt is one dial in progress, shared by everyone waiting for it.
type dialAttempt struct {
	done chan struct{} // closed when the dial ended; err is set before
	err  error
}

// conn is one QUIC connection to a peer, dialed or accepted.
type conn struct {
	qc    *qgo.Conn
	p     *peer
	early bool // dialed with DialEarly: wait for the handshake and call NextConnection before use
}

// Listen opens a transport on the UDP address addr (for example
// "127.0.0.1:7946", or "127.0.0.1:0" for a free port). Bind a specific IP:
// LocalAddr must be an address peers can send to.
func Listen(addr string, cfg Config) (*Transport, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("quic: listen %s: %w", addr, err)
	}
	udp, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("quic: listen %s: %w", addr, err)
	}
	resetKey := cfg.StatelessResetKey
	if resetKey == nil {
		resetKey = derivedResetKey(cfg.TLS, udp.LocalAddr().String())
	}
	qt := &qgo.Transport{Conn: udp, StatelessResetKey: resetKey}

	serverTLS := cfg.TLS.Clone()
	serverTLS.MinVersion = tls.VersionTLS13
	serverTLS.NextProtos = []string{ALPN}
	clientTLS := serverTLS.Clone()

	ln, err := qt.ListenEarly(serverTLS, cfg.quicConfig())
	if err != nil {
		qt.Close()
		udp.Close()
		return nil, fmt.Errorf("quic: listen %s: %w", addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &Transport{
		cfg:       cfg,
		addr:      canonical(udp.LocalAddr().(*net.UDPAddr).AddrPort()),
		udp:       udp,
		qt:        qt,
		ln:        ln,
		dialQUIC:  cfg.quicConfig(),
		clientTLS: clientTLS,
		frames:    make(chan transport.Message),
		dgrams:    make(chan transport.Message, cfg.DatagramQueueSize),
		done:      make(chan struct{}),
		ctx:       ctx,
		cancel:    cancel,
		peers:     make(map[string]*peer),
		conns:     make(map[*conn]struct{}),
	}
	if cfg.Enable0RTT {
		t.sessions = clientTLS.ClientSessionCache
		if t.sessions == nil {
			t.sessions = tls.NewLRUClientSessionCache(1024)
		}
	}
	t.spawn(t.acceptLoop)
	return t, nil
}

// LocalAddr returns the address peers send to: the socket's "ip:port".
func (t *Transport) LocalAddr() string { return t.addr }

// MaxDatagramSize returns the largest datagram SendDatagram accepts, the
// constant MaxDatagramSize.
func (t *Transport) MaxDatagramSize() int { return MaxDatagramSize }

// MaxFrameSize returns the largest frame SendFrame accepts
// (Config.MaxFrameSize).
func (t *Transport) MaxFrameSize() int { return t.cfg.MaxFrameSize }

// Frames delivers received stream frames. It is closed by Close.
func (t *Transport) Frames() <-chan transport.Message { return t.frames }

// Datagrams delivers received datagrams. It is closed by Close; datagrams
// buffered then can still be read.
func (t *Transport) Datagrams() <-chan transport.Message { return t.dgrams }

// Authenticates reports whether Config.TLS verifies the certificates of the
// peers that connect (ClientAuth VerifyClientCertIfGiven or
// RequireAndVerifyClientCert): then Message.Identity carries the name in the
// peer's certificate. Otherwise Identity is not a verified claim, and is left
// empty.
func (t *Transport) Authenticates() bool {
	ca := t.cfg.TLS.ClientAuth
	return ca == tls.VerifyClientCertIfGiven || ca == tls.RequireAndVerifyClientCert
}

// Stats returns the transport's counters. A frame counts as sent once
// written to its QUIC stream, and as received once read whole from one; a
// datagram counts as sent once queued for its connection, and also as
// dropped if the connection then refuses it or never comes up (counters
// never go down). Dropped frames
// are those accepted by SendFrame but never written (Close, failed reconnect)
// or cut short, and received frames above MaxFrameSize. DatagramsDropped
// counts both datagrams dropped on sending and received datagrams dropped
// because Datagrams was full. Connections is the number of open QUIC
// connections. ConnectionsRefused counts accepted connections whose
// handshake failed (a client certificate that does not verify, a timeout)
// and those over MaxInboundConnections.
func (t *Transport) Stats() transport.Stats {
	s := transport.Stats{
		FramesSent:        t.c.framesSent.Load(),
		FramesReceived:    t.c.framesReceived.Load(),
		FramesDropped:     t.c.framesDropped.Load(),
		DatagramsReceived: t.c.datagramsReceived.Load(),
		BytesSent:         t.c.bytesSent.Load(),
		BytesReceived:     t.c.bytesReceived.Load(),

		ConnectionsRefused: t.c.connectionsRefused.Load(),
	}
	t.c.dmu.Lock()
	s.DatagramsSent = t.c.datagramsSent
	s.DatagramsDropped = t.c.datagramsDropped + t.c.datagramsDroppedRecv
	t.c.dmu.Unlock()
	t.mu.Lock()
	s.Connections = len(t.conns)
	t.mu.Unlock()
	return s
}

// PeerCertificate returns the verified leaf certificate of the peer at addr,
// from an open connection with it, or nil if there is none (or the peer
// presented no certificate, as a client may when Config.TLS does not require
// one). With devcert certificates, transport.PeerName of it is the peer's name.
func (t *Transport) PeerCertificate(addr string) *x509.Certificate {
	key, _, err := resolve(addr)
	if err != nil {
		return nil
	}
	t.mu.Lock()
	p := t.peers[key]
	t.mu.Unlock()
	if p == nil {
		return nil
	}
	p.mu.Lock()
	var c *conn
	if p.send != nil {
		c = p.send
	} else if len(p.conns) > 0 {
		c = p.conns[0]
	}
	p.mu.Unlock()
	if c == nil {
		return nil
	}
	if certs := c.qc.ConnectionState().TLS.PeerCertificates; len(certs) > 0 {
		return certs[0]
	}
	return nil
}

// SendFrame sends a copy of b to addr on the connection's stream, whole and
// in order with the other frames to addr. It dials addr if no connection is
// open (failing with an error wrapping transport.ErrUnreachable if the
// handshake fails), then queues the frame, blocking while the peer's send
// queue is full until ctx is done. It returns nil once the frame is queued.
func (t *Transport) SendFrame(ctx context.Context, addr string, b []byte) error {
	if t.isClosed.Load() {
		return t.closedErr("send frame", addr)
	}
	if len(b) > t.cfg.MaxFrameSize {
		return &transport.TooLargeError{Path: transport.PathStream, Size: len(b), Limit: t.cfg.MaxFrameSize}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("quic: send frame %s→%s: %w", t.addr, addr, err)
	}
	p, err := t.acquire(addr)
	if err != nil {
		return fmt.Errorf("quic: send frame %s→%s: %w: %w", t.addr, addr, transport.ErrUnreachable, err)
	}
	defer t.release(p)
	if err := t.connect(ctx, p); err != nil {
		return fmt.Errorf("quic: send frame %s→%s: %w", t.addr, addr, err)
	}
	f := make([]byte, 4+len(b))
	binary.BigEndian.PutUint32(f, uint32(len(b)))
	copy(f[4:], b)
	select {
	case p.frames <- f:
	case <-ctx.Done():
		return fmt.Errorf("quic: send frame %s→%s: %w", t.addr, addr, ctx.Err())
	case <-t.done:
		return t.closedErr("send frame", addr)
	}
	if t.isClosed.Load() {
		// Close raced with the send: the frame is dropped (and counted)
		// with the rest of the queue.
		return t.closedErr("send frame", addr)
	}
	p.mu.Lock()
	t.kickLocked(p)
	p.mu.Unlock()
	return nil
}

// SendDatagram sends a copy of b to addr as a QUIC datagram, best effort. It
// never blocks: with no connection to addr it starts a dial in the
// background and queues the datagram meanwhile; a datagram that finds the
// peer's queue full is dropped and counted, and SendDatagram returns nil.
func (t *Transport) SendDatagram(ctx context.Context, addr string, b []byte) error {
	if t.isClosed.Load() {
		return t.closedErr("send datagram", addr)
	}
	if len(b) > MaxDatagramSize {
		return &transport.TooLargeError{Path: transport.PathDatagram, Size: len(b), Limit: MaxDatagramSize}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("quic: send datagram %s→%s: %w", t.addr, addr, err)
	}
	p, err := t.acquire(addr)
	if err != nil {
		return fmt.Errorf("quic: send datagram %s→%s: %w: %w", t.addr, addr, transport.ErrUnreachable, err)
	}
	defer t.release(p)
	d := make([]byte, len(b))
	copy(d, b)
	select {
	case p.dgrams <- d:
		t.c.dmu.Lock()
		t.c.datagramsSent++
		t.c.dmu.Unlock()
		t.c.bytesSent.Add(uint64(len(d)))
	default:
		t.c.dmu.Lock()
		t.c.datagramsDropped++
		t.c.dmu.Unlock()
		return nil
	}
	p.mu.Lock()
	t.kickLocked(p)
	p.mu.Unlock()
	return nil
}

// unsendDatagram counts a queued datagram that never went out as dropped
// too. It stays counted as sent: counters only grow (observers export them
// as monotonic counters), so a datagram refused after it was queued is in
// both.
func (t *Transport) unsendDatagram() {
	t.c.dmu.Lock()
	t.c.datagramsDropped++
	t.c.dmu.Unlock()
}

// Close closes every connection (telling each peer), the listener and the
// socket, unblocks blocked SendFrame calls, waits for every goroutine of the
// transport, and closes Frames and Datagrams. It is idempotent and returns
// nil.
func (t *Transport) Close() error {
	t.closeOnce.Do(func() {
		t.lifeMu.Lock()
		t.closed = true
		t.lifeMu.Unlock()
		t.isClosed.Store(true)
		close(t.done)
		t.cancel()

		t.mu.Lock()
		t.connsClosed = true
		conns := make([]*conn, 0, len(t.conns))
		for c := range t.conns {
			conns = append(conns, c)
		}
		t.mu.Unlock()
		var closing sync.WaitGroup
		for _, c := range conns {
			closing.Go(func() { c.qc.CloseWithError(codeClosing, "transport closed") })
		}
		closing.Wait()
		t.ln.Close()
		t.qt.Close()
		t.udp.Close()
		t.wg.Wait()

		t.mu.Lock()
		for _, p := range t.peers {
			t.dropQueued(p)
		}
		t.mu.Unlock()
		close(t.frames)
		close(t.dgrams)
	})
	return nil
}

func (t *Transport) closedErr(op, addr string) error {
	return fmt.Errorf("quic: %s %s→%s: %w", op, t.addr, addr, transport.ErrClosed)
}

// spawn runs f in a goroutine that Close waits for, unless the transport is
// closed.
func (t *Transport) spawn(f func()) bool {
	t.lifeMu.Lock()
	defer t.lifeMu.Unlock()
	if t.closed {
		return false
	}
	t.wg.Go(f)
	return true
}

// canonical is the string form of an address used as a peer key and as
// Message.From.
func canonical(ap netip.AddrPort) string {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()
}

// resolve turns addr into its canonical key and UDP address.
// resolver caches DNS answers for peers advertised by host name, so that
// a lookup is not made for every datagram.
var resolver resolveaddr.Cache

func resolve(addr string) (string, *net.UDPAddr, error) {
	ap, err := resolver.Resolve(addr)
	if err != nil {
		return "", nil, err
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	if !ap.Addr().IsValid() || ap.Addr().IsUnspecified() || ap.Port() == 0 {
		return "", nil, fmt.Errorf("not a destination address: %q", addr)
	}
	return ap.String(), net.UDPAddrFromAddrPort(ap), nil
}

// acquire returns the peer for addr, creating it if needed, and holds it
// until release.
func (t *Transport) acquire(addr string) (*peer, error) {
	key, ua, err := resolve(addr)
	if err != nil {
		return nil, err
	}
	return t.acquireKey(key, ua), nil
}

func (t *Transport) acquireKey(key string, ua *net.UDPAddr) *peer {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.peers[key]
	if p == nil {
		p = &peer{
			key:    key,
			udp:    ua,
			frames: make(chan []byte, t.cfg.SendQueueSize),
			dgrams: make(chan []byte, t.cfg.DatagramQueueSize),
		}
		t.peers[key] = p
	}
	p.users++
	return p
}

func (t *Transport) release(p *peer) {
	t.mu.Lock()
	p.users--
	t.mu.Unlock()
	t.maybeForget(p)
}

// maybeForget removes p from the peer map when nothing refers to it any more,
// so that the map does not grow with every address ever seen.
func (t *Transport) maybeForget(p *peer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.peers[p.key] != p || p.users > 0 {
		return
	}
	p.mu.Lock()
	idle := p.send == nil && len(p.conns) == 0 && p.dial == nil && len(p.frames) == 0 && len(p.dgrams) == 0
	p.mu.Unlock()
	if idle {
		delete(t.peers, p.key)
	}
}

// connect returns once p has a sending connection, dialing if needed.
func (t *Transport) connect(ctx context.Context, p *peer) error {
	for {
		p.mu.Lock()
		if p.send != nil {
			p.mu.Unlock()
			return nil
		}
		a := p.dial
		if a == nil {
			a = t.startDialLocked(p)
		}
		p.mu.Unlock()
		select {
		case <-a.done:
			if a.err != nil {
				p.mu.Lock()
				ok := p.send != nil
				p.mu.Unlock()
				if ok {
					return nil
				}
				if t.isClosed.Load() {
					return transport.ErrClosed
				}
				return fmt.Errorf("%w: %w", transport.ErrUnreachable, a.err)
			}
		case <-ctx.Done():
			return ctx.Err()
		case <-t.done:
			return transport.ErrClosed
		}
	}
}

// kickLocked starts a background dial if p has something to send and no way
// to send it. p.mu must be held.
func (t *Transport) kickLocked(p *peer) {
	if p.send == nil && p.dial == nil && (len(p.frames) > 0 || len(p.dgrams) > 0) {
		t.startDialLocked(p)
	}
}

// startDialLocked starts dialing p. p.mu must be held and p.dial nil.
func (t *Transport) startDialLocked(p *peer) *dialAttempt {
	a := &dialAttempt{done: make(chan struct{})}
	p.dial = a // keeps p in the peer map until the dial ends
	if !t.spawn(func() { t.dial(p, a) }) {
		a.err = transport.ErrClosed
		close(a.done)
		p.dial = nil
	}
	return a
}

// dial connects to p and attaches the connection.
func (t *Transport) dial(p *peer, a *dialAttempt) {
	defer t.maybeForget(p)
	tc := t.clientTLS.Clone()
	if tc.ServerName == "" {
		tc.ServerName = p.udp.IP.String()
	}
	ctx, cancel := context.WithCancelCause(t.ctx)
	t.spawn(func() { probePort(ctx, p.udp, cancel) })
	var (
		qc  *qgo.Conn
		err error
	)
	if t.sessions != nil {
		tc.ClientSessionCache = peerSessions{cache: t.sessions, prefix: p.key + "|"}
		qc, err = t.qt.DialEarly(ctx, p.udp, tc, t.dialQUIC)
	} else {
		qc, err = t.qt.Dial(ctx, p.udp, tc, t.dialQUIC)
	}
	if cause := context.Cause(ctx); err != nil && errors.Is(cause, errPortUnreachable) {
		err = cause
	}
	cancel(nil) // ends the probe; the connection does not depend on ctx after the dial
	if err == nil {
		// Even if the handshake has completed by now, a rejected 0-RTT
		// attempt leaves the connection unusable until NextConnection.
		if !t.attach(p, qc, t.sessions != nil) {
			err = transport.ErrClosed
		}
	}
	p.mu.Lock()
	a.err = err
	p.dial = nil
	close(a.done)
	if err != nil && p.send == nil {
		t.dropQueuedLocked(p)
	}
	p.mu.Unlock()
}

// errPortUnreachable reports an ICMP port unreachable from a dialed address.
var errPortUnreachable = errors.New("port unreachable (ICMP)")

// probePort cancels a dial at once, with errPortUnreachable, if the host at
// addr answers with an ICMP port unreachable. quic-go dials over the
// transport's unconnected socket, which never sees ICMP errors, so a dial to a
// port nobody listens on would otherwise wait for the whole handshake
// timeout. The probe sends one byte from a connected socket of its own, which
// the kernel reports the ICMP error on; a QUIC endpoint drops the byte (its
// first two bits are zero, so it is not a QUIC packet). The probe ends when
// ctx does.
func probePort(ctx context.Context, addr *net.UDPAddr, cancel context.CancelCauseFunc) {
	c, err := net.DialUDP("udp", nil, addr)
	if err != nil {
		return
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) })
	defer stop()
	if _, err := c.Write([]byte{0}); isRefused(err) {
		cancel(errPortUnreachable)
		return
	}
	var b [1]byte
	for ctx.Err() == nil {
		if _, err := c.Read(b[:]); isRefused(err) {
			cancel(errPortUnreachable)
			return
		} else if err != nil {
			return
		}
	}
}

// isRefused reports whether err is the ICMP port unreachable of a connected
// UDP socket (ECONNRESET on Windows).
func isRefused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}

// dropQueued drops and counts everything waiting in p's queues.
func (t *Transport) dropQueued(p *peer) {
	p.mu.Lock()
	t.dropQueuedLocked(p)
	p.mu.Unlock()
}

func (t *Transport) dropQueuedLocked(p *peer) {
	for {
		select {
		case <-p.frames:
			t.c.framesDropped.Add(1)
		case <-p.dgrams:
			t.unsendDatagram()
		default:
			return
		}
	}
}

// acceptLoop accepts incoming connections until Close. One over
// MaxInboundConnections is closed at once and counted.
func (t *Transport) acceptLoop() {
	for {
		qc, err := t.ln.Accept(t.ctx)
		if err != nil {
			return
		}
		if t.inbound.Add(1) > int64(t.cfg.MaxInboundConnections) {
			t.inbound.Add(-1)
			t.c.connectionsRefused.Add(1)
			qc.CloseWithError(codeTooMany, "too many connections")
			continue
		}
		context.AfterFunc(qc.Context(), func() { t.inbound.Add(-1) })
		if !t.spawn(func() { t.serveIncoming(qc) }) {
			qc.CloseWithError(codeClosing, "transport closed")
			return
		}
	}
}

// serveIncoming waits for an accepted connection's handshake to complete (so
// that the peer is authenticated before anything from it is delivered) and
// attaches it to its peer.
func (t *Transport) serveIncoming(qc *qgo.Conn) {
	select {
	case <-qc.HandshakeComplete():
	case <-qc.Context().Done():
		// The handshake failed: a client certificate that does not
		// verify, a timeout, a peer that gave up.
		if !t.isClosed.Load() {
			t.c.connectionsRefused.Add(1)
		}
		return
	case <-t.done:
		qc.CloseWithError(codeClosing, "transport closed")
		return
	}
	if qc.Context().Err() != nil {
		return // the handshake failed (the peer closed it at once after)
	}
	ua, ok := qc.RemoteAddr().(*net.UDPAddr)
	if !ok {
		qc.CloseWithError(codeClosing, "unexpected address")
		return
	}
	ap := ua.AddrPort()
	key := canonical(ap)
	p := t.acquireKey(key, net.UDPAddrFromAddrPort(netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())))
	t.attach(p, qc, false)
	t.release(p)
}

// attach registers a connection with p: it becomes p's sending connection if
// p has none, and its readers start. It reports false, having closed qc, if
// the transport is closing.
func (t *Transport) attach(p *peer, qc *qgo.Conn, early bool) bool {
	c := &conn{qc: qc, p: p, early: early}
	t.mu.Lock()
	if t.connsClosed {
		t.mu.Unlock()
		qc.CloseWithError(codeClosing, "transport closed")
		return false
	}
	t.conns[c] = struct{}{}
	t.mu.Unlock()

	p.mu.Lock()
	p.conns = append(p.conns, c)
	if p.send == nil {
		t.useLocked(c)
	}
	p.mu.Unlock()

	t.spawn(func() { t.acceptStreams(c) })
	t.spawn(func() { t.readDatagrams(c) })
	t.spawn(func() { t.supervise(c) })
	return true
}

// useLocked makes c its peer's sending connection. c.p.mu must be held.
func (t *Transport) useLocked(c *conn) {
	c.p.send = c
	t.spawn(func() { t.writeFrames(c) })
	t.spawn(func() { t.writeDatagrams(c) })
}

// supervise waits for c to close and then detaches it from its peer.
func (t *Transport) supervise(c *conn) {
	<-c.qc.Context().Done()
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
	p := c.p
	p.mu.Lock()
	if i := slices.Index(p.conns, c); i >= 0 {
		p.conns = slices.Delete(p.conns, i, i+1)
	}
	if p.send == c {
		p.send = nil
		if len(p.conns) > 0 {
			t.useLocked(p.conns[0])
		}
	}
	if !t.isClosed.Load() {
		t.kickLocked(p)
	}
	p.mu.Unlock()
	t.maybeForget(p)
	if t.hookDetached != nil {
		t.hookDetached(c)
	}
}

// awaitHandshake waits until c's handshake has completed, and for a 0-RTT
// dial makes c usable again if the server rejected 0-RTT. It reports whether
// c is usable.
func awaitHandshake(c *conn) bool {
	ctx := c.qc.Context()
	select {
	case <-c.qc.HandshakeComplete():
	case <-ctx.Done():
		return false
	}
	if ctx.Err() != nil {
		return false
	}
	if c.early {
		if _, err := c.qc.NextConnection(ctx); err != nil {
			return false
		}
	}
	return true
}

// writeFrames writes p's queued frames to c's stream until c or the
// transport closes. Frames waiting together are written in one call (up to
// batchBytes), which saves quic-go a packet per small frame.
func (t *Transport) writeFrames(c *conn) {
	p, ctx := c.p, c.qc.Context()
	// quic-go (v0.61 to v0.66 at least) reads the peer's transport
	// parameters when a stream is opened (or a datagram sent) without
	// synchronising with the handshake that replaces them (quic-go issue #4303, a data race), so nothing is
	// sent on a 0-RTT connection before its handshake completes.
	if c.early && !awaitHandshake(c) {
		return
	}
	var s *qgo.SendStream
	for {
		select { // once closing, leave the queue alone (a random select might not)
		case <-t.done:
			return
		case <-ctx.Done():
			return
		default:
		}
		var batch []byte
		select {
		case <-t.done:
			return
		case <-ctx.Done():
			return
		case batch = <-p.frames:
		}
		n, payload := 1, len(batch)-4
	more:
		for len(batch) < batchBytes {
			select {
			case f := <-p.frames:
				if n == 1 {
					batch = append(make([]byte, 0, max(len(batch)+len(f), 2*batchBytes)), batch...)
				}
				batch = append(batch, f...)
				n, payload = n+1, payload+len(f)-4
			default:
				break more
			}
		}
		var err error
		if s == nil {
			s, err = c.qc.OpenUniStreamSync(ctx)
		}
		if err == nil {
			_, err = s.Write(batch)
		}
		if err != nil {
			t.c.framesDropped.Add(uint64(n))
			c.qc.CloseWithError(codeWriteFailed, "write failed")
			return
		}
		t.c.framesSent.Add(uint64(n))
		t.c.bytesSent.Add(uint64(payload))
	}
}

// writeDatagrams hands p's queued datagrams to c until c or the transport
// closes. quic-go's SendDatagram may block while its own small queue is full,
// which is why it runs here and not in SendDatagram.
func (t *Transport) writeDatagrams(c *conn) {
	p, ctx := c.p, c.qc.Context()
	if c.early && !awaitHandshake(c) { // see writeFrames
		return
	}
	for {
		select {
		case <-t.done:
			return
		case <-ctx.Done():
			return
		case d := <-p.dgrams:
			if err := c.qc.SendDatagram(d); err != nil {
				t.unsendDatagram()
			}
		}
	}
}

// acceptStreams reads every stream the peer opens on c.
func (t *Transport) acceptStreams(c *conn) {
	if !awaitHandshake(c) {
		return
	}
	ctx := c.qc.Context()
	for {
		s, err := c.qc.AcceptUniStream(ctx)
		if errors.Is(err, qgo.Err0RTTRejected) {
			if _, err := c.qc.NextConnection(ctx); err != nil {
				return
			}
			continue
		}
		if err != nil {
			return
		}
		if !t.spawn(func() { t.readStream(c, s) }) {
			return
		}
	}
}

// identity is the name in the peer's verified certificate on c.
func (t *Transport) identity(c *conn) string {
	if !t.Authenticates() {
		return ""
	}
	if certs := c.qc.ConnectionState().TLS.PeerCertificates; len(certs) > 0 {
		return transport.PeerName(certs[0])
	}
	return ""
}

// readStream delivers the frames of one stream.
func (t *Transport) readStream(c *conn, s *qgo.ReceiveStream) {
	ident := t.identity(c)
	r := bufio.NewReaderSize(s, 16<<10)
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if err != io.EOF {
				s.CancelRead(0)
			}
			return
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if uint64(n) > uint64(t.cfg.MaxFrameSize) {
			t.c.framesDropped.Add(1)
			s.CancelRead(qgo.StreamErrorCode(codeFrameTooLarge))
			c.qc.CloseWithError(codeFrameTooLarge, fmt.Sprintf("frame of %d bytes exceeds %d", n, t.cfg.MaxFrameSize))
			return
		}
		data, err := readFrame(r, int(n))
		if err != nil {
			t.c.framesDropped.Add(1)
			s.CancelRead(0)
			return
		}
		t.c.framesReceived.Add(1)
		t.c.bytesReceived.Add(uint64(n))
		select {
		case t.frames <- transport.Message{From: c.p.key, Data: data, Path: transport.PathStream, Identity: ident}:
		case <-t.done:
			return
		}
	}
}

// readFrame reads an n-byte frame, allocating as the bytes arrive rather
// than trusting n up front.
func readFrame(r io.Reader, n int) ([]byte, error) {
	buf := make([]byte, 0, min(n, readChunk))
	for len(buf) < n {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(len(buf), n-len(buf)))
		}
		m, err := r.Read(buf[len(buf):min(cap(buf), n)])
		buf = buf[:len(buf)+m]
		if err != nil && len(buf) < n {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return buf, nil
}

// readDatagrams delivers the datagrams received on c.
func (t *Transport) readDatagrams(c *conn) {
	if !awaitHandshake(c) {
		return
	}
	ctx := c.qc.Context()
	ident := t.identity(c)
	for {
		d, err := c.qc.ReceiveDatagram(ctx)
		if err != nil {
			return
		}
		if d == nil {
			d = []byte{}
		}
		// Counted before the reader can see it. Only pushes change the
		// channel's length, and they hold pushMu: room now is room at the
		// push, which then cannot block.
		t.pushMu.Lock()
		if len(t.dgrams) < cap(t.dgrams) {
			t.c.datagramsReceived.Add(1)
			t.c.bytesReceived.Add(uint64(len(d)))
			t.dgrams <- transport.Message{From: c.p.key, Data: d, Path: transport.PathDatagram, Identity: ident}
			t.pushMu.Unlock()
		} else {
			t.pushMu.Unlock()
			t.c.dmu.Lock()
			t.c.datagramsDroppedRecv++
			t.c.dmu.Unlock()
		}
	}
}
