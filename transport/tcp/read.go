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
	"net"
	"slices"
	"time"

	"github.com/plumtree-go/plumtree/transport"
)

// The inbound side: accepting connections, the reader slots that bound
// them, the hello, and the read loop.

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
