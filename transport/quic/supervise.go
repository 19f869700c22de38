package quic

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"time"

	qgo "github.com/quic-go/quic-go"

	"github.com/plumtree-go/plumtree/transport"
)

// Supervision: accepting connections, attaching them to their peer, and
// watching each until it ends.

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
//
// While the handshake runs, it stands for a dial to the peer if this side
// has no connection with it and is not dialing it: what is sent to the peer
// meanwhile waits for this connection rather than dialing one of its own.
// Two nodes that pick each other at once (a cold start: each greets its
// picks) then pay for one handshake, not two, unless both dialed before
// either heard from the other; and the first payload waits for a
// handshake already under way. It stands in for at most incomingWait
// (a handshake from a spoofed address must not hold back a real dial for
// long); then, or if it fails, waiting frames dial as before.
func (t *Transport) serveIncoming(qc *qgo.Conn) {
	ua, ok := qc.RemoteAddr().(*net.UDPAddr)
	if !ok {
		qc.CloseWithError(codeClosing, "unexpected address")
		return
	}
	ap := ua.AddrPort()
	p := t.acquireKey(canonical(ap), net.UDPAddrFromAddrPort(netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())))
	defer t.release(p)
	var a *dialAttempt
	p.mu.Lock()
	if p.send == nil && p.dial == nil {
		a = &dialAttempt{done: make(chan struct{}), incoming: true}
		p.dial = a
	}
	p.mu.Unlock()
	if h := t.hookIncoming.Load(); h != nil {
		(*h)(p)
	}
	var expired <-chan time.Time
	if a != nil {
		timer := time.NewTimer(t.incomingWait())
		defer timer.Stop()
		expired = timer.C
	}
	for {
		select {
		case <-qc.HandshakeComplete():
		case <-expired:
			t.endIncoming(p, a, errIncomingSlow)
			expired = nil
			continue
		case <-qc.Context().Done():
			// The handshake failed: a client certificate that does not
			// verify, a timeout, a peer that gave up.
			if !t.isClosed.Load() {
				t.c.connectionsRefused.Add(1)
			}
			t.endIncoming(p, a, errIncomingFailed)
			return
		case <-t.done:
			qc.CloseWithError(codeClosing, "transport closed")
			t.endIncoming(p, a, transport.ErrClosed)
			return
		}
		break
	}
	if qc.Context().Err() != nil {
		t.endIncoming(p, a, errIncomingFailed)
		return // the handshake failed (the peer closed it at once after)
	}
	if !t.attach(p, qc, false) {
		t.endIncoming(p, a, transport.ErrClosed)
		return
	}
	t.endIncoming(p, a, nil)
}

var (
	errIncomingSlow   = errors.New("the peer's own connection is still in its handshake")
	errIncomingFailed = errors.New("the peer's own connection failed its handshake")
)

// incomingWait is the longest an incoming handshake stands for a dial (see
// serveIncoming).
func (t *Transport) incomingWait() time.Duration {
	return min(t.cfg.HandshakeTimeout, time.Second)
}

// endIncoming ends the dial that the incoming handshake a stood for, if it
// still stands for it (a may be nil). What waits for p is kicked whatever
// err (kickLocked: a no-op while p has a connection): queued datagrams
// have no sender waiting, and the connection the handshake attached may
// already be gone; with err set, senders that wait dial (connect).
func (t *Transport) endIncoming(p *peer, a *dialAttempt, err error) {
	if a == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dial != a {
		return
	}
	a.err = err
	p.dial = nil
	close(a.done)
	if !t.isClosed.Load() {
		t.kickLocked(p)
	}
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
