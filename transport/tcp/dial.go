package tcp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// Dialling: a connection per peer, found or dialled on demand, the hello
// that opens it and its proof.

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
