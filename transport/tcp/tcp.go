package tcp

import (
	"bufio"
	"context"
	cryptorand "crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plumtree-go/plumtree/transport"
	"github.com/plumtree-go/plumtree/transport/devcert"
	"github.com/plumtree-go/plumtree/transport/internal/bufpool"
)

// Defaults used when a Config field is zero.
const (
	DefaultMaxFrameSize     = 4 << 20
	DefaultIdleTimeout      = 60 * time.Second
	DefaultDialTimeout      = 5 * time.Second
	DefaultSendQueueSize    = 256
	DefaultSendQueueBytes   = 8 << 20
	DefaultReceiveQueueSize = 256
	// DefaultMaxInboundConnections is MaxInboundConnections' default.
	DefaultMaxInboundConnections = 1024
	// MaxFrameSizeLimit is the largest MaxFrameSize Listen accepts.
	MaxFrameSizeLimit = 1 << 30
)

// ProtocolVersion is the version of the wire format this package speaks.
// Version 2 added the challenge and the proof of the hello (see the
// package doc).
const ProtocolVersion = 2

var magic = [4]byte{'P', 'L', 'T', 'S'}

// maxAddrLen bounds the address announced in the handshake.
const maxAddrLen = 255

// challengeLen is the length of the listener's challenge to a dialer that
// must prove its hello; maxProofLen bounds the proof.
const (
	challengeLen = 32
	maxProofLen  = 255
)

// Config sets up a Transport. The zero value is usable.
type Config struct {
	// MaxFrameSize is the largest frame sent or accepted; default 4 MiB, at
	// most MaxFrameSizeLimit. A peer that sends a longer frame has its
	// connection closed.
	MaxFrameSize int
	// MaxInboundConnections caps the connections peers have open to this
	// transport at once; one more is closed as soon as it is accepted.
	// Default 1024. Each holds a goroutine and a read buffer, so without a
	// cap anyone who can reach the port could exhaust memory.
	MaxInboundConnections int
	// MaxConnectionsPerPeer is the number of connections used to send to one
	// peer. It must be 0 or 1: frames stay in order because they share one
	// connection (see the package doc).
	MaxConnectionsPerPeer int
	// IdleTimeout closes a connection that has had nothing to send for this
	// long; default 60s, negative never closes idle connections.
	IdleTimeout time.Duration
	// DialTimeout bounds connecting to a peer, TLS and protocol handshakes
	// included, on both sides; default 5s.
	DialTimeout time.Duration
	// WriteTimeout, if positive, fails a connection whose write of queued
	// frames does not finish within it (a peer that stopped reading). By
	// default a stalled peer keeps its connection and its senders block
	// (backpressure).
	WriteTimeout time.Duration
	// SendQueueSize bounds the frames queued towards one peer; default 256.
	SendQueueSize int
	// SendQueueBytes bounds the bytes queued towards one peer; default 8 MiB.
	// A single frame larger than this is accepted into an empty queue.
	SendQueueBytes int
	// ReceiveQueueSize is how many received frames wait for the reader of
	// Frames before the read loops stop reading (and TCP pushes back on the
	// senders); default 256.
	ReceiveQueueSize int
	// TLS, if set, wraps every connection in TLS with this configuration, as
	// the server for accepted connections and as the client for dialed ones
	// (ServerName defaults to the dialed host).
	TLS *tls.Config
	// PeerName maps a verified peer certificate to the identity reported by
	// PeerIdentity; default devcert.PeerName (the "plumtree:<name>" URI SAN,
	// else the common name).
	PeerName func(*x509.Certificate) string
	// Logger receives connection failures and protocol errors; nil logs
	// nothing.
	Logger *slog.Logger
}

// PeerIdentifier is implemented by transports that authenticate their peers.
type PeerIdentifier interface {
	// PeerIdentity returns the authenticated identity of the peer whose
	// frames arrive with Message.From == from, and whether there is one.
	PeerIdentity(from string) (string, bool)
}

