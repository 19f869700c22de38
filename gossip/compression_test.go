package gossip

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/plumtree-go/plumtree/codec"
	"github.com/plumtree-go/plumtree/compressor"
	"github.com/plumtree-go/plumtree/compressor/builtin"
	"github.com/plumtree-go/plumtree/internal/watchdog"
	"github.com/plumtree-go/plumtree/membership"
	"github.com/plumtree-go/plumtree/membership/static"
	"github.com/plumtree-go/plumtree/transport/mem"
)

// jsonDoc is a realistic, compressible message: a JSON document of about
// size bytes, the same for the same seed.
func jsonDoc(seed uint64, size int) []byte {
	rng := rand.New(rand.NewPCG(seed, 7))
	type event struct {
		ID      int               `json:"id"`
		Service string            `json:"service"`
		Level   string            `json:"level"`
		Message string            `json:"message"`
		Labels  map[string]string `json:"labels"`
	}
	services := []string{"billing", "search", "gateway", "auth", "inventory"}
	levels := []string{"info", "warn", "error", "debug"}
	var evs []event
	for n := 0; n < size; n += 150 {
		evs = append(evs, event{
			ID: rng.IntN(1_000_000), Service: services[rng.IntN(len(services))], Level: levels[rng.IntN(len(levels))],
			Message: fmt.Sprintf("request %d handled in %dms", rng.IntN(100_000), rng.IntN(500)),
			Labels:  map[string]string{"region": fmt.Sprintf("eu-west-%d", rng.IntN(3)), "pod": fmt.Sprintf("pod-%04x", rng.IntN(1<<16))},
		})
	}
	b, _ := json.Marshal(evs)
	return b
}

// broadcastDoc sends payload from the i-th node and records it as c.broadcast does.
func (c *cluster) broadcastPayload(i int, payload []byte) MessageID {
	c.t.Helper()
	id, err := c.nodes[i].pt.Broadcast(context.Background(), payload)
	if err != nil {
		c.t.Fatalf("broadcast from %s: %v", c.nodes[i].id, err)
	}
	c.sent = append(c.sent, id)
	c.origin[id] = i
	return id
}

