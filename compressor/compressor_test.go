package compressor_test

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/plumtree-go/plumtree/compressor"
)

// fake is a compressor with a chosen ID and name that behaves like Identity.
type fake struct {
	id   byte
	name string
}

func (f fake) ID() byte     { return f.id }
func (f fake) Name() string { return f.name }
func (f fake) Compress(dst, src []byte) ([]byte, error) {
	return compressor.Identity().Compress(dst, src)
}
func (f fake) Decompress(dst, src []byte, maxSize int) ([]byte, error) {
	return compressor.Identity().Decompress(dst, src, maxSize)
}

// ptrFake has pointer methods, for the typed-nil case.
type ptrFake struct{ fake }

func (p *ptrFake) ID() byte { return p.id }

func TestIdentity(t *testing.T) {
	id := compressor.Identity()
	if id.ID() != 0 || id.Name() != "identity" || compressor.IdentityName != "identity" {
		t.Fatalf("Identity is ID %d name %q", id.ID(), id.Name())
	}
	tests := []struct {
		name    string
		src     []byte
		maxSize int
		tooBig  bool
	}{
		{"empty", nil, 0, false},
		{"under the limit", []byte("abc"), 4, false},
		{"at the limit", []byte("abcd"), 4, false},
		{"one past the limit", []byte("abcde"), 4, true},
		{"zero limit", []byte("a"), 0, true},
		{"negative limit", nil, -1, true},
		{"large", bytes.Repeat([]byte{7}, 1<<16), 1 << 16, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("pre")
			dst := append(make([]byte, 0, 8), prefix...)
			comp, err := id.Compress(dst, tt.src)
			if err != nil {
				t.Fatalf("Compress: %v", err)
			}
			if !bytes.Equal(comp, append(slices.Clip(prefix), tt.src...)) {
				t.Fatalf("Compress appended %q, want %q", comp[len(prefix):], tt.src)
			}

			src := bytes.Clone(tt.src)
			out, err := id.Decompress(dst, src, tt.maxSize)
			if tt.tooBig {
				if !errors.Is(err, compressor.ErrTooLarge) {
					t.Fatalf("Decompress error = %v, want ErrTooLarge", err)
				}
				if !strings.Contains(err.Error(), fmt.Sprintf("limit %d", tt.maxSize)) {
					t.Errorf("error %q does not give the limit", err)
				}
				if !bytes.Equal(out, prefix) {
					t.Errorf("failed Decompress returned %q, want dst", out)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decompress: %v", err)
			}
			if !bytes.Equal(out[:len(prefix)], prefix) || !bytes.Equal(out[len(prefix):], tt.src) {
				t.Fatalf("Decompress gave %q, want %q+%q", out, prefix, tt.src)
			}
			// The output must not alias src.
			for i := range src {
				src[i] ^= 0xff
			}
			if !bytes.Equal(out[len(prefix):], tt.src) {
				t.Error("Decompress output changed with its input")
			}
		})
	}
}

