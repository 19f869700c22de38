package seal

import (
	"bytes"
	"testing"
	"time"

	"github.com/plumtree-go/plumtree/transport"
)

// fuzzKeyring holds the key the committed seeds (testdata/fuzz/FuzzOpen)
// were sealed with, and another.
func fuzzKeyring(tb testing.TB) *Keyring {
	kr, err := NewKeyring(bytes.Repeat([]byte{7}, 32), bytes.Repeat([]byte{8}, 16))
	if err != nil {
		tb.Fatal(err)
	}
	return kr
}

// FuzzOpen feeds the decoder of sealed frames arbitrary bytes as a frame
// from an arbitrary address to another on either path: it must never
// panic, and what it accepts must be a frame sealed with an installed key.
// Every input is also sealed as a payload and must open to itself, and
// only on its path, from its sender, at its destination.
func FuzzOpen(f *testing.F) {
	kr := fuzzKeyring(f)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, p := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte("gossip"), 40)} {
		for _, path := range []transport.Path{transport.PathDatagram, transport.PathStream} {
			frame, _ := kr.seal(nil, nil, p, path, "127.0.0.1:7946", "127.0.0.1:7947", true, now)
			f.Add(frame, "127.0.0.1:7946", "127.0.0.1:7947", byte(path))
		}
	}
	f.Add([]byte{}, "", "", byte(0))
	f.Add([]byte{Version, 0, 0, 0, 0}, "a", "b", byte(1))
	f.Fuzz(func(t *testing.T, frame []byte, from, to string, path byte) {
		p := transport.Path(path)
		in := bytes.Clone(frame)
		payload, sent, why, _ := kr.open(in, nil, p, from, to, true)
		if why == reasonNone {
			if len(frame) != len(payload)+Overhead || frame[0] != Version {
				t.Fatalf("opened a %d-byte frame to a %d-byte payload", len(frame), len(payload))
			}
			_ = sent
		} else if payload != nil {
			t.Fatalf("refused (%v) but returned a payload", why)
		}
		// Round trip, the input as the payload.
		sealed, _ := kr.seal(nil, nil, frame, p, from, to, true, now)
		got, at, why, _ := kr.open(sealed, nil, p, from, to, true)
		if why != reasonNone || !bytes.Equal(got, frame) || at != now.UnixNano() {
			t.Fatalf("round trip: %v, %d bytes back of %d, time %d", why, len(got), len(frame), at)
		}
		// Another sender, destination or path does not open it; nor does
		// moving a byte from one address to the other.
		sealed, _ = kr.seal(nil, nil, frame, p, from, to, true, now)
		if _, _, why, _ := kr.open(sealed, nil, p, from+"x", to, true); why != ReasonAuth {
			t.Fatalf("opened from another address: %v", why)
		}
		sealed, _ = kr.seal(nil, nil, frame, p, from, to, true, now)
		if _, _, why, _ := kr.open(sealed, nil, p, from, to+"x", true); why != ReasonAuth {
			t.Fatalf("opened at another destination: %v", why)
		}
		if to != "" {
			sealed, _ = kr.seal(nil, nil, frame, p, from, to, true, now)
			if _, _, why, _ := kr.open(sealed, nil, p, from+to[:1], to[1:], true); why != ReasonAuth {
				t.Fatalf("opened with a byte moved from the destination to the sender: %v", why)
			}
		}
		sealed, _ = kr.seal(nil, nil, frame, p, from, to, true, now)
		if _, _, why, _ := kr.open(sealed, nil, p+1, from, to, true); why != ReasonAuth {
			t.Fatalf("opened on another path: %v", why)
		}
	})
}

func TestInWindow(t *testing.T) {
	now := time.Unix(0, 1_000_000)
	for _, c := range []struct {
		sent   int64
		window time.Duration
		want   bool
	}{
		{1_000_000, time.Nanosecond, true},
		{999_999, time.Nanosecond, true},
		{999_998, time.Nanosecond, false},
		{1_000_002, time.Nanosecond, false},
		{-1 << 63, time.Hour, false},  // no overflow
		{1<<63 - 1, time.Hour, false}, // no overflow
		{-1 << 63, 0, true},
		{-1 << 62, 1<<63 - 1, true},
		{-1 << 63, 1<<63 - 1, false}, // 2⁶³+10⁶ ns apart
	} {
		if got := inWindow(c.sent, now, c.window); got != c.want {
			t.Errorf("inWindow(%d, %d, %v) = %v", c.sent, now.UnixNano(), c.window, got)
		}
	}
}
