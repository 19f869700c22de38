package quic

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkStream measures frames per second and MB/s between two endpoints
// on loopback: go test -run '^$' -bench . ./transport/quic
func BenchmarkStream(b *testing.B) {
	for _, size := range []int{64, 1 << 10, 64 << 10} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			ca := newCA(b)
			tx, rx := listen(b, ca, "tx", nil), listen(b, ca, "rx", nil)
			ctx := context.Background()
			frame := make([]byte, size)
			done := make(chan struct{})
			go func() {
				defer close(done)
				for range b.N {
					<-rx.Frames()
				}
			}()
			b.SetBytes(int64(size))
			b.ResetTimer()
			for range b.N {
				if err := tx.SendFrame(ctx, rx.LocalAddr(), frame); err != nil {
					b.Fatal(err)
				}
			}
			<-done
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
		})
	}
}

// BenchmarkDatagram measures datagrams offered per second, how many of them
// went out (handed to quic-go) and the share dropped because the send queue
// was full: SendDatagram never waits, so a sender faster than QUIC's
// congestion control sees drops, as it would on the wire.
func BenchmarkDatagram(b *testing.B) {
	for _, size := range []int{64, 1 << 10} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			ca := newCA(b)
			tx, rx := listen(b, ca, "tx", nil), listen(b, ca, "rx", nil)
			ctx := context.Background()
			d := make([]byte, size)
			b.SetBytes(int64(size))
			b.ResetTimer()
			for range b.N {
				if err := tx.SendDatagram(ctx, rx.LocalAddr(), d); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			s := tx.Stats()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "offered/s")
			b.ReportMetric(float64(s.DatagramsSent)/b.Elapsed().Seconds(), "sent/s")
			b.ReportMetric(float64(s.DatagramsDropped)/float64(b.N), "dropped/op")
		})
	}
}
