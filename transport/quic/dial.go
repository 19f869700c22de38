package quic

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	qgo "github.com/quic-go/quic-go"

	"github.com/plumtree-go/plumtree/transport"
	resolveaddr "github.com/plumtree-go/plumtree/transport/internal/resolve"
)

// Dialling: one connection per peer, found or dialled on demand, with its
// reference count, and the probe that tells an unreachable port.

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
				if a.incoming && !t.isClosed.Load() {
					continue // the peer's connection failed or is slow: dial
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
	if h := t.hookDial.Load(); h != nil {
		(*h)(p)
	}
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