// clusterBytes runs n nodes with cfg, broadcasts docs JSON documents of 4 KiB,
// checks that every node delivered every one, and returns the bytes the
// network carried.
func clusterBytes(t *testing.T, cfg Config, n, docs int) uint64 {
	var sent uint64
	watchdog.Test(t, func(t *testing.T) {
		c := newCluster(t, n, cfg, mem.Config{Latency: time.Millisecond}, 5150)
		for i := range docs {
			c.broadcastPayload(i%n, jsonDoc(uint64(i), 4<<10))
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(graftHorizon(cfg))
		synctest.Wait()
		c.requireAllDelivered(c.sent, c.nodes)
		if st, _ := c.nodes[0].pt.Stats(); st.DecodeErrors != 0 {
			t.Fatalf("%d decode errors", st.DecodeErrors)
		}
		sent = c.net.Stats().BytesSent
	})
	return sent
}

// The WAN preset compresses with zstd: the same broadcasts of JSON documents
// reach every node over fewer bytes than without compression.
func TestClusterWANCompresses(t *testing.T) {
	const n, docs = 10, 30
	wan := WANConfig()
	if wan.Compression != (Compression{Algorithm: "zstd", Level: 3, MinSize: 256}) {
		t.Fatalf("WANConfig().Compression = %+v", wan.Compression)
	}
	plain := wan
	plain.Compression = Compression{}
	lan := LANConfig()
	if lan.Compression.enabled() || DefaultConfig().Compression.enabled() {
		t.Fatal("LAN and Default presets compress")
	}
	zb := clusterBytes(t, wan, n, docs)
	pb := clusterBytes(t, plain, n, docs)
	lb := clusterBytes(t, lan, n, docs)
	t.Logf("wire bytes for %d JSON documents of 4 KiB to %d nodes: WAN %d, WAN uncompressed %d (%.2fx), LAN %d (%.2fx)",
		docs, n, zb, pb, float64(pb)/float64(zb), lb, float64(lb)/float64(zb))
	if float64(zb) > 0.6*float64(pb) || float64(zb) > 0.6*float64(lb) {
		t.Fatalf("WAN with zstd sent %d bytes, uncompressed %d, LAN %d: compression saved too little", zb, pb, lb)
	}
}

// withBuiltin gives o what package stack gives a node (builtin.Resolve):
// the compressor cfg names, unless o has one, and a registry of every
// built-in compressor, unless o has one.
func withBuiltin[ID comparable, M any](t testing.TB, cfg Config, o Options[ID, M]) Options[ID, M] {
	t.Helper()
	w, reg, err := builtin.Resolve(cfg.Compression.Algorithm, cfg.Compression.Level)
	if err != nil {
		t.Fatal(err)
	}
	if o.Compressor == nil {
		o.Compressor = w
	}
	if o.Compressors == nil {
		if o.Compressor != w {
			if reg, err = builtin.NewRegistry(o.Compressor); err != nil {
				t.Fatal(err)
			}
		}
		o.Compressors = reg
	}
	return o
}

// pair is two nodes, a and b, on one in-memory network.
type pair struct {
	a, b           *Plumtree[string, []byte]
	got            chan []byte
	events         chan Event
	logs           *syncBuffer
	closeNet, done func()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newPair starts node a (options oa) and node b (options ob, with its
// deliveries in got and its events in events).
func newPair(t *testing.T, cfgA, cfgB Config, oa, ob Options[string, []byte]) *pair {
	t.Helper()
	net := mem.NewNetwork(mem.Config{Latency: time.Millisecond})
	ta, _ := net.Listen("a")
	tb, _ := net.Listen("b")
	members := []membership.Member[string]{{ID: "a", Addr: "a"}, {ID: "b", Addr: "b"}}
	ma, mb := static.New(members...), static.New(members...)
	p := &pair{got: make(chan []byte, 16), events: make(chan Event, 1024), logs: &syncBuffer{}}
	oa.ID, oa.Transport, oa.Membership, oa.Codec = "a", ta, ma, codec.Bytes()
	ob.ID, ob.Transport, ob.Membership, ob.Codec = "b", tb, mb, codec.Bytes()
	ob.OnDeliver = func(d Delivery[string, []byte]) { p.got <- d.Value }
	ob.Observer = ObserverFunc(func(e Event) {
		if e.Kind == EventDecodeError {
			p.events <- e
		}
	})
	ob.Logger = slog.New(slog.NewTextHandler(p.logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var err error
	if p.a, err = New(cfgA, oa); err != nil {
		t.Fatal(err)
	}
	if p.b, err = New(cfgB, ob); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.a.Close()
		p.b.Close()
		ta.Close()
		tb.Close()
		ma.Close()
		mb.Close()
	})
	return p
}

// send broadcasts m from a and reports what b delivered, if anything.
func (p *pair) send(t *testing.T, m []byte) ([]byte, bool) {
	t.Helper()
	if _, err := p.a.Broadcast(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	synctest.Wait()
	select {
	case v := <-p.got:
		return v, true
	default:
		return nil, false
	}
}

// xor is a compressor of the application's own, ID 99, that b does not
// know. It "compresses" by dropping every other byte of a run of zeros, so
// payloads of zeros shrink and others grow by one byte.
type xor struct{}

func (xor) ID() byte     { return 99 }
func (xor) Name() string { return "xor" }
func (xor) Compress(dst, src []byte) ([]byte, error) {
	if len(src) > 0 && bytes.Count(src, []byte{0}) == len(src) {
		return append(dst, 0, byte(len(src)>>8), byte(len(src))), nil
	}
	return append(append(dst, 1), src...), nil
}
func (xor) Decompress(dst, src []byte, maxSize int) ([]byte, error) {
	if len(src) == 3 && src[0] == 0 {
		n := int(src[1])<<8 | int(src[2])
		if n > maxSize {
			return dst, compressor.ErrTooLarge
		}
		return append(dst, make([]byte, n)...), nil
	}
	if len(src) == 0 || src[0] != 1 || len(src)-1 > maxSize {
		return dst, compressor.ErrCorrupt
	}
	return append(dst, src[1:]...), nil
}

// A frame naming a compressor the receiver lacks is refused, counted and
// logged, and not delivered; payloads below MinSize, and payloads that do
// not shrink, go uncompressed and arrive.
func TestUnknownCompressorRefused(t *testing.T) {
	watchdog.Test(t, func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.Compression.MinSize = 100
		regA, err := builtin.NewRegistry(xor{})
		if err != nil {
			t.Fatal(err)
		}
		p := newPair(t, cfg, DefaultConfig(), Options[string, []byte]{Compressor: xor{}, Compressors: regA},
			withBuiltin(t, DefaultConfig(), Options[string, []byte]{}))

		if v, ok := p.send(t, make([]byte, 99)); !ok || len(v) != 99 {
			t.Fatalf("a payload under MinSize was not delivered uncompressed: %v", ok)
		}
		if v, ok := p.send(t, bytes.Repeat([]byte("x"), 500)); !ok || len(v) != 500 {
			t.Fatalf("a payload the compressor does not shrink was not delivered uncompressed: %v", ok)
		}
		if st, _ := p.b.Stats(); st.DecodeErrors != 0 {
			t.Fatalf("%d decode errors before the unknown compressor", st.DecodeErrors)
		}

		if v, ok := p.send(t, make([]byte, 500)); ok {
			t.Fatalf("b delivered %d bytes compressed with a compressor it does not have", len(v))
		}
		st, err := p.b.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if st.DecodeErrors != 1 {
			t.Fatalf("b counted %d decode errors, want 1", st.DecodeErrors)
		}
		select {
		case e := <-p.events:
			var uc *UnknownCompressorError
			if !errors.As(e.Err, &uc) || uc.ID != 99 || !strings.Contains(e.Err.Error(), `["identity" "lz4" "zstd"]`) {
				t.Fatalf("decode error event %v, want an UnknownCompressorError for ID 99 naming what b reads", e.Err)
			}
		default:
			t.Fatal("no decode error event")
		}
		if logs := p.logs.String(); !strings.Contains(logs, "unknown compressor ID 99") {
			t.Fatalf("b logged %q, want a warning naming compressor 99", logs)
		}
	})
}

// Nodes with different policies read each other: any built-in compressor
// is readable with the built-in registry (what package stack gives).
func TestMixedCompressors(t *testing.T) {
	for _, tt := range []struct{ a, b Compression }{
		{Compression{Algorithm: "lz4"}, Compression{Algorithm: "zstd", Level: 11}},
		{Compression{Algorithm: "zstd", Level: 1}, Compression{}},
		{Compression{Algorithm: "lz4", Level: 9}, Compression{Algorithm: "identity"}},
	} {
		t.Run(tt.a.Algorithm+"-"+tt.b.Algorithm, func(t *testing.T) {
			watchdog.Test(t, func(t *testing.T) {
				ca, cb := DefaultConfig(), DefaultConfig()
				ca.Compression, cb.Compression = tt.a, tt.b
				p := newPair(t, ca, cb, withBuiltin(t, ca, Options[string, []byte]{}), withBuiltin(t, cb, Options[string, []byte]{}))
				doc := jsonDoc(1, 2000)
				if v, ok := p.send(t, doc); !ok || !bytes.Equal(v, doc) {
					t.Fatalf("b did not deliver a's document (%v)", ok)
				}
				if st, _ := p.b.Stats(); st.DecodeErrors != 0 {
					t.Fatalf("%d decode errors", st.DecodeErrors)
				}
			})
		})
	}
}

func TestCompressionConfig(t *testing.T) {
	tests := []struct {
		c     Compression
		field string // "" for valid
	}{
		{Compression{}, ""},
		{Compression{Algorithm: "identity"}, ""},
		{Compression{Algorithm: "zstd", Level: 22, MinSize: 0}, ""},
		{Compression{Algorithm: "lz4", Level: 9, MinSize: 1 << 20}, ""},
		// Names and levels are checked where names are resolved
		// (stack.Compressors, tested there), not by the core.
		{Compression{Algorithm: "gzip"}, ""},
		{Compression{Algorithm: "zstd", Level: 23}, ""},
		{Compression{Algorithm: "zstd", MinSize: -1}, "Compression.MinSize"},
	}
	for _, tt := range tests {
		cfg := DefaultConfig()
		cfg.Compression = tt.c
		err := cfg.Validate()
		if tt.field == "" {
			if err != nil {
				t.Errorf("%+v: %v", tt.c, err)
			}
			continue
		}
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != tt.field {
			t.Errorf("%+v: error %v, want a *ConfigError for %s", tt.c, err, tt.field)
		}
	}
	for name, cfg := range map[string]Config{"WAN": WANConfig(), "LargeCluster": LargeClusterConfig()} {
		if cfg.Compression != (Compression{Algorithm: "zstd", Level: 3, MinSize: 256}) {
			t.Errorf("%sConfig().Compression = %+v, want zstd level 3 from 256 bytes", name, cfg.Compression)
		}
		if err := cfg.Validate(); err != nil {
			t.Errorf("%sConfig: %v", name, err)
		}
	}
}

// A node must be able to read what it writes.
func TestCompressorNotInRegistry(t *testing.T) {
	net := mem.NewNetwork(mem.Config{})
	tr, _ := net.Listen("a")
	defer tr.Close()
	members := static.New(membership.Member[string]{ID: "a", Addr: "a"})
	defer members.Close()
	onlyIdentity, _ := compressor.NewRegistry()
	for name, tt := range map[string]struct {
		cfg Config
		o   Options[string, []byte]
	}{
		"Config.Compression": {WANConfig(), withBuiltin(t, WANConfig(), Options[string, []byte]{Compressors: onlyIdentity})},
		"Options.Compressor": {DefaultConfig(), Options[string, []byte]{Compressor: xor{}, Compressors: onlyIdentity}},
	} {
		tt.o.ID, tt.o.Transport, tt.o.Membership, tt.o.Codec = "a", tr, members, codec.Bytes()
		node, err := New(tt.cfg, tt.o)
		if err == nil {
			node.Close()
			t.Errorf("%s: New accepted a compressor the node cannot read", name)
			continue
		}
		t.Logf("%s: %v", name, err)
	}
}

// A compressor that claims a built-in one's wire ID under another name is
// refused where the built-in ones are added.
func TestCompressorClashesWithBuiltin(t *testing.T) {
	if _, err := builtin.NewRegistry(clash{}); err == nil {
		t.Fatal("builtin.NewRegistry accepted a compressor with lz4's ID and another name")
	}
}

// clash claims lz4's wire ID under another name.
type clash struct{ xor }

func (clash) ID() byte { return 2 }

// The core builds no compressor by name: a policy naming an algorithm with
// no Options.Compressor is refused by New with a ConfigError that says what
// to pass, instead of a node that silently sends uncompressed.
func TestCompressionNeedsCompressor(t *testing.T) {
	net := mem.NewNetwork(mem.Config{})
	tr, _ := net.Listen("a")
	defer tr.Close()
	members := static.New(membership.Member[string]{ID: "a", Addr: "a"})
	defer members.Close()
	for _, c := range []Compression{{Algorithm: "zstd", Level: 3, MinSize: 256}, {Algorithm: "lz4"}, {Algorithm: "mine"}} {
		cfg := DefaultConfig()
		cfg.Compression = c
		node, err := New(cfg, Options[string, []byte]{ID: "a", Transport: tr, Membership: members, Codec: codec.Bytes()})
		if err == nil {
			node.Close()
			t.Errorf("%+v: New accepted a compressor name with no Options.Compressor", c)
			continue
		}
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != "Compression.Algorithm" || !strings.Contains(err.Error(), "Options.Compressor") {
			t.Errorf("%+v: error %v, want a *ConfigError for Compression.Algorithm naming Options.Compressor", c, err)
		}
	}
	for _, c := range []Compression{{}, {Algorithm: "identity", MinSize: 10}} {
		cfg := DefaultConfig()
		cfg.Compression = c
		node, err := New(cfg, Options[string, []byte]{ID: "a", Transport: tr, Membership: members, Codec: codec.Bytes()})
		if err != nil {
			t.Errorf("%+v: %v", c, err)
			continue
		}
		node.Close()
	}
}

// With no Options.Compressors a node reads identity and its own
// Compressor, nothing else: a payload compressed with zstd is refused with
// an UnknownCompressorError naming what the node reads, while one of its
// own compressor's arrives.
func TestDefaultRegistryIsIdentityAndOwn(t *testing.T) {
	watchdog.Test(t, func(t *testing.T) {
		p := newPair(t, WANConfig(), DefaultConfig(), withBuiltin(t, WANConfig(), Options[string, []byte]{}),
			Options[string, []byte]{Compressor: xor{}})
		if v, ok := p.send(t, make([]byte, 100)); !ok || len(v) != 100 {
			t.Fatalf("a payload under MinSize was not delivered: %v", ok)
		}
		if v, ok := p.send(t, jsonDoc(1, 2000)); ok {
			t.Fatalf("b delivered %d bytes compressed with zstd, which it was not given", len(v))
		}
		select {
		case e := <-p.events:
			var uc *UnknownCompressorError
			if !errors.As(e.Err, &uc) || uc.ID != 1 || !strings.Contains(e.Err.Error(), `["identity" "xor"]`) {
				t.Fatalf("decode error event %v, want an UnknownCompressorError for zstd (ID 1) naming identity and xor", e.Err)
			}
		default:
			t.Fatal("no decode error event")
		}
	})
	watchdog.Test(t, func(t *testing.T) {
		p := newPair(t, DefaultConfig(), DefaultConfig(), Options[string, []byte]{Compressor: xor{}}, Options[string, []byte]{Compressor: xor{}})
		if v, ok := p.send(t, make([]byte, 500)); !ok || len(v) != 500 {
			t.Fatalf("b did not deliver a payload compressed with its own compressor: %v", ok)
		}
		if st, _ := p.b.Stats(); st.DecodeErrors != 0 {
			t.Fatalf("%d decode errors", st.DecodeErrors)
		}
	})
}