// Transport is a TCP listener and a pool of outgoing connections. It
// implements transport.Stream, transport.StatsReporter and PeerIdentifier.
// It is safe for concurrent use.
type Transport struct {
	cfg    Config
	ln     net.Listener
	addr   string
	log    *slog.Logger
	frames chan transport.Message
	done   chan struct{}
	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	once   sync.Once
	wg     sync.WaitGroup

	// writers counts the writer goroutines running; hookWriterExit, if set
	// (by tests, before the first send), is told how many are left each
	// time one exits.
	writers        atomic.Int64
	hookWriterExit func(live int64)

	closed atomic.Bool
	mu     sync.Mutex // guards peers, inbound, idents
	peers  map[string]*peer
	inbd   map[net.Conn]struct{}
	idents map[string]string
	// readers holds, per reader slot (the sender address, with TLS as
	// claimed by a certificate's holder), the connection being read;
	// slotsFrom counts the slots of each sender address.
	readers   map[string]*readerSlot
	slotsFrom map[string]int

	// auth, once set (AuthenticateHellos), proves the dialer's hellos and
	// checks those of accepted connections.
	auth atomic.Pointer[helloAuth]

	framesSent, framesRecv, framesDropped atomic.Uint64
	bytesSent, bytesRecv                  atomic.Uint64
	conns                                 atomic.Int64
	refused                               atomic.Uint64
}

type helloAuth struct{ transport.HelloAuthenticator }

var (
	_ transport.Stream              = (*Transport)(nil)
	_ transport.StatsReporter       = (*Transport)(nil)
	_ transport.Authenticator       = (*Transport)(nil)
	_ transport.HelloAuthenticating = (*Transport)(nil)
	_ PeerIdentifier                = (*Transport)(nil)
)

// AuthenticateHellos makes every connection prove its hello with a: an
// accepted connection is served only once its dialer has answered a fresh
// challenge with a proof that a verifies over the challenge, the address it
// claims and this transport's address; dialed connections prove theirs
// when asked. package seal calls it when it wraps the transport. Later
// calls replace a; nil is ignored (proofs cannot be turned off).
func (t *Transport) AuthenticateHellos(a transport.HelloAuthenticator) {
	if a != nil {
		t.auth.Store(&helloAuth{a})
	}
}

// peer is the send side towards one address.
type peer struct {
	addr string

	mu      sync.Mutex
	removed bool         // no longer in Transport.peers; look it up again
	dialing *dialAttempt // a dial in progress
	conn    *outConn     // the live connection, if any
	q       []*[]byte    // encoded frames waiting for the writer, from bufpool
	qBytes  int
	space   chan struct{} // closed when room may have appeared; nil if nobody waits
}

type dialAttempt struct {
	done chan struct{}
	err  error // set before done is closed
}

// outConn is a dialed connection. Its writer goroutine runs only while
// the peer's queue holds frames (see kick); a reader watches the
// connection for its whole life.
type outConn struct {
	c    net.Conn
	idle *time.Timer // retires the connection after IdleTimeout without a writer; nil: never

	// Guarded by the peer's mu.
	writing bool // a writer goroutine is draining the queue
	done    bool // failed, retired or closed: nothing more to do

	// Owned by the writer of the moment (handed over under the peer's mu).
	bw    *bufio.Writer // TLS: one record per batch
	bufs  net.Buffers
	spare []*[]byte // the last batch's slice, for the queue to reuse
}

// Listen opens a TCP listener at addr ("ip:port"; port 0 picks a free port)
// and starts accepting connections.
func Listen(addr string, cfg Config) (*Transport, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("tcp: listen %s: %w", addr, err)
	}
	t, err := New(ln, cfg)
	if err != nil {
		ln.Close()
		return nil, err
	}
	return t, nil
}

// New makes a Transport that accepts on ln, which it owns from then on (Close
// closes it). It is for callers that bind the listener themselves.
func New(ln net.Listener, cfg Config) (*Transport, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &Transport{
		cfg:     cfg,
		ln:      ln,
		addr:    ln.Addr().String(),
		log:     cfg.Logger,
		frames:  make(chan transport.Message, cfg.ReceiveQueueSize),
		done:    make(chan struct{}),
		ctx:     ctx,
		cancel:  cancel,
		peers:   make(map[string]*peer),
		inbd:    make(map[net.Conn]struct{}),
		idents:  make(map[string]string),
		readers: make(map[string]*readerSlot),

		slotsFrom: make(map[string]int),
	}
	if len(t.addr) > maxAddrLen {
		cancel()
		return nil, fmt.Errorf("tcp: listen address %q longer than %d bytes", t.addr, maxAddrLen)
	}
	t.wg.Add(1)
	go t.acceptLoop()
	return t, nil
}

