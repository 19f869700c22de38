package quic

import (
	qgo "github.com/quic-go/quic-go"
)

// The write loops: frames on a stream, datagrams as RFC 9221 datagrams.

// batchBytes is how many bytes of queued frames the writer gathers into one
// stream write.
const batchBytes = 32 << 10

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
