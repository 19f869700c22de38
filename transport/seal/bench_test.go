package seal

import (
	"bytes"
	"fmt"
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
				buf, ad = kr.seal(buf[:0], ad, p, transport.PathDatagram, "127.0.0.1:7946", true, now)
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
			frame, _ := kr.seal(nil, nil, bytes.Repeat([]byte{'p'}, n), transport.PathDatagram, "127.0.0.1:7946", true, now)
			buf := make([]byte, len(frame))
			ad := make([]byte, 0, 64)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				copy(buf, frame)
				var why Reason
				if _, _, why, ad = kr.open(buf, ad, transport.PathDatagram, "127.0.0.1:7946", true); why != reasonNone {
					b.Fatal(why)
				}
			}
		})
	}
}