func (cfg *Config) fill() error {
	if cfg.MaxFrameSize == 0 {
		cfg.MaxFrameSize = DefaultMaxFrameSize
	}
	if cfg.MaxFrameSize < 0 || cfg.MaxFrameSize > MaxFrameSizeLimit {
		return fmt.Errorf("tcp: MaxFrameSize %d out of range [1, %d]", cfg.MaxFrameSize, MaxFrameSizeLimit)
	}
	if cfg.MaxConnectionsPerPeer < 0 || cfg.MaxConnectionsPerPeer > 1 {
		return fmt.Errorf("tcp: MaxConnectionsPerPeer %d: only 1 is supported, since frames to a peer must stay in order", cfg.MaxConnectionsPerPeer)
	}
	cfg.MaxConnectionsPerPeer = 1
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.SendQueueSize <= 0 {
		cfg.SendQueueSize = DefaultSendQueueSize
	}
	if cfg.SendQueueBytes <= 0 {
		cfg.SendQueueBytes = DefaultSendQueueBytes
	}
	if cfg.MaxInboundConnections <= 0 {
		cfg.MaxInboundConnections = DefaultMaxInboundConnections
	}
	if cfg.ReceiveQueueSize <= 0 {
		cfg.ReceiveQueueSize = DefaultReceiveQueueSize
	}
	if cfg.PeerName == nil {
		cfg.PeerName = devcert.PeerName
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// LocalAddr returns the listening address, "ip:port".
func (t *Transport) LocalAddr() string { return t.addr }

// MaxFrameSize returns the largest frame SendFrame accepts.
func (t *Transport) MaxFrameSize() int { return t.cfg.MaxFrameSize }

// Frames delivers received frames; From is the sender's LocalAddr. It is
// closed by Close; frames already queued can still be read.
func (t *Transport) Frames() <-chan transport.Message { return t.frames }

// Stats returns the counters. FramesSent and BytesSent (payload bytes)
// count frames written to a socket; FramesReceived and BytesReceived count
// frames read from one, whether or not the reader of Frames takes them
// before Close. FramesDropped counts frames queued for a connection that
// failed or closed, and frames this receiver refused (over its limit).
// Connections is the number of open connections, dialed and accepted. The
// writers have counted every frame they wrote by the time Close returns.
func (t *Transport) Stats() transport.Stats {
	return transport.Stats{
		FramesSent:     t.framesSent.Load(),
		FramesReceived: t.framesRecv.Load(),
		FramesDropped:  t.framesDropped.Load(),
		BytesSent:      t.bytesSent.Load(),
		BytesReceived:  t.bytesRecv.Load(),
		Connections:    int(t.conns.Load()),

		ConnectionsRefused: t.refused.Load(),
	}
}

// Authenticates reports whether Config.TLS verifies the certificates of
// the peers that connect (ClientAuth VerifyClientCertIfGiven or
// RequireAndVerifyClientCert): then Message.Identity carries the name in the
// certificate the sender presented. Without TLS, or without client
// verification, it is false and Identity stays empty.
func (t *Transport) Authenticates() bool {
	return t.cfg.TLS != nil && (t.cfg.TLS.ClientAuth == tls.VerifyClientCertIfGiven || t.cfg.TLS.ClientAuth == tls.RequireAndVerifyClientCert)
}

// PeerIdentity returns the name in the certificate the peer at from
// presented on its latest connection, if TLS verified one.
func (t *Transport) PeerIdentity(from string) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	id, ok := t.idents[from]
	return id, ok
}

func (t *Transport) errClosed(addr string) error {
	return fmt.Errorf("tcp: send frame %s→%s: %w", t.addr, addr, transport.ErrClosed)
}

// SendFrame queues a copy of b for addr, dialing it first if there is no
// connection. It blocks while the queue towards addr is full. See the
// package doc for the errors.
func (t *Transport) SendFrame(ctx context.Context, addr string, b []byte) error {
	if t.closed.Load() {
		return t.errClosed(addr)
	}
	if len(b) > t.cfg.MaxFrameSize {
		return &transport.TooLargeError{Path: transport.PathStream, Size: len(b), Limit: t.cfg.MaxFrameSize}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("tcp: send frame %s→%s: %w", t.addr, addr, err)
	}
	// The copy comes from a pool; the writer returns it once written.
	fp := bufpool.Get(binary.MaxVarintLen64 + len(b))
	frame := binary.AppendUvarint(*fp, uint64(len(b)))
	frame = append(frame, b...)
	*fp = frame

	for {
		p := t.lookup(addr)
		if p == nil {
			return t.errClosed(addr)
		}
		p.mu.Lock()
		switch {
		case p.removed:
			p.mu.Unlock()
			continue

		case p.conn != nil:
			if len(p.q) == 0 || (len(p.q) < t.cfg.SendQueueSize && p.qBytes+len(frame) <= t.cfg.SendQueueBytes) {
				p.q = append(p.q, fp)
				p.qBytes += len(frame)
				t.kick(p, p.conn)
				p.mu.Unlock()
				return nil
			}
			if p.space == nil {
				p.space = make(chan struct{})
			}
			space := p.space
			p.mu.Unlock()
			select {
			case <-space:
			case <-ctx.Done():
				bufpool.Put(fp)
				return fmt.Errorf("tcp: send frame %s→%s: queue full: %w", t.addr, addr, ctx.Err())
			case <-t.done:
				return t.errClosed(addr)
			}

		case p.dialing != nil:
			d := p.dialing
			p.mu.Unlock()
			select {
			case <-d.done:
				if errors.Is(d.err, transport.ErrUnreachable) {
					return d.err
				}
			case <-ctx.Done():
				return fmt.Errorf("tcp: send frame %s→%s: %w", t.addr, addr, ctx.Err())
			case <-t.done:
				return t.errClosed(addr)
			}

		default:
			d := &dialAttempt{done: make(chan struct{})}
			p.dialing = d
			p.mu.Unlock()
			c, err := t.dial(ctx, addr)
			p.mu.Lock()
			p.dialing = nil
			switch {
			case err == nil && t.closed.Load():
				c.Close()
				err = t.errClosed(addr)
			case err == nil:
				t.startConn(p, c)
			case t.closed.Load():
				err = t.errClosed(addr)
			case ctx.Err() != nil:
				err = fmt.Errorf("tcp: send frame %s→%s: dial: %w", t.addr, addr, ctx.Err())
			default:
				err = fmt.Errorf("tcp: send frame %s→%s: %w: %w", t.addr, addr, transport.ErrUnreachable, err)
			}
			d.err = err
			close(d.done)
			p.mu.Unlock()
			if err != nil {
				t.forget(p)
				return err
			}
		}
	}
}

// lookup returns the peer for addr, creating it; nil after Close.
func (t *Transport) lookup(addr string) *peer {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed.Load() {
		return nil
	}
	p := t.peers[addr]
	if p == nil {
		p = &peer{addr: addr}
		t.peers[addr] = p
	}
	return p
}

// forget removes p from the pool if it holds nothing.
func (t *Transport) forget(p *peer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.removed || p.conn != nil || p.dialing != nil || len(p.q) > 0 {
		return
	}
	p.removed = true
	if t.peers[p.addr] == p {
		delete(t.peers, p.addr)
	}
}

// dial connects to addr and runs the dialer's side of the handshake.
func (t *Transport) dial(ctx context.Context, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, t.cfg.DialTimeout)
	defer cancel()
	stop := context.AfterFunc(t.ctx, cancel)
	defer stop()

	var nd net.Dialer
	raw, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	// Interrupt the handshakes below when ctx ends.
	unblock := context.AfterFunc(ctx, func() { raw.SetDeadline(time.Unix(1, 0)) })
	defer unblock()
	c := raw
	if t.cfg.TLS != nil {
		cfg := t.cfg.TLS
		if cfg.ServerName == "" {
			cfg = cfg.Clone()
			if host, _, err := net.SplitHostPort(addr); err == nil {
				cfg.ServerName = host
			}
		}
		tc := tls.Client(c, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, fmt.Errorf("tls handshake: %w", err)
		}
		c = tc
	}
	hello := make([]byte, 0, 6+len(t.addr))
	hello = append(hello, magic[:]...)
	hello = append(hello, ProtocolVersion, byte(len(t.addr)))
	hello = append(hello, t.addr...)
	if _, err := c.Write(hello); err != nil {
		c.Close()
		return nil, fmt.Errorf("handshake: %w", err)
	}
	var reply [5]byte
	if _, err := io.ReadFull(c, reply[:]); err != nil {
		c.Close()
		return nil, fmt.Errorf("handshake: %w", err)
	}
	if [4]byte(reply[:4]) != magic {
		c.Close()
		return nil, fmt.Errorf("handshake: %s is not a plumtree stream endpoint", addr)
	}
	if reply[4] != ProtocolVersion {
		c.Close()
		return nil, fmt.Errorf("handshake: peer speaks protocol version %d, this node version %d", reply[4], ProtocolVersion)
	}
	if err := t.prove(c, addr); err != nil {
		c.Close()
		return nil, fmt.Errorf("handshake: %w", err)
	}
	if !unblock() {
		// ctx ended and the deadline may be set; report it.
		c.Close()
		return nil, ctx.Err()
	}
	return c, nil
}

