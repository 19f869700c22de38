package seal

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"github.com/plumtree-go/plumtree/clock"
	"testing"
	"time"

	"github.com/plumtree-go/plumtree/transport"
)

var benchSizes = []int{64, 1024}

// BenchmarkSeal seals one payload into a reused buffer, as a send does with
// its pooled buffer.
func BenchmarkSeal(b *testing.B) {
	kr := fuzzKeyring(b)
	now := time.Now()
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("%dB", n), func(b *testing.B) {
			p := bytes.Repeat([]byte{'p'}, n)
			var buf, ad []byte
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				buf, ad = kr.seal(buf[:0], ad, p, transport.PathDatagram, "127.0.0.1:7946", "127.0.0.1:7947", true, now)
			}
		})
	}
}

// BenchmarkOpen opens one sealed frame in place, as the receive loop does
// (the copy restores the frame each time).
func BenchmarkOpen(b *testing.B) {
	kr := fuzzKeyring(b)
	now := time.Now()
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("%dB", n), func(b *testing.B) {
			frame, _ := kr.seal(nil, nil, bytes.Repeat([]byte{'p'}, n), transport.PathDatagram, "127.0.0.1:7946", "127.0.0.1:7947", true, now)
			buf := make([]byte, len(frame))
			ad := make([]byte, 0, 64)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				copy(buf, frame)
				var why Reason
				if _, _, why, ad = kr.open(buf, ad, transport.PathDatagram, "127.0.0.1:7946", "127.0.0.1:7947", true); why != reasonNone {
					b.Fatal(why)
				}
			}
		})
	}
}

// BenchmarkOpenAdmit is BenchmarkOpen followed by what the receive loop
// does next: the window check and the replay cache (default size). Each
// iteration stands for a distinct frame: after the open, the benchmark
// writes a fresh nonce into the header and a later send time (1 µs apart,
// a clock that follows) before admitting it, with a window of 10 ms so that
// the cache is in its steady state of about 10,000 frames, forgetting as
// many as it learns.
func BenchmarkOpenAdmit(b *testing.B) {
	kr := fuzzKeyring(b)
	start := time.Now()
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("%dB", n), func(b *testing.B) {
			now := start
			const window = 10 * time.Millisecond
			c := &core{
				o:      options{window: window, clock: funcClock{now: func() time.Time { return now }}},
				replay: newReplayFilter(int64(window), DefaultReplayCache),
			}
			frame, _ := kr.seal(nil, nil, bytes.Repeat([]byte{'p'}, n), transport.PathDatagram, "127.0.0.1:7946", "127.0.0.1:7947", true, now)
			buf := make([]byte, len(frame))
			ad := make([]byte, 0, 64)
			var i uint64
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				copy(buf, frame)
				var why Reason
				if _, _, why, ad = kr.open(buf, ad, transport.PathDatagram, "127.0.0.1:7946", "127.0.0.1:7947", true); why != reasonNone {
					b.Fatal(why)
				}
				i++
				binary.BigEndian.PutUint64(buf[1+idLen:], i)
				now = now.Add(time.Microsecond)
				if why = c.admit(buf, now.UnixNano()); why != reasonNone {
					b.Fatal(why)
				}
			}
		})
	}
}

// funcClock is a Clock whose Now is a function (seal reads only Now).
type funcClock struct {
	clock.System
	now func() time.Time
}

func (c funcClock) Now() time.Time { return c.now() }
