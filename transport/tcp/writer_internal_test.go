package tcp

import (
	"context"
	"testing"
	"time"
)

// A connection's writer goroutine runs only while frames wait: once a
// burst is written, none waits on the empty queue. A node keeps a
// connection to each neighbour, and with payloads going by datagram most
// of them carry a graft or an exchange now and then (issue 18: the idle
// writers were a quarter of a node's goroutines). The next burst starts a
// writer again, on the same connection.
func TestWriterExitsWhenIdle(t *testing.T) {
	a, err := Listen("127.0.0.1:0", Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Listen("127.0.0.1:0", Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	exits := make(chan int64, 4096)
	a.hookWriterExit = func(live int64) { exits <- live } // before the first send
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for burst := range 3 {
		for i := range 50 {
			if err := a.SendFrame(ctx, b.LocalAddr(), []byte{byte(burst), byte(i)}); err != nil {
				t.Fatal(err)
			}
		}
		for i := range 50 {
			select {
			case m := <-b.Frames():
				if m.Data[0] != byte(burst) || m.Data[1] != byte(i) {
					t.Fatalf("burst %d: frame %d is %v", burst, i, m.Data)
				}
			case <-ctx.Done():
				t.Fatalf("burst %d: frame %d never arrived", burst, i)
			}
		}
		// Every frame arrived; each writer that still runs exits soon
		// (an exit of an earlier drain in this burst proves nothing, so
		// the count itself is watched).
		for a.writers.Load() != 0 {
			select {
			case <-exits:
			case <-ctx.Done():
				t.Fatalf("burst %d: %d writer goroutines still run after every frame was written; want 0 (a writer exits when its queue is empty)", burst, a.writers.Load())
			}
		}
	}
	if n := a.Stats().Connections; n != 1 {
		t.Fatalf("%d connections after three bursts, want the one, kept while idle", n)
	}
}
