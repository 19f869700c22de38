package gossip

import (
	"bytes"
	"context"
	"encoding/binary"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/plumtree-go/plumtree/codec"
	"github.com/plumtree-go/plumtree/compressor/builtin"
	"github.com/plumtree-go/plumtree/gossip/internal/wire"
	"github.com/plumtree-go/plumtree/membership"
	"github.com/plumtree-go/plumtree/membership/static"
	"github.com/plumtree-go/plumtree/transport/mem"
)

// fuzzMaxMessage is the node's MaxMessageSize in FuzzNodeReceive: small, so
// that bombs are cheap to find and to refuse.
const fuzzMaxMessage = 4096

// splitFuzzFrames cuts a fuzz input into frames: each is a byte choosing the
// path (even: stream, odd: datagram), a big-endian uint16 length, and that
// many bytes (fewer at the end of the input).
func splitFuzzFrames(in []byte) (frames [][]byte, datagram []bool) {
	for len(in) >= 3 {
		dg := in[0]&1 == 1
		n := int(binary.BigEndian.Uint16(in[1:3]))
		in = in[3:]
		n = min(n, len(in))
		frames = append(frames, in[:n])
		datagram = append(datagram, dg)
		in = in[n:]
	}
	return frames, datagram
}

// joinFuzzFrames is the inverse of splitFuzzFrames, for seeds.
func joinFuzzFrames(frames ...[]byte) []byte {
	var b []byte
	for i, f := range frames {
		b = append(b, byte(i%2))
		b = binary.BigEndian.AppendUint16(b, uint16(len(f)))
		b = append(b, f...)
	}
	return b
}

func fuzzSeedFrames(tb testing.TB) [][]byte {
	tb.Helper()
	enc := func(f wire.Frame) []byte {
		if f.Sender == nil {
			f.Sender = []byte("evil")
		}
		b, err := wire.Append(nil, &f)
		if err != nil {
			tb.Fatal(err)
		}
		return b
	}
	zc, _ := builtin.New("zstd", 3)
	lc, _ := builtin.New("lz4", 0)
	doc := bytes.Repeat([]byte("a compressible payload "), 20)
	zdoc, _ := zc.Compress(nil, doc)
	ldoc, _ := lc.Compress(nil, doc)
	zbomb, _ := zc.Compress(nil, make([]byte, 64*fuzzMaxMessage))
	id := MessageID{1, 2, 3}
	return [][]byte{
		enc(wire.Frame{Type: wire.TypeGossip, ID: id, Round: 1, Origin: []byte("evil"), Timestamp: 1, Payload: []byte("hello")}),
		enc(wire.Frame{Type: wire.TypeGossip, ID: MessageID{4}, Round: 3, Origin: []byte("someone"), Trace: bytes.Repeat([]byte{7}, 26), Recovered: true, Payload: []byte("traced")}),
		enc(wire.Frame{Type: wire.TypeGossip, ID: MessageID{5}, Round: 2, Origin: []byte("evil"), Compressor: zc.ID(), Payload: zdoc}),
		enc(wire.Frame{Type: wire.TypeGossip, ID: MessageID{6}, Round: 2, Origin: []byte("evil"), Compressor: lc.ID(), Payload: ldoc}),
		enc(wire.Frame{Type: wire.TypeGossip, ID: MessageID{7}, Round: 2, Origin: []byte("evil"), Compressor: zc.ID(), Payload: zbomb}),
		enc(wire.Frame{Type: wire.TypeIHave, Announcements: []Announcement{{ID: MessageID{8}, Round: 1}, {ID: id, Round: 2}}}),
		enc(wire.Frame{Type: wire.TypeIHave}),
		enc(wire.Frame{Type: wire.TypeExchange, Announcements: []Announcement{{ID: MessageID{9}, Round: 4}}}),
		enc(wire.Frame{Type: wire.TypeGraft, ID: id, Round: 1, WantPayload: true}),
		enc(wire.Frame{Type: wire.TypeGraft}),
		enc(wire.Frame{Type: wire.TypePrune}),
		enc(wire.Frame{Type: wire.TypePrune, Sender: []byte("v")}),
		enc(wire.Frame{Type: wire.TypeGossip, Sender: []byte("stranger"), ID: MessageID{10}, Origin: []byte("x"), Payload: []byte("from a stranger")}),
	}
}

