package tcp_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/plumtree-go/plumtree/transport/devcert"
	"github.com/plumtree-go/plumtree/transport/tcp"
)

// BenchmarkFrame streams frames of several sizes from one transport to
// another on loopback (plain TCP and TLS 1.3) and waits until the last one
// has been read. ns/op is per frame; MB/s counts payload bytes.
func BenchmarkFrame(b *testing.B) {
	ca, err := devcert.NewUnsafeCA()
	if err != nil {
		b.Fatal(err)
	}
	for _, secure := range []bool{false, true} {
		for _, size := range []int{64, 1024, 64 << 10} {
			name := fmt.Sprintf("tcp/%dB", size)
			var ac, bc tcp.Config
			if secure {
				name = fmt.Sprintf("tls/%dB", size)
				ac.TLS, _ = ca.UnsafeMutualTLS("a", "127.0.0.1")
				bc.TLS, _ = ca.UnsafeMutualTLS("b", "127.0.0.1")
			}
			b.Run(name, func(b *testing.B) { benchFrame(b, size, ac, bc) })
		}
	}
}

func benchFrame(b *testing.B, size int, ac, bc tcp.Config) {
	a := listen(b, ac)
	r := listen(b, bc)
	ctx := context.Background()
	payload := make([]byte, size)
	// Connect before timing.
	if err := a.SendFrame(ctx, r.LocalAddr(), payload); err != nil {
		b.Fatal(err)
	}
	<-r.Frames()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range b.N {
			if _, ok := <-r.Frames(); !ok {
				return
			}
		}
	}()
	b.SetBytes(int64(size))
	b.ResetTimer()
	for range b.N {
		if err := a.SendFrame(ctx, r.LocalAddr(), payload); err != nil {
			b.Fatal(err)
		}
	}
	<-done
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}
