package tcp

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plumtree-go/plumtree/transport"
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
	cfg, err := cfg.withDefaults()
	if err != nil {
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
