package quic

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	qgo "github.com/quic-go/quic-go"

	"github.com/plumtree-go/plumtree/transport"
)

// Application error codes sent when this side closes a connection.
const (
	codeClosing       qgo.ApplicationErrorCode = 0 // the transport is closing
	codeFrameTooLarge qgo.ApplicationErrorCode = 1 // the peer announced a frame above MaxFrameSize
	codeWriteFailed   qgo.ApplicationErrorCode = 2 // writing to the peer failed
	codeTooMany       qgo.ApplicationErrorCode = 3 // over Config.MaxInboundConnections
)

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
	// hookIncoming and hookDial, if set (by tests), are called when an
	// accepted connection's handshake starts to stand for a dial to p (or
	// not), and when this side starts a dial.
	hookIncoming, hookDial atomic.Pointer[func(*peer)]
}

var (
	_ transport.Stream        = (*Transport)(nil)
	_ transport.Datagram      = (*Transport)(nil)
	_ transport.StatsReporter = (*Transport)(nil)
	_ transport.Authenticator = (*Transport)(nil)

	_ transport.DatagramAuthenticator = (*Transport)(nil)
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

// dialAttempt is one dial in progress, shared by everyone waiting for it:
// this side's, or the handshake of a connection the peer dialed (incoming;
// see serveIncoming).
type dialAttempt struct {
	done     chan struct{} // closed when the dial ended; err is set before
	err      error
	incoming bool
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

// AuthenticatesDatagrams reports the same as Authenticates
// (transport.DatagramAuthenticator): a datagram arrives on the connection
// whose handshake verified the peer, and carries its Identity.
func (t *Transport) AuthenticatesDatagrams() bool { return t.Authenticates() }

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
