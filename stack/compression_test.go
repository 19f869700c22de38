package stack_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/plumtree-go/plumtree/gossip"
	"github.com/plumtree-go/plumtree/stack"
)

// Compressors resolves a policy's names as the core does not: the
// compressor it names (none for identity), a registry of every built-in
// compressor holding that same instance, and a *gossip.ConfigError naming
// the field for an unknown name or a level the algorithm refuses.
func TestCompressors(t *testing.T) {
	builtins := []string{"identity", "lz4", "zstd"}
	for _, tt := range []struct {
		c     gossip.Compression
		write string // the writer's name, "" for none
	}{
		{gossip.Compression{}, ""},
		{gossip.Compression{Algorithm: "identity", Level: 5}, ""},
		{gossip.Compression{Algorithm: "zstd", Level: 3, MinSize: 256}, "zstd"},
		{gossip.Compression{Algorithm: "zstd", Level: 22}, "zstd"},
		{gossip.Compression{Algorithm: "lz4", Level: 9}, "lz4"},
	} {
		w, reg, err := stack.Compressors(tt.c)
		if err != nil {
			t.Errorf("%+v: %v", tt.c, err)
			continue
		}
		if got := reg.Names(); !slices.Equal(got, builtins) {
			t.Errorf("%+v: registry reads %q, want %q", tt.c, got, builtins)
		}
		switch {
		case tt.write == "" && w != nil:
			t.Errorf("%+v: writes with %q, want none", tt.c, w.Name())
		case tt.write != "" && (w == nil || w.Name() != tt.write):
			t.Errorf("%+v: writes with %v, want %s", tt.c, w, tt.write)
		case w != nil:
			if r, _ := reg.ByID(w.ID()); r != w {
				t.Errorf("%+v: the registry reads ID %d with another instance than the node writes with", tt.c, w.ID())
			}
		}
	}
	for _, tt := range []struct {
		c     gossip.Compression
		field string
	}{
		{gossip.Compression{Algorithm: "gzip"}, "Compression.Algorithm"},
		{gossip.Compression{Algorithm: "Zstd"}, "Compression.Algorithm"},
		{gossip.Compression{Algorithm: "zstd", Level: 23}, "Compression.Level"},
		{gossip.Compression{Algorithm: "lz4", Level: -1}, "Compression.Level"},
	} {
		_, _, err := stack.Compressors(tt.c)
		var ce *gossip.ConfigError
		if !errors.As(err, &ce) || ce.Field != tt.field {
			t.Errorf("%+v: error %v, want a *gossip.ConfigError for %s", tt.c, err, tt.field)
		}
	}
}

// The stack checks compressor names with the rest of the configuration,
// before it opens anything: the presets pass, an unknown name is refused.
func TestCompressorNamesChecked(t *testing.T) {
	for _, name := range stack.Presets {
		cfg, err := stack.Preset(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := stack.WithCompressor(cfg, "preset"); err != nil {
			t.Errorf("preset %s: %v", name, err)
		}
	}
	cfg := gossip.LANConfig()
	cfg.Compression = gossip.Compression{Algorithm: "gzip"}
	refused(t, stack.Config{Listen: "127.0.0.1:0", Gossip: &cfg}, `Config.Compression.Algorithm "gzip" is not one of`)
	cfg.Compression = gossip.Compression{Algorithm: "zstd", Level: 23}
	refused(t, stack.Config{Listen: "127.0.0.1:0", Gossip: &cfg}, `Config.Compression.Level 23`)
}

// Nodes built by the stack read each other's compressors whatever their
// presets: a WAN node (zstd from 256 bytes) broadcasts a compressible
// document, its Gossip frame is smaller than the document, and a LAN node
// (which compresses nothing) delivers it intact.
func TestMixedPresetsReadEachOther(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a watchdog
	defer cancel()
	got, refused := make(chan []byte, 1), make(chan error, 1)
	lan := start(t, stack.Config{Name: "lan", Preset: "lan",
		OnDeliver: func(d gossip.Delivery[string, []byte]) { got <- d.Value },
		Observer: gossip.ObserverFunc(func(e gossip.Event) {
			if e.Kind == gossip.EventDecodeError {
				select {
				case refused <- e.Err:
				default:
				}
			}
		})})
	// The WAN node's Gossip frames. The event comes after the send returns,
	// so it may come after the LAN node delivered: wait for it.
	sent := make(chan int, 64)
	wan := start(t, stack.Config{Name: "wan", Preset: "wan", Join: []string{lan.ClusterAddr()},
		Observer: gossip.ObserverFunc(func(e gossip.Event) {
			if e.Kind == gossip.EventSent && e.Type == gossip.KindGossip {
				select {
				case sent <- e.Bytes:
				default:
				}
			}
		})})
	if err := wan.WaitMembers(ctx, 2); err != nil {
		t.Fatalf("members: %v", err)
	}
	doc := bytes.Repeat([]byte(`{"service":"billing","level":"info","message":"request handled"},`), 64)
	if _, err := wan.Node.Broadcast(ctx, doc); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-got:
		if !bytes.Equal(v, doc) {
			t.Fatalf("the LAN node delivered %d bytes, not the %d-byte document", len(v), len(doc))
		}
	case err := <-refused:
		t.Fatalf("the LAN node refused the document: %v", err)
	case <-ctx.Done():
		t.Fatal("the LAN node delivered nothing within a minute")
	}
	select {
	case f := <-sent:
		if f >= len(doc) {
			t.Fatalf("the WAN node's Gossip frame was %d bytes for a %d-byte document: not compressed", f, len(doc))
		}
	case <-ctx.Done():
		t.Fatal("the WAN node reported no Gossip frame sent within a minute")
	}
	if st, err := lan.Node.Stats(); err != nil || st.DecodeErrors != 0 {
		t.Fatalf("LAN node stats: %d decode errors (%v)", st.DecodeErrors, err)
	}
}
