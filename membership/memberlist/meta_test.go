package memberlist

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestMetaRoundTrip(t *testing.T) {
	for _, md := range []meta{
		{addr: "127.0.0.1:7947"},
		{addr: "[::1]:1", leaving: true},
		{addr: strings.Repeat("a", maxAddrLenInMeta)},
	} {
		b := appendMeta(nil, md)
		got, err := decodeMeta(b)
		if err != nil || got != md {
			t.Errorf("decodeMeta(appendMeta(%v)) = %v, %v", md, got, err)
		}
		// Fields a later minor revision appends are ignored.
		if got, err := decodeMeta(append(b, 7, 7, 7)); err != nil || got != md {
			t.Errorf("with trailing bytes: %v, %v", got, err)
		}
		// Reserved flags are ignored.
		b[1] |= 0x80
		if got, err := decodeMeta(b); err != nil || got != md {
			t.Errorf("with a reserved flag: %v, %v", got, err)
		}
	}
	if n := len(appendMeta(nil, meta{addr: strings.Repeat("a", maxAddrLenInMeta)})); n > 512 {
		t.Errorf("the longest metadata takes %d bytes, more than memberlist's MetaMaxSize", n)
	}
}

func TestMetaMalformed(t *testing.T) {
	for _, b := range [][]byte{
		nil, {}, {2}, {1}, {1, 0}, {1, 0, 0}, {1, 0, 5, 'a'}, {1, 0, 0x80},
		{1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		{1, 0, 2, 0xff, 0xfe},
	} {
		if md, err := decodeMeta(b); err == nil {
			t.Errorf("decodeMeta(%v) = %v, want an error", b, md)
		}
	}
}

func FuzzDecodeMeta(f *testing.F) {
	f.Add(appendMeta(nil, meta{addr: "127.0.0.1:7947"}))
	f.Add(appendMeta(nil, meta{addr: "x", leaving: true}))
	f.Add([]byte{1, 0, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		md, err := decodeMeta(b)
		if err != nil {
			return
		}
		if md.addr == "" || len(md.addr) > len(b) {
			t.Fatalf("decoded %v from %d bytes", md, len(b))
		}
		again, err := decodeMeta(appendMeta(nil, md))
		if err != nil || again != md {
			t.Fatalf("re-encoding %v gives %v, %v", md, again, err)
		}
	})
}

func TestPeersRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "peers.json")
	peers := []peer{{Name: "a", Addr: "127.0.0.1:7946"}, {Name: "b", Addr: "[::1]:7946"}}
	if err := writePeers(path, peers); err != nil {
		t.Fatal(err)
	}
	if err := writePeers(path, peers[:1]); err != nil { // over an existing file
		t.Fatal(err)
	}
	got, err := readPeers(path)
	if err != nil || !slices.Equal(got, peers[:1]) {
		t.Fatalf("readPeers = %v, %v", got, err)
	}
	if got, err := readPeers(path + ".missing"); err != nil || got != nil {
		t.Errorf("missing file: %v, %v", got, err)
	}
	big := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(big, make([]byte, maxPeersFileSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readPeers(big); err == nil {
		t.Error("an oversized file was accepted")
	}
}

func FuzzParsePeers(f *testing.F) {
	f.Add([]byte(`{"version":1,"peers":[{"name":"a","addr":"127.0.0.1:7946"}]}`))
	f.Add([]byte(`{"version":1,"peers":[]}`))
	f.Add([]byte(`{"version":1,"peers":[{"name":"a","addr":"x:1"}]} `))
	f.Fuzz(func(t *testing.T, b []byte) {
		peers, err := parsePeers(b)
		if err != nil {
			return
		}
		for _, p := range peers {
			if p.Addr == "" {
				t.Fatalf("accepted an empty address in %q", b)
			}
		}
	})
}

func TestMessageRoundTrip(t *testing.T) {
	for _, msg := range []message{
		{kind: msgLeaving, name: "n1", addr: "127.0.0.1:7946"},
		{kind: msgAck, name: "n2"},
	} {
		got, err := decodeMessage(appendMessage(nil, msg))
		if err != nil || got != msg {
			t.Errorf("decodeMessage(appendMessage(%v)) = %v, %v", msg, got, err)
		}
	}
	for _, b := range [][]byte{nil, {1}, {2, 2, 1, 'a'}, {1, 9, 1, 'a'}, {1, 2, 0}, {1, 2, 5, 'a'}, {1, 1, 1, 'a'}, {1, 1, 1, 'a', 3, 'x'}} {
		if msg, err := decodeMessage(b); err == nil {
			t.Errorf("decodeMessage(%v) = %v, want an error", b, msg)
		}
	}
}

func FuzzDecodeMessage(f *testing.F) {
	f.Add(appendMessage(nil, message{kind: msgLeaving, name: "n1", addr: "127.0.0.1:7946"}))
	f.Add(appendMessage(nil, message{kind: msgAck, name: "n2"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		msg, err := decodeMessage(b)
		if err != nil {
			return
		}
		if again, err := decodeMessage(appendMessage(nil, msg)); err != nil || again != msg {
			t.Fatalf("re-encoding %v gives %v, %v", msg, again, err)
		}
	})
}

func TestLogWriter(t *testing.T) {
	var got []slog.Level
	l := slog.New(levelRecorder{&got})
	ml := memberlistLogger(l)
	ml.Printf("[DEBUG] memberlist: a")
	ml.Printf("[WARN] memberlist: b")
	ml.Printf("[ERR] memberlist: c")
	ml.Printf("no level")
	if want := []slog.Level{slog.LevelDebug, slog.LevelWarn, slog.LevelError, slog.LevelInfo}; !slices.Equal(got, want) {
		t.Errorf("levels %v, want %v", got, want)
	}
}

type levelRecorder struct{ levels *[]slog.Level }

func (h levelRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h levelRecorder) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h levelRecorder) WithGroup(string) slog.Handler            { return h }
func (h levelRecorder) Handle(_ context.Context, r slog.Record) error {
	*h.levels = append(*h.levels, r.Level)
	return nil
}
