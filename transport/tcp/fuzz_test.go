package tcp

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"
)

// fakeConn reads from a byte slice and discards writes.
type fakeConn struct{ r io.Reader }

func (c fakeConn) Read(b []byte) (int, error)       { return c.r.Read(b) }
func (c fakeConn) Write(b []byte) (int, error)      { return len(b), nil }
func (c fakeConn) Close() error                     { return nil }
func (c fakeConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c fakeConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c fakeConn) SetDeadline(time.Time) error      { return nil }
func (c fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (c fakeConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzAcceptAndRead feeds arbitrary bytes to the listener's side of a
// connection: the handshake, then frames. It must never panic, never
// deliver a frame over the limit, and never hold more memory than the
// bytes it was given justify.
func FuzzAcceptAndRead(f *testing.F) {
	hello := append([]byte("PLTS\x01\x0e127.0.0.1:7946"), 0)
	f.Add(hello)
	f.Add(append(bytes.Clone(hello), binary.AppendUvarint([]byte("\x03abc"), 1<<40)...))
	f.Add(append(bytes.Clone(hello), 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01))
	f.Add([]byte("PLTS\x09\x00"))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		tr := &Transport{cfg: Config{MaxFrameSize: 1 << 20}}
		if err := tr.cfg.fill(); err != nil {
			t.Fatal(err)
		}
		tr.ctx, tr.cancel = t.Context(), func() {}
		from, _, r, err := tr.accept(fakeConn{bytes.NewReader(in)})
		if err != nil {
			return
		}
		if from == "" || len(from) > maxAddrLen {
			t.Fatalf("accepted address %q", from)
		}
		for {
			data, err := tr.readFrame(r)
			if err != nil {
				return
			}
			if len(data) > tr.cfg.MaxFrameSize || cap(data) > len(in) {
				t.Fatalf("frame of %d bytes (cap %d) from %d bytes of input", len(data), cap(data), len(in))
			}
		}
	})
}
