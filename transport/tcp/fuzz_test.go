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

// fuzzAuth takes the proof "ok" and no other.
type fuzzAuth struct{}

func (fuzzAuth) ProveHello(dst, _ []byte, _, _ string) []byte  { return append(dst, "ok"...) }
func (fuzzAuth) VerifyHello(proof, _ []byte, _, _ string) bool { return string(proof) == "ok" }

// FuzzAcceptAndRead feeds arbitrary bytes to the listener's side of a
// connection: the handshake, then frames, with and without a proof of the
// hello required. It must never panic, never deliver a frame over the
// limit, never accept a hello without its proof where one is required, and
// never hold more memory than the bytes it was given justify.
func FuzzAcceptAndRead(f *testing.F) {
	hello := append([]byte("PLTS\x02\x0e127.0.0.1:7946"), 0)
	f.Add(hello)
	f.Add(append([]byte("PLTS\x02\x0e127.0.0.1:7946\x02ok"), 0))
	f.Add(append([]byte("PLTS\x02\x0e127.0.0.1:7946\x02no"), 0))
	f.Add(append(bytes.Clone(hello), binary.AppendUvarint([]byte("\x03abc"), 1<<40)...))
	f.Add(append(bytes.Clone(hello), 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01))
	f.Add([]byte("PLTS\x09\x00"))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		proven := &Transport{cfg: Config{MaxFrameSize: 1 << 20}}
		proven.AuthenticateHellos(fuzzAuth{})
		for _, tr := range []*Transport{{cfg: Config{MaxFrameSize: 1 << 20}}, proven} {
			fuzzAccept(t, tr, in)
		}
	})
}

func fuzzAccept(t *testing.T, tr *Transport, in []byte) {
	cfg, err := tr.cfg.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	tr.cfg = cfg
	tr.ctx, tr.cancel = t.Context(), func() {}
	from, _, r, err := tr.accept(fakeConn{bytes.NewReader(in)})
	if err != nil {
		return
	}
	if tr.auth.Load() != nil {
		// The proof follows the hello: "\x02ok".
		if i := 6 + len(from); len(in) < i+3 || string(in[i:i+3]) != "\x02ok" {
			t.Fatalf("accepted %q without its proof", in)
		}
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
}
