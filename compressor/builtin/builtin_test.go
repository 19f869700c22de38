package builtin_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/plumtree-go/plumtree/compressor"
	"github.com/plumtree-go/plumtree/compressor/builtin"
	"github.com/plumtree-go/plumtree/compressor/lz4"
	"github.com/plumtree-go/plumtree/compressor/zstd"
)

// named is a compressor with a chosen ID and name that behaves like Identity.
type named struct {
	id   byte
	name string
}

func (n named) ID() byte     { return n.id }
func (n named) Name() string { return n.name }
func (n named) Compress(dst, src []byte) ([]byte, error) {
	return compressor.Identity().Compress(dst, src)
}
func (n named) Decompress(dst, src []byte, maxSize int) ([]byte, error) {
	return compressor.Identity().Decompress(dst, src, maxSize)
}

func TestNew(t *testing.T) {
	if got := builtin.Names(); !slices.Equal(got, []string{"identity", "lz4", "zstd"}) || !slices.IsSorted(got) {
		t.Errorf("Names() = %q", got)
	}
	tests := []struct {
		name    string
		level   int
		id      byte
		errWant string
	}{
		{"identity", 0, 0, ""},
		{"identity", 7, 0, ""},
		{"zstd", 0, 1, ""},
		{"zstd", 22, 1, ""},
		{"zstd", 23, 0, "out of range"},
		{"lz4", 0, 2, ""},
		{"lz4", 9, 2, ""},
		{"lz4", -1, 0, "out of range"},
		{"gzip", 0, 0, `unknown compressor "gzip"`},
		{"", 0, 0, "unknown compressor"},
		{"ZSTD", 0, 0, "unknown compressor"},
	}
	for _, tt := range tests {
		c, err := builtin.New(tt.name, tt.level)
		if tt.errWant != "" {
			if err == nil || !strings.Contains(err.Error(), tt.errWant) {
				t.Errorf("New(%q, %d) error = %v, want %q", tt.name, tt.level, err, tt.errWant)
			}
			continue
		}
		if err != nil {
			t.Errorf("New(%q, %d): %v", tt.name, tt.level, err)
			continue
		}
		if c.ID() != tt.id || c.Name() != tt.name {
			t.Errorf("New(%q, %d) = ID %d name %q", tt.name, tt.level, c.ID(), c.Name())
		}
	}
	if _, err := builtin.New("snappy", 0); !errors.Is(err, builtin.ErrUnknown) {
		t.Errorf("unknown name: %v, want ErrUnknown", err)
	}
}

func TestNewRegistry(t *testing.T) {
	r, err := builtin.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Names(); !slices.Equal(got, builtin.Names()) {
		t.Errorf("Names() = %q, want %q", got, builtin.Names())
	}
	for id, name := range map[byte]string{0: "identity", 1: "zstd", 2: "lz4"} {
		if c, ok := r.ByID(id); !ok || c.Name() != name {
			t.Errorf("ByID(%d) = %v, %v; want %s", id, c, ok, name)
		}
	}

	// The caller's own instance takes the built-in's place.
	own, err := zstd.New(11)
	if err != nil {
		t.Fatal(err)
	}
	r, err = builtin.NewRegistry(own, named{64, "mine"})
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := r.ByID(zstd.ID); c != own {
		t.Errorf("ByID(zstd) = %v, want the instance given", c)
	}
	if c, _ := r.ByName(lz4.Name); c == nil {
		t.Error("lz4 missing beside the caller's compressors")
	}
	if got := r.Names(); !slices.Equal(got, []string{"identity", "lz4", "mine", "zstd"}) {
		t.Errorf("Names() = %q", got)
	}

	for _, tt := range []struct {
		c       compressor.Compressor
		errWant string
	}{
		{named{1, "gzip"}, "duplicate ID 1"},
		{named{70, "lz4"}, `duplicate name "lz4"`},
		{named{0, "raw"}, "duplicate ID 0"},
		{nil, "nil compressor"},
	} {
		if _, err := builtin.NewRegistry(tt.c); err == nil || !strings.Contains(err.Error(), tt.errWant) {
			t.Errorf("NewRegistry(%v) error = %v, want %q", tt.c, err, tt.errWant)
		}
	}
}

// Resolve: the compressor a policy names (none for identity), and a
// registry of every built-in compressor holding that very instance, so
// that a node reads with what it writes with; errors as New's.
func TestResolve(t *testing.T) {
	all := []string{"identity", "lz4", "zstd"}
	for _, tt := range []struct {
		name  string
		level int
		write string // "" for none
	}{{"", 0, ""}, {"identity", 7, ""}, {"zstd", 19, "zstd"}, {"lz4", 9, "lz4"}} {
		w, r, err := builtin.Resolve(tt.name, tt.level)
		if err != nil {
			t.Errorf("%q level %d: %v", tt.name, tt.level, err)
			continue
		}
		if got := r.Names(); !slices.Equal(got, all) {
			t.Errorf("%q: registry reads %q, want %q", tt.name, got, all)
		}
		if tt.write == "" {
			if w != nil {
				t.Errorf("%q: writes with %q, want none", tt.name, w.Name())
			}
			continue
		}
		if w == nil || w.Name() != tt.write {
			t.Errorf("%q: writes with %v, want %s", tt.name, w, tt.write)
			continue
		}
		if c, _ := r.ByID(w.ID()); c != w {
			t.Errorf("%q: the registry reads ID %d with another instance than the one it writes with", tt.name, w.ID())
		}
	}
	if _, _, err := builtin.Resolve("gzip", 0); !errors.Is(err, builtin.ErrUnknown) {
		t.Errorf("gzip: %v, want ErrUnknown", err)
	}
	if _, _, err := builtin.Resolve("zstd", 23); err == nil || errors.Is(err, builtin.ErrUnknown) {
		t.Errorf("zstd level 23: %v, want the level refused", err)
	}
}