func TestNewRegistry(t *testing.T) {
	var nilPtr *ptrFake
	tests := []struct {
		name    string
		cs      []compressor.Compressor
		errWant string // empty: no error
		names   []string
	}{
		{"empty", nil, "", []string{"identity"}},
		{"two", []compressor.Compressor{fake{2, "zstd"}, fake{1, "gzip"}}, "", []string{"gzip", "identity", "zstd"}},
		{"identity again", []compressor.Compressor{compressor.Identity()}, `duplicate ID 0: "identity"`, nil},
		{"other ID 0", []compressor.Compressor{fake{0, "none"}}, `duplicate ID 0: "identity" (compressor.identity) and "none" (compressor_test.fake)`, nil},
		{"name identity", []compressor.Compressor{fake{9, "identity"}}, `duplicate name "identity": ID 0`, nil},
		{"duplicate ID", []compressor.Compressor{fake{3, "a"}, fake{3, "b"}}, `duplicate ID 3: "a" (compressor_test.fake) and "b" (compressor_test.fake) (argument 1)`, nil},
		{"duplicate name", []compressor.Compressor{fake{3, "a"}, fake{4, "a"}}, `duplicate name "a": ID 3 (compressor_test.fake) and ID 4 (compressor_test.fake) (argument 1)`, nil},
		{"nil", []compressor.Compressor{fake{3, "a"}, nil}, "nil compressor (argument 1)", nil},
		{"typed nil", []compressor.Compressor{nilPtr}, "nil compressor (argument 0)", nil},
		{"empty name", []compressor.Compressor{fake{5, ""}}, "compressor with ID 5 (compressor_test.fake) has an empty name", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := compressor.NewRegistry(tt.cs...)
			if tt.errWant != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errWant) {
					t.Fatalf("NewRegistry error = %v, want one containing %q", err, tt.errWant)
				}
				if r != nil {
					t.Error("NewRegistry returned a registry with its error")
				}
				return
			}
			if err != nil {
				t.Fatalf("NewRegistry: %v", err)
			}
			if got := r.Names(); !slices.Equal(got, tt.names) {
				t.Errorf("Names() = %q, want %q", got, tt.names)
			}
			for _, c := range append([]compressor.Compressor{compressor.Identity()}, tt.cs...) {
				if got, ok := r.ByID(c.ID()); !ok || got != c {
					t.Errorf("ByID(%d) = %v, %v; want %v", c.ID(), got, ok, c)
				}
				if got, ok := r.ByName(c.Name()); !ok || got != c {
					t.Errorf("ByName(%q) = %v, %v; want %v", c.Name(), got, ok, c)
				}
			}
			if c, ok := r.ByID(200); ok || c != nil {
				t.Errorf("ByID(200) = %v, %v; want nothing", c, ok)
			}
			if c, ok := r.ByName("nope"); ok || c != nil {
				t.Errorf("ByName(nope) = %v, %v; want nothing", c, ok)
			}
		})
	}
}

func TestRegister(t *testing.T) {
	r, err := compressor.NewRegistry(fake{1, "gzip"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		c       compressor.Compressor
		errWant string
	}{
		{"new", fake{2, "zstd"}, ""},
		{"same again", fake{2, "zstd"}, "duplicate ID 2"},
		{"ID taken", fake{1, "lz4"}, `duplicate ID 1: "gzip"`},
		{"name taken", fake{7, "zstd"}, `duplicate name "zstd": ID 2`},
		{"ID 0", fake{0, "raw"}, "duplicate ID 0"},
		{"nil", nil, "nil compressor"},
		{"another", fake{255, "snappy"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := r.Names()
			err := r.Register(tt.c)
			if tt.errWant == "" {
				if err != nil {
					t.Fatalf("Register: %v", err)
				}
				if got, ok := r.ByID(tt.c.ID()); !ok || got != tt.c {
					t.Errorf("ByID after Register = %v, %v", got, ok)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.errWant) {
				t.Fatalf("Register error = %v, want one containing %q", err, tt.errWant)
			}
			if after := r.Names(); !slices.Equal(before, after) {
				t.Errorf("failed Register changed Names from %q to %q", before, after)
			}
		})
	}
	if got, want := r.Names(), []string{"gzip", "identity", "snappy", "zstd"}; !slices.Equal(got, want) {
		t.Errorf("Names() = %q, want %q", got, want)
	}
	// ID 1 still belongs to gzip after the refused lz4.
	if c, _ := r.ByID(1); c.Name() != "gzip" {
		t.Errorf("ByID(1) = %q, want gzip", c.Name())
	}
}

// TestRegistryConcurrent registers and looks up at once; run with -race.
func TestRegistryConcurrent(t *testing.T) {
	r, err := compressor.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	const n = 64
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := 1; i <= n; i++ {
		wg.Go(func() {
			// Each ID is offered twice; exactly one must win.
			errs <- r.Register(fake{byte(i), fmt.Sprintf("c%d", i)})
		})
		wg.Go(func() {
			errs <- r.Register(fake{byte(i), fmt.Sprintf("c%d", i)})
		})
		wg.Go(func() {
			r.ByID(byte(i))
			r.ByName(fmt.Sprintf("c%d", i))
			r.Names()
		})
	}
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if err != nil {
			failed++
		}
	}
	if failed != n {
		t.Errorf("%d registrations failed, want %d (one of each pair)", failed, n)
	}
	if got := len(r.Names()); got != n+1 {
		t.Errorf("%d names registered, want %d", got, n+1)
	}
}