// FuzzNodeReceive feeds arbitrary frames, by both paths, from a member to a
// running node. The node must not panic, must deliver only what a
// well-formed Gossip frame among them carried (its ID, origin, hop count and
// payload, decompressed within MaxMessageSize), each message at most once,
// and must count every frame it could not read. Half the inputs run with
// Config.Ordered.
func FuzzNodeReceive(f *testing.F) {
	seeds := fuzzSeedFrames(f)
	for _, s := range seeds {
		f.Add(joinFuzzFrames(s))
	}
	f.Add(joinFuzzFrames(seeds...))
	f.Add(joinFuzzFrames(seeds[0], seeds[0], seeds[8], []byte{1, 1, 0}, []byte{9}))
	reg, err := builtin.NewRegistry()
	if err != nil {
		f.Fatal(err)
	}
	limits := wire.DefaultLimits
	limits.MaxPayload = fuzzMaxMessage
	f.Fuzz(func(t *testing.T, in []byte) {
		frames, datagram := splitFuzzFrames(in)
		// What may be delivered: every well-formed Gossip frame from a
		// sender other than the node itself, by ID.
		type want struct {
			origin, value string
			hops          uint32
		}
		allowed := map[MessageID][]want{}
		var unreadable [2]int // by stream, by datagram
		for i, b := range frames {
			var fr wire.Frame
			if err := wire.Decode(b, &fr, limits); err != nil {
				if datagram[i] {
					unreadable[1]++
				} else {
					unreadable[0]++
				}
				continue
			}
			if fr.Type != wire.TypeGossip || string(fr.Sender) == "v" {
				continue
			}
			value := fr.Payload
			if fr.Compressor != 0 {
				c, ok := reg.ByID(fr.Compressor)
				if !ok {
					continue
				}
				if value, err = c.Decompress(nil, fr.Payload, fuzzMaxMessage); err != nil {
					continue
				}
			}
			allowed[fr.ID] = append(allowed[fr.ID], want{origin: string(fr.Origin), value: string(value), hops: fr.Round})
		}
		synctest.Test(t, func(t *testing.T) {
			net := mem.NewNetwork(mem.Config{Latency: time.Millisecond, MaxDatagramSize: 1 << 16})
			v, _ := net.Listen("v")
			evil, _ := net.Listen("evil")
			defer v.Close()
			defer evil.Close()
			ms := static.New(membership.Member[string]{ID: "v", Addr: "v"}, membership.Member[string]{ID: "evil", Addr: "evil"})
			defer ms.Close()
			cfg := DefaultConfig()
			cfg.MaxMessageSize = fuzzMaxMessage
			// Half the inputs with per-origin order: made-up sequence
			// numbers must neither stall nor panic the reorder buffer.
			cfg.Ordered = len(in)%2 == 1
			var mu sync.Mutex
			got := map[MessageID]int{}
			node, err := New(cfg, Options[string, []byte]{ID: "v", Transport: v, Membership: ms, Codec: codec.Bytes(), Seed: 1,
				Compressors: reg, // the seeds carry zstd and lz4
				OnDeliver: func(d Delivery[string, []byte]) {
					mu.Lock()
					defer mu.Unlock()
					got[d.ID]++
					if got[d.ID] > 1 {
						t.Errorf("message %s delivered twice", d.ID)
					}
					for _, w := range allowed[d.ID] {
						if w.origin == d.Origin && w.value == string(d.Value) && w.hops == d.Hops {
							return
						}
					}
					t.Errorf("delivered %s (origin %q, hops %d, %q), which no well-formed frame carried", d.ID, d.Origin, d.Hops, d.Value)
				}})
			if err != nil {
				t.Fatal(err)
			}
			defer node.Close()
			go func() {
				for range evil.Frames() {
				}
			}()
			go func() {
				for range evil.Datagrams() {
				}
			}()
			for i, b := range frames {
				if datagram[i] {
					if err := evil.SendDatagram(context.Background(), "v", b); err != nil {
						t.Fatal(err)
					}
				} else if err := evil.SendFrame(context.Background(), "v", b); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(graftHorizon(cfg))
			synctest.Wait()
			st, err := node.Stats()
			if err != nil {
				t.Fatal(err)
			}
			// Datagrams past the receive queue are dropped unread.
			want := unreadable[0]
			if v.Stats().DatagramsDropped == 0 {
				want += unreadable[1]
			}
			if st.DecodeErrors < uint64(want) {
				t.Errorf("%d frames the wire format refuses, %d decode errors counted", want, st.DecodeErrors)
			}
			if err := node.checkInvariants(); err != nil {
				t.Error(err)
			}
			if cfg.Ordered {
				// Long past OrderGapTimeout: nothing is still held.
				var kept int
				if err := node.query(func() { kept = len(node.held) }); err != nil {
					t.Fatal(err)
				}
				if kept != 0 || st.Order.Held != 0 {
					t.Errorf("with order, %v after the last frame: %d messages kept by the runner, %d held by the engine; want 0", graftHorizon(cfg), kept, st.Order.Held)
				}
			}
		})
	})
}