// prove reads the listener's challenge flag and, if it asks, answers with
// the proof of the hello.
func (t *Transport) prove(c net.Conn, addr string) error {
	var flag [1]byte
	if _, err := io.ReadFull(c, flag[:]); err != nil {
		return err
	}
	switch flag[0] {
	case 0:
		return nil
	case 1:
	default:
		return fmt.Errorf("bad challenge flag %d", flag[0])
	}
	var challenge [challengeLen]byte
	if _, err := io.ReadFull(c, challenge[:]); err != nil {
		return err
	}
	a := t.auth.Load()
	if a == nil {
		return fmt.Errorf("%s asks for a proof of the cluster key, and this transport has none (wrap it with package seal, with the cluster's key)", addr)
	}
	proof := a.ProveHello([]byte{0}, challenge[:], t.addr, addr)
	if len(proof)-1 > maxProofLen {
		return fmt.Errorf("a proof of %d bytes exceeds %d", len(proof)-1, maxProofLen)
	}
	proof[0] = byte(len(proof) - 1)
	_, err := c.Write(proof)
	return err
}

// startConn installs c as p's connection and starts its reader; kick
// starts a writer when frames are queued. p.mu must be held and the
// transport open.
func (t *Transport) startConn(p *peer, c net.Conn) {
	oc := &outConn{c: c}
	p.conn = oc
	t.conns.Add(1)
	if t.cfg.IdleTimeout > 0 {
		oc.idle = time.AfterFunc(t.cfg.IdleTimeout, func() { t.idleOut(p, oc) })
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		// Nothing is expected from the listener; reading notices at once
		// when it goes away (and lets TLS process its post-handshake
		// messages).
		var buf [512]byte
		for {
			if _, err := c.Read(buf[:]); err != nil {
				break
			}
		}
		if !t.closed.Load() {
			t.fail(p, oc, errors.New("connection closed by peer"), 0)
		}
	}()
}

