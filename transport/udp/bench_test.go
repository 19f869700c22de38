package udp_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/plumtree-go/plumtree/transport/udp"
)

// BenchmarkDatagram sends datagrams of several sizes between two sockets on
// loopback, at most window of them unreceived at a time (so that the kernel
// does not drop them for lack of buffer; a datagram not seen within 50ms
// counts as lost and frees its place). It reports datagrams per second
// received and the share delivered.
func BenchmarkDatagram(b *testing.B) {
	for _, size := range []int{64, 1024, 1232, 64 << 10} {
		size = min(size, udp.MaxDatagramSizeLimit)
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			benchDatagram(b, size, udp.Config{MaxDatagramSize: max(size, udp.DefaultMaxDatagramSize)}, udp.Listen)
		})
	}
}

func benchDatagram(b *testing.B, size int, cfg udp.Config, listen func(string, udp.Config) (*udp.Transport, error)) {
	cfg.ReadBufferSize = 4 << 20
	cfg.WriteBufferSize = 4 << 20
	a, err := listen("127.0.0.1:0", cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	r, err := listen("127.0.0.1:0", cfg)
	if err != nil {
		b.Fatal(err)
	}
	const window = 64
	slots := make(chan struct{}, window)
	got := make(chan int)
	go func() {
		n := 0
		for range r.Datagrams() {
			n++
			select {
			case <-slots:
			default:
			}
		}
		got <- n
	}()
	ctx := context.Background()
	payload := make([]byte, size)
	lost := time.NewTimer(time.Hour)
	b.SetBytes(int64(size))
	b.ResetTimer()
	for range b.N {
		select {
		case slots <- struct{}{}:
		default:
			lost.Reset(50 * time.Millisecond)
			select {
			case slots <- struct{}{}:
			case <-lost.C:
				<-slots // presumed lost
				slots <- struct{}{}
			}
		}
		if err := a.SendDatagram(ctx, r.LocalAddr(), payload); err != nil {
			b.Fatal(err)
		}
	}
	// Wait for the window to drain (or be presumed lost).
	for range window {
		lost.Reset(50 * time.Millisecond)
		select {
		case slots <- struct{}{}:
		case <-lost.C:
		}
	}
	b.StopTimer()
	r.Close()
	n := <-got
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "recv/s")
	b.ReportMetric(100*float64(n)/float64(b.N), "delivered%")
}

// BenchmarkDatagramSingleRead is BenchmarkDatagram with the read loop of
// one datagram per system call that batched reads replaced, on the
// receiving side.
func BenchmarkDatagramSingleRead(b *testing.B) {
	for _, size := range []int{64, 1024, 1232} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			benchDatagram(b, size, udp.Config{MaxDatagramSize: max(size, udp.DefaultMaxDatagramSize)}, udp.ListenSingleRead)
		})
	}
}

// BenchmarkSendDatagram measures SendDatagram alone: no window, the
// receiver keeps what it can and the share delivered is reported.
func BenchmarkSendDatagram(b *testing.B) {
	for _, batch := range []bool{false, true} {
		listen, name := udp.ListenSingleRead, "read=single"
		if batch {
			listen, name = udp.Listen, "read=batch"
		}
		b.Run(name+"/64B", func(b *testing.B) {
			cfg := udp.Config{ReadBufferSize: 4 << 20, ReceiveQueueSize: 1 << 16}
			a, _ := udp.Listen("127.0.0.1:0", cfg)
			r, err := listen("127.0.0.1:0", cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer a.Close()
			got := make(chan int)
			go func() {
				n := 0
				for range r.Datagrams() {
					n++
				}
				got <- n
			}()
			payload := make([]byte, 64)
			ctx := context.Background()
			b.SetBytes(64)
			for range b.N {
				a.SendDatagram(ctx, r.LocalAddr(), payload)
			}
			b.StopTimer()
			// Let the read loop catch up with what the kernel holds.
			r.SendDatagram(ctx, r.LocalAddr(), nil)
			r.Close()
			b.ReportMetric(100*float64(<-got)/float64(b.N+1), "delivered%")
		})
	}
}

// BenchmarkSendDatagramBatch sends one datagram to each of 8 receivers, as
// a node sends its announcements to its lazy peers in one flush: one
// SendDatagram (sendto) each, or all 8 in one sendmmsg. ns/op is per
// datagram. Receivers drain what arrives; the share delivered is reported.
func BenchmarkSendDatagramBatch(b *testing.B) {
	const peers = 8
	for _, size := range []int{64, 1024} {
		for _, batch := range []bool{false, true} {
			name := fmt.Sprintf("%dB/sendto", size)
			if batch {
				name = fmt.Sprintf("%dB/sendmmsg", size)
			}
			b.Run(name, func(b *testing.B) {
				cfg := udp.Config{ReadBufferSize: 4 << 20, ReceiveQueueSize: 1 << 16}
				a, err := udp.Listen("127.0.0.1:0", cfg)
				if err != nil {
					b.Fatal(err)
				}
				defer a.Close()
				var addrs []string
				var uaddrs []*net.UDPAddr
				var wg sync.WaitGroup
				var got atomic.Int64
				for range peers {
					r, err := udp.Listen("127.0.0.1:0", cfg)
					if err != nil {
						b.Fatal(err)
					}
					defer r.Close()
					addrs = append(addrs, r.LocalAddr())
					uaddrs = append(uaddrs, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(r.LocalAddr())))
					wg.Go(func() {
						for range r.Datagrams() {
							got.Add(1)
						}
					})
				}
				payload := make([]byte, size)
				msgs := make([]ipv4.Message, peers)
				ctx := context.Background()
				b.SetBytes(int64(size))
				b.ResetTimer()
				for i := 0; i < b.N; i += peers {
					if batch {
						if err := a.SendBatchForBench(uaddrs, payload, msgs); err != nil {
							b.Fatal(err)
						}
						continue
					}
					for _, to := range addrs {
						if err := a.SendDatagram(ctx, to, payload); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.StopTimer()
				b.ReportMetric(float64(got.Load())/float64(a.Stats().DatagramsSent), "received/sent")
			})
		}
	}
}
