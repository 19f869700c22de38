package tcp_test

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/plumtree-go/plumtree/transport"
	"github.com/plumtree-go/plumtree/transport/tcp"
)

// TestOrderAcrossReconnect: a sender whose connection failed (here its
// write timed out against a receiver that stopped reading) dials a new one;
// what the kernel still holds of the old connection must not be overtaken
// by the new connection's frames. The receiver reads one connection per
// sender at a time.
func TestOrderAcrossReconnect(t *testing.T) {
	b, err := tcp.Listen("127.0.0.1:0", tcp.Config{ReceiveQueueSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	a, err := tcp.Listen("127.0.0.1:0", tcp.Config{WriteTimeout: 300 * time.Millisecond, SendQueueSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	frame := func(seq uint32) []byte {
		p := make([]byte, 32<<10)
		binary.BigEndian.PutUint32(p, seq)
		return p
	}
	// Fill until the writer's write times out and the connection fails
	// (the queued frames are dropped and counted).
	var seq uint32
	for attempts := 0; a.Stats().FramesDropped == 0; attempts++ {
		if attempts == 100000 {
			t.Fatal("the writer never timed out against a receiver that does not read")
		}
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		if a.SendFrame(ctx, b.LocalAddr(), frame(seq)) == nil {
			seq++
		}
		cancel()
	}
	late := seq
	for range 3 {
		if err := a.SendFrame(t.Context(), b.LocalAddr(), frame(seq)); err != nil {
			t.Fatal(err)
		}
		seq++
	}
	// Wait until every frame SendFrame took has been written or dropped,
	// so that the new connection's frames wait at the receiver beside what
	// the old connection still holds. Counting from FramesSent when the
	// drop was seen is not enough: the SendFrame that the failure woke may
	// already have dialed the new connection and queued its frame there,
	// to be counted after that.
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	hang := time.After(time.Minute)
	var st transport.Stats
	for st = a.Stats(); st.FramesSent+st.FramesDropped < uint64(seq); st = a.Stats() {
		select {
		case <-tick.C:
		case <-hang:
			t.Fatalf("of the %d frames queued, %d were written and %d dropped", seq, st.FramesSent, st.FramesDropped)
		}
	}
	// Every frame written arrives (what the old connection had written
	// was in the kernel when it closed), each after the one before it.
	want := int(st.FramesSent)
	last := int64(-1)
	timeout := time.After(time.Minute)
	for got := 0; got < want; got++ {
		select {
		case m := <-b.Frames():
			s := int64(binary.BigEndian.Uint32(m.Data))
			if s <= last {
				t.Fatalf("frame %d arrived after frame %d (frames from %d on went on the new connection)", s, last, late)
			}
			last = s
		case <-timeout:
			t.Fatalf("%d of the %d frames written arrived", got, want)
		}
	}
	if last != int64(seq-1) {
		t.Errorf("the last frame to arrive is %d, want %d", last, seq-1)
	}
}