// kick starts oc's writer unless one is running. p.mu must be held, with
// oc p's connection: Close takes the connection away under p.mu before it
// waits for the goroutines, so none starts after.
//
// The writer exits once the queue is empty. A connection used now and then
// (a graft, an exchange: payloads mostly go by datagram) then costs one
// goroutine, its reader, instead of a writer waiting too.
func (t *Transport) kick(p *peer, oc *outConn) {
	if oc.writing || oc.done {
		return
	}
	oc.writing = true
	if oc.idle != nil {
		oc.idle.Stop()
	}
	t.wg.Add(1)
	t.writers.Add(1)
	go t.writeLoop(p, oc)
}

// idleOut retires oc after IdleTimeout without frames; a writer that goes
// idle arms the timer again.
func (t *Transport) idleOut(p *peer, oc *outConn) {
	p.mu.Lock()
	busy := oc.writing || oc.done || len(p.q) > 0
	p.mu.Unlock()
	if !busy {
		t.retire(p, oc)
	}
}

// writeLoop drains p's queue into oc until the queue is empty or the
// connection fails.
func (t *Transport) writeLoop(p *peer, oc *outConn) {
	defer t.wg.Done()
	defer func() {
		live := t.writers.Add(-1)
		if t.hookWriterExit != nil {
			t.hookWriterExit(live)
		}
	}()
	if _, ok := oc.c.(*tls.Conn); ok && oc.bw == nil {
		oc.bw = bufio.NewWriterSize(oc.c, 16<<10) // one TLS record
	}
	for {
		p.mu.Lock()
		batch := p.q
		p.q, p.qBytes = oc.spare, 0
		oc.spare = nil
		if p.space != nil {
			close(p.space)
			p.space = nil
		}
		if len(batch) == 0 {
			oc.spare = batch
			oc.writing = false
			if oc.idle != nil && !oc.done {
				oc.idle.Reset(t.cfg.IdleTimeout)
			}
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()

		if t.cfg.WriteTimeout > 0 {
			oc.c.SetWriteDeadline(time.Now().Add(t.cfg.WriteTimeout))
		}
		var n int64
		var err error
		if bw := oc.bw; bw != nil {
			// TLS has no vectored write: coalesce small frames into
			// full records, one write each.
			for _, f := range batch {
				if _, err = bw.Write(*f); err != nil {
					break
				}
			}
			if err == nil {
				err = bw.Flush()
			}
			if err == nil {
				n = math.MaxInt64 // all or (on error) nothing counts
			}
		} else {
			bufs := oc.bufs[:0]
			for _, f := range batch {
				bufs = append(bufs, *f)
			}
			n, err = bufs.WriteTo(oc.c)
			clear(bufs[:cap(bufs)])
			oc.bufs = bufs[:0]
		}
		// Count the frames written whole. Written or lost, none is needed
		// any more: the buffers go back to the pool.
		var whole int
		for i, f := range batch {
			if n >= int64(len(*f)) {
				n -= int64(len(*f))
				whole++
				t.framesSent.Add(1)
				_, prefix := binary.Uvarint(*f)
				t.bytesSent.Add(uint64(len(*f) - prefix))
			} else {
				n = -1 // a frame after a partial one is not whole either
			}
			bufpool.Put(f)
			batch[i] = nil
		}
		oc.spare = batch[:0]
		if err != nil {
			if t.closed.Load() {
				t.framesDropped.Add(uint64(len(batch) - whole))
				return
			}
			t.fail(p, oc, err, len(batch)-whole)
			return
		}
	}
}

// fail ends a failed connection: it drops what is queued so that the next
// SendFrame dials again.
func (t *Transport) fail(p *peer, oc *outConn, err error, lost int) {
	oc.c.Close()
	p.mu.Lock()
	if oc.done {
		// Its reader and its writer both noticed, or it was retired
		// or closed: the first to see it has done the rest.
		p.mu.Unlock()
		t.framesDropped.Add(uint64(lost))
		return
	}
	oc.done = true
	if oc.idle != nil {
		oc.idle.Stop()
	}
	lost += len(p.q)
	if p.conn == oc {
		p.conn = nil
		t.conns.Add(-1)
	}
	p.q, p.qBytes = nil, 0
	if p.space != nil {
		close(p.space)
		p.space = nil
	}
	p.mu.Unlock()
	t.framesDropped.Add(uint64(lost))
	if !t.closed.Load() {
		t.log.Warn("tcp: connection failed", "local", t.addr, "peer", p.addr, "err", err, "frames_dropped", lost)
	}
	t.forget(p)
}

// retire closes an idle connection; it reports false if frames arrived.
func (t *Transport) retire(p *peer, oc *outConn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.q) > 0 || oc.writing || oc.done {
		return false
	}
	oc.done = true
	if p.conn != oc {
		return true // Close took it
	}
	p.conn = nil
	p.removed = true
	if t.peers[p.addr] == p {
		delete(t.peers, p.addr)
	}
	oc.c.Close()
	t.conns.Add(-1)
	t.log.Debug("tcp: closed idle connection", "local", t.addr, "peer", p.addr)
	return true
}

