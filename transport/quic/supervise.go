package quic

import (
	"context"
	"net"
	"net/netip"
	"slices"

	qgo "github.com/quic-go/quic-go"
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
