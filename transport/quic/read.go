package quic

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	qgo "github.com/quic-go/quic-go"

	"github.com/plumtree-go/plumtree/transport"
)

// The read loops: incoming streams and their frames, datagrams, and the
// peer's identity.

// readChunk is how much a stream reader allocates ahead of the bytes it has
// actually received.
const readChunk = 64 << 10

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