// acceptLoop accepts connections until the listener closes.
func (t *Transport) acceptLoop() {
	defer t.wg.Done()
	var backoff time.Duration
	for {
		c, err := t.ln.Accept()
		if err != nil {
			if t.closed.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait a little.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			t.log.Warn("tcp: accept", "local", t.addr, "err", err)
			tm := time.NewTimer(backoff)
			select {
			case <-tm.C:
			case <-t.done:
				tm.Stop()
				return
			}
			continue
		}
		backoff = 0
		t.mu.Lock()
		if t.closed.Load() {
			t.mu.Unlock()
			c.Close()
			return
		}
		if len(t.inbd) >= t.cfg.MaxInboundConnections {
			t.mu.Unlock()
			c.Close()
			t.refused.Add(1)
			t.log.Debug("tcp: refused a connection: MaxInboundConnections reached", "local", t.addr, "remote", c.RemoteAddr().String(), "max", t.cfg.MaxInboundConnections)
			continue
		}
		t.inbd[c] = struct{}{}
		t.wg.Add(1)
		t.mu.Unlock()
		go t.serve(c)
	}
}

// replaceAfter is how long a new connection from a sender waits for the
// reader of its previous one to finish before that connection is closed.
const replaceAfter = 10 * time.Second

// readerSlot lets one connection per sender address be read at a time.
type readerSlot struct {
	sem  chan struct{} // holds a token while a connection is read
	conn net.Conn      // the connection being read; guarded by Transport.mu
	refs int           // serve calls holding or waiting for the slot; guarded by Transport.mu
}

