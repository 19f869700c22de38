package gossip

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	kzstd "github.com/klauspost/compress/zstd"

	"github.com/plumtree-go/plumtree/codec"
	"github.com/plumtree-go/plumtree/compressor"
	"github.com/plumtree-go/plumtree/compressor/builtin"
	"github.com/plumtree-go/plumtree/gossip/internal/wire"
	"github.com/plumtree-go/plumtree/internal/watchdog"
	"github.com/plumtree-go/plumtree/membership"
	"github.com/plumtree-go/plumtree/membership/static"
	"github.com/plumtree-go/plumtree/transport/mem"
)

// A peer that sends frames over MaxMessageSize, or payloads that decompress
// past it (decompression bombs), gets them refused and counted: nothing is
// delivered or forwarded, and the node goes on delivering good messages.
func TestAbuseOversizedAndBombsRefused(t *testing.T) {
	const limit = 64 << 10
	zeros := make([]byte, 16*limit) // 1 MiB: compresses to almost nothing
	zc, err := builtin.New("zstd", 3)
	if err != nil {
		t.Fatal(err)
	}
	lc, err := builtin.New("lz4", 0)
	if err != nil {
		t.Fatal(err)
	}
	zBomb, err := zc.Compress(nil, zeros)
	if err != nil {
		t.Fatal(err)
	}
	lBomb, err := lc.Compress(nil, zeros)
	if err != nil {
		t.Fatal(err)
	}
	// A zstd stream that does not declare its size, with a small window:
	// neither header gives it away, the decoder must stop at the limit.
	var zs bytes.Buffer
	w, err := kzstd.NewWriter(&zs, kzstd.WithWindowSize(kzstd.MinWindowSize))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(zeros)
	w.Close()
	type bad struct {
		name    string
		frame   wire.Frame
		tooBig  bool // the error must wrap a too-large error
		datagam bool
	}
	payload := func(c byte, b []byte) wire.Frame {
		return wire.Frame{Type: wire.TypeGossip, Origin: []byte("evil"), Round: 1, Compressor: c, Payload: b}
	}
	cases := []bad{
		{name: "payload over MaxMessageSize", frame: payload(0, make([]byte, limit+1)), tooBig: true},
		{name: "zstd bomb, size declared", frame: payload(zc.ID(), zBomb), tooBig: true},
		{name: "zstd bomb, size not declared", frame: payload(zc.ID(), zs.Bytes()), tooBig: true},
		{name: "lz4 bomb", frame: payload(lc.ID(), lBomb), tooBig: true},
		{name: "zstd garbage", frame: payload(zc.ID(), []byte("not zstd at all"))},
		{name: "unknown compressor", frame: payload(77, []byte("x"))},
		{name: "bomb by datagram", frame: payload(zc.ID(), zBomb), tooBig: true, datagam: true},
	}
	t.Logf("bombs: zstd %d bytes (undeclared %d), lz4 %d bytes, each expanding to %d", len(zBomb), zs.Len(), len(lBomb), len(zeros))

	watchdog.Test(t, func(t *testing.T) {
		net := mem.NewNetwork(mem.Config{Latency: time.Millisecond, MaxFrameSize: 4 << 20})
		members := []membership.Member[string]{{ID: "b", Addr: "b"}, {ID: "c", Addr: "c"}, {ID: "evil", Addr: "evil"}}
		cfg := DefaultConfig()
		cfg.MaxMessageSize = limit
		cfg.SendQueueBytes = 8 * limit
		var mu sync.Mutex
		delivered := map[string][][]byte{}
		var decodeErrs []error
		nodes := map[string]*Plumtree[string, []byte]{}
		for _, id := range []string{"b", "c"} {
			tr, err := net.Listen(id)
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			ms := static.New(members...)
			defer ms.Close()
			o := Options[string, []byte]{ID: id, Transport: tr, Membership: ms, Codec: codec.Bytes(), Seed: 1,
				OnDeliver: func(d Delivery[string, []byte]) {
					mu.Lock()
					delivered[id] = append(delivered[id], d.Value)
					mu.Unlock()
				}}
			if id == "b" {
				o.Observer = ObserverFunc(func(e Event) {
					if e.Kind == EventDecodeError {
						mu.Lock()
						decodeErrs = append(decodeErrs, e.Err)
						mu.Unlock()
					}
				})
			}
			n, err := New(cfg, withBuiltin(t, cfg, o)) // the bombs are zstd and lz4
			if err != nil {
				t.Fatal(err)
			}
			defer n.Close()
			nodes[id] = n
		}
		evil, err := net.Listen("evil")
		if err != nil {
			t.Fatal(err)
		}
		defer evil.Close()
		time.Sleep(time.Second)
		synctest.Wait()

		for i, c := range cases {
			c.frame.Sender = []byte("evil")
			c.frame.ID = MessageID{0xb0, byte(i)}
			b, err := wire.Append(nil, &c.frame)
			if err != nil {
				t.Fatal(err)
			}
			if c.datagam {
				// Over the datagram size the transport refuses it at once;
				// what fits is a small bomb.
				if err := evil.SendDatagram(context.Background(), "b", b); err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
			} else if err := evil.SendFrame(context.Background(), "b", b); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			time.Sleep(10 * time.Millisecond)
			synctest.Wait()
			mu.Lock()
			nErr, last := len(decodeErrs), error(nil)
			if nErr > 0 {
				last = decodeErrs[nErr-1]
			}
			nb, nc := len(delivered["b"]), len(delivered["c"])
			mu.Unlock()
			if nErr != i+1 {
				t.Fatalf("%s: %d decode errors after %d bad frames", c.name, nErr, i+1)
			}
			if c.tooBig && !errors.Is(last, compressor.ErrTooLarge) && !errors.Is(last, wire.ErrTooLarge) {
				t.Fatalf("%s: error %v, want a too-large error", c.name, last)
			}
			if nb+nc != 0 {
				t.Fatalf("%s: delivered (b %d, c %d)", c.name, nb, nc)
			}
			t.Logf("%s (%d bytes): refused: %v", c.name, len(b), last)
		}
		st, err := nodes["b"].Stats()
		if err != nil {
			t.Fatal(err)
		}
		if st.DecodeErrors != uint64(len(cases)) {
			t.Fatalf("Stats.DecodeErrors = %d, want %d", st.DecodeErrors, len(cases))
		}
		// The node still works: a good payload from the same peer, and a
		// broadcast of c's, both arrive, and b relays the first to c.
		good := wire.Frame{Type: wire.TypeGossip, Sender: []byte("evil"), ID: MessageID{0x90, 0xd}, Origin: []byte("evil"), Round: 1, Payload: []byte("fine")}
		b, _ := wire.Append(nil, &good)
		if err := evil.SendFrame(context.Background(), "b", b); err != nil {
			t.Fatal(err)
		}
		if _, err := nodes["c"].Broadcast(context.Background(), []byte("from c")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(graftHorizon(cfg))
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if len(delivered["b"]) != 2 || len(delivered["c"]) != 1 || string(delivered["c"][0]) != "fine" {
			t.Fatalf("after the bad frames: b delivered %q, c %q; want the good payload at both and c's broadcast at b", delivered["b"], delivered["c"])
		}
	})
}
