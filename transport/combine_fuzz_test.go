package transport_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/plumtree-go/plumtree/transport"
	"github.com/plumtree-go/plumtree/transport/mem"
)

// FuzzStreamDatagramsDemux: whatever frame a peer sends on the stream
// under a StreamDatagrams (it reads one tag byte, then hands the rest on),
// nothing panics, an untagged or unknown frame is dropped and counted, and a
// tagged one comes out on its path with exactly the bytes after the tag.
func FuzzStreamDatagramsDemux(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("D"))
	f.Add([]byte("Dhello"))
	f.Add([]byte("Fhello"))
	f.Add([]byte("Xhello"))
	f.Add([]byte{0, 1, 2})
	f.Fuzz(func(t *testing.T, frame []byte) {
		n := mem.NewNetwork(mem.Config{})
		raw, err := n.Listen("raw")
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		st, err := n.Listen("node")
		if err != nil {
			t.Fatal(err)
		}
		sd := transport.DatagramsOverStream(st, 0)
		defer sd.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// The frame under test, then a marker datagram: once the marker is
		// out, the frame has been handled.
		if err := raw.SendFrame(ctx, sd.LocalAddr(), frame); err != nil {
			t.Fatal(err)
		}
		if err := raw.SendFrame(ctx, sd.LocalAddr(), []byte("Dmarker")); err != nil {
			t.Fatal(err)
		}
		var got []transport.Message
		for {
			var m transport.Message
			select {
			case m = <-sd.Datagrams():
			case m = <-sd.Frames():
			case <-ctx.Done():
				t.Fatal("the marker never came out")
			}
			if m.Path == transport.PathDatagram && string(m.Data) == "marker" {
				// The demultiplexer reads the stream in order, so a frame
				// under test was queued before the marker; on the other
				// path's (buffered) channel it may still be waiting, since
				// select picks among ready channels at random.
				select {
				case m := <-sd.Frames():
					got = append(got, m)
				default:
				}
				break
			}
			got = append(got, m)
		}
		tagged := len(frame) > 0 && (frame[0] == 'D' || frame[0] == 'F')
		switch {
		case !tagged:
			if len(got) != 0 {
				t.Fatalf("an untagged frame %q came out: %+v", frame, got)
			}
			if st := sd.Stats(); st.FramesDropped == 0 {
				t.Fatalf("an untagged frame %q was not counted as dropped: %+v", frame, st)
			}
		case len(got) != 1:
			t.Fatalf("frame %q: %d messages came out, want 1", frame, len(got))
		default:
			want := transport.PathDatagram
			if frame[0] == 'F' {
				want = transport.PathStream
			}
			if got[0].Path != want || !bytes.Equal(got[0].Data, frame[1:]) || got[0].From != "raw" {
				t.Fatalf("frame %q came out as %+v", frame, got[0])
			}
		}
	})
}