// acquireReader waits until no other connection from the sender at from is
// being read. A sender opens a new connection when its last one failed,
// and the kernel still delivers what that one had in flight: reading both
// at once would let new frames overtake old ones, against the order
// SendFrame promises. If the old connection is not done within
// replaceAfter (a peer that vanished without a FIN, say), it is closed. ok
// is false when the transport closed while waiting.
func (t *Transport) acquireReader(slot, from string, raw net.Conn) (release func(), ok bool) {
	t.mu.Lock()
	s := t.readers[slot]
	if s == nil {
		s = &readerSlot{sem: make(chan struct{}, 1)}
		t.readers[slot] = s
		t.slotsFrom[from]++
	}
	s.refs++
	t.mu.Unlock()
	drop := func() {
		t.mu.Lock()
		if s.refs--; s.refs == 0 {
			delete(t.readers, slot)
			if t.slotsFrom[from]--; t.slotsFrom[from] == 0 {
				delete(t.slotsFrom, from)
				delete(t.idents, from)
			}
		}
		t.mu.Unlock()
	}
	select {
	case s.sem <- struct{}{}:
	default:
		timer := time.NewTimer(replaceAfter)
		defer timer.Stop()
	wait:
		for {
			select {
			case s.sem <- struct{}{}:
				break wait
			case <-timer.C:
				t.mu.Lock()
				if s.conn != nil {
					s.conn.Close()
				}
				t.mu.Unlock()
			case <-t.done:
				drop()
				return nil, false
			}
		}
	}
	t.mu.Lock()
	s.conn = raw
	t.mu.Unlock()
	return func() {
		t.mu.Lock()
		s.conn = nil
		t.mu.Unlock()
		<-s.sem
		drop()
	}, true
}

// serve runs the listener's side of one connection: handshake, then frames.
func (t *Transport) serve(raw net.Conn) {
	defer t.wg.Done()
	defer func() {
		raw.Close()
		t.mu.Lock()
		delete(t.inbd, raw)
		t.mu.Unlock()
	}()
	from, ident, r, err := t.accept(raw)
	if err != nil {
		if !t.closed.Load() {
			t.refused.Add(1)
			t.log.Warn("tcp: refused connection", "local", t.addr, "remote", raw.RemoteAddr().String(), "err", err)
		}
		return
	}
	t.conns.Add(1)
	defer t.conns.Add(-1)
	// The slot is the claimed address's; with TLS, the address as claimed
	// by this certificate's holder, so that a peer with a certificate of
	// its own that claims another's address takes nothing of the other's.
	slot := from
	if ident != "" {
		slot = ident + "\x00" + from
	}
	release, ok := t.acquireReader(slot, from, raw)
	if !ok {
		return
	}
	defer release()
	if ident != "" {
		t.mu.Lock()
		t.idents[from] = ident
		t.mu.Unlock()
	}
	for {
		data, err := t.readFrame(r)
		if err != nil {
			if !t.closed.Load() && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				t.log.Warn("tcp: read frame", "local", t.addr, "peer", from, "err", err)
			}
			return
		}
		t.framesRecv.Add(1)
		t.bytesRecv.Add(uint64(len(data)))
		select {
		case t.frames <- transport.Message{From: from, Data: data, Path: transport.PathStream, Identity: ident}:
		case <-t.done:
			return
		}
	}
}

// accept runs the handshake on an accepted connection: TLS if configured,
// then the hello. It returns the dialer's address, its certificate identity
// (if any) and a reader for the frames.
func (t *Transport) accept(raw net.Conn) (from, ident string, r *bufio.Reader, err error) {
	ctx, cancel := context.WithTimeout(t.ctx, t.cfg.DialTimeout)
	defer cancel()
	unblock := context.AfterFunc(ctx, func() { raw.SetDeadline(time.Unix(1, 0)) })
	defer unblock()
	c := raw
	var leaf *x509.Certificate
	if t.cfg.TLS != nil {
		tc := tls.Server(raw, t.cfg.TLS)
		if err := tc.HandshakeContext(ctx); err != nil {
			return "", "", nil, fmt.Errorf("tls handshake: %w", err)
		}
		if certs := tc.ConnectionState().PeerCertificates; len(certs) > 0 {
			leaf = certs[0]
			ident = t.cfg.PeerName(leaf)
		}
		c = tc
	}
	// A small buffer until the connection is served: an unproven
	// connection holds 512 bytes, not the 64 KiB of a served one.
	hr := bufio.NewReaderSize(c, 512)
	r = hr
	var head [5]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return "", "", nil, fmt.Errorf("handshake: %w", err)
	}
	if [4]byte(head[:4]) != magic {
		return "", "", nil, errors.New("handshake: not a plumtree stream connection (bad magic)")
	}
	if head[4] != ProtocolVersion {
		// Tell the dialer which version we speak, then hang up.
		c.Write(append(magic[:], ProtocolVersion))
		return "", "", nil, fmt.Errorf("handshake: unsupported protocol version %d (this node speaks %d)", head[4], ProtocolVersion)
	}
	n, err := r.ReadByte()
	if err != nil {
		return "", "", nil, fmt.Errorf("handshake: %w", err)
	}
	if n == 0 {
		return "", "", nil, errors.New("handshake: empty address")
	}
	addr := make([]byte, n)
	if _, err := io.ReadFull(r, addr); err != nil {
		return "", "", nil, fmt.Errorf("handshake: %w", err)
	}
	if leaf != nil && !certNamesHost(leaf, string(addr)) {
		return "", "", nil, fmt.Errorf("handshake: the hello claims %q, an IP address the certificate of %q does not name", addr, ident)
	}
	reply := append(magic[:], ProtocolVersion, 0)
	a := t.auth.Load()
	var challenge []byte
	if a != nil {
		// The dialer must prove it holds the key, over a fresh challenge
		// (a proof seen on another connection is worth nothing here) and
		// the address it claims, before this connection is served.
		reply[len(reply)-1] = 1
		challenge = make([]byte, challengeLen)
		cryptorand.Read(challenge)
		reply = append(reply, challenge...)
	}
	if _, err := c.Write(reply); err != nil {
		return "", "", nil, fmt.Errorf("handshake: %w", err)
	}
	if a != nil {
		n, err := r.ReadByte()
		if err != nil {
			return "", "", nil, fmt.Errorf("handshake: no proof of the hello: %w", err)
		}
		proof := make([]byte, n)
		if _, err := io.ReadFull(r, proof); err != nil {
			return "", "", nil, fmt.Errorf("handshake: no proof of the hello: %w", err)
		}
		if !a.VerifyHello(proof, challenge, string(addr), t.addr) {
			return "", "", nil, fmt.Errorf("handshake: the proof of the hello claiming %q does not verify", addr)
		}
	}
	if !unblock() {
		return "", "", nil, fmt.Errorf("handshake: %w", ctx.Err())
	}
	// Frames are read through a 64 KiB buffer over the small one, which
	// hands on what it holds and then passes large reads straight through.
	return string(addr), ident, bufio.NewReaderSize(hr, 64<<10), nil
}

// certNamesHost reports whether a hello claiming addr may come from the
// holder of cert: yes if cert names no IP address (nothing to check), or if
// addr's host is one of those it names. Ports are not in certificates.
func certNamesHost(cert *x509.Certificate, addr string) bool {
	if len(cert.IPAddresses) == 0 {
		return true
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && slices.ContainsFunc(cert.IPAddresses, ip.Equal)
}

// frameChunk is how much memory a frame may take before its bytes arrive.
const frameChunk = 64 << 10

// readFrame reads one length-prefixed frame, refusing lengths above
// MaxFrameSize. Memory grows with the bytes received, not the announced
// length.
func (t *Transport) readFrame(r *bufio.Reader) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("truncated frame length: %w", err)
		}
		return nil, err
	}
	if n > uint64(t.cfg.MaxFrameSize) {
		t.framesDropped.Add(1)
		return nil, fmt.Errorf("frame of %d bytes exceeds the limit of %d; closing the connection", n, t.cfg.MaxFrameSize)
	}
	size := int(n)
	buf := make([]byte, 0, min(size, frameChunk))
	for len(buf) < size {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(2*cap(buf), size))
			copy(grown, buf)
			buf = grown
		}
		k, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+k]
		if err != nil && len(buf) < size {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("truncated frame: %w", err)
		}
	}
	return buf, nil
}

// Close closes the listener and every connection, unblocks every SendFrame,
// waits for the transport's goroutines to stop and closes Frames. Frames
// still queued are dropped and counted. It is idempotent; it returns the
// error of closing the listener the first time, nil after.
func (t *Transport) Close() error {
	var err error
	t.once.Do(func() {
		t.mu.Lock()
		t.closed.Store(true)
		close(t.done)
		t.cancel()
		peers := make([]*peer, 0, len(t.peers))
		for _, p := range t.peers {
			peers = append(peers, p)
		}
		inbound := make([]net.Conn, 0, len(t.inbd))
		for c := range t.inbd {
			inbound = append(inbound, c)
		}
		t.mu.Unlock()

		err = t.ln.Close()
		for _, p := range peers {
			p.mu.Lock()
			if p.conn != nil {
				p.conn.done = true
				if p.conn.idle != nil {
					p.conn.idle.Stop()
				}
				p.conn.c.Close()
				p.conn = nil
				t.conns.Add(-1)
			}
			t.framesDropped.Add(uint64(len(p.q)))
			p.q, p.qBytes = nil, 0
			p.mu.Unlock()
		}
		for _, c := range inbound {
			c.Close()
		}
		t.wg.Wait()
		close(t.frames)
	})
	return err
}
