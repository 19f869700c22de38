package lz4_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/plumtree-go/plumtree/compressor"
	"github.com/plumtree-go/plumtree/compressor/lz4"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func mustNew(t testing.TB, level int) *lz4.Compressor {
	t.Helper()
	c, err := lz4.New(level)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNew(t *testing.T) {
	for _, level := range []int{-1, 10} {
		if _, err := lz4.New(level); err == nil || !strings.Contains(err.Error(), "out of range") {
			t.Errorf("New(%d) error = %v, want out of range", level, err)
		}
	}
	c := mustNew(t, 4)
	if c.ID() != 2 || c.Name() != "lz4" || c.Level() != 4 {
		t.Errorf("New(4): ID %d, name %q, level %d", c.ID(), c.Name(), c.Level())
	}
}

func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	random := make([]byte, 70_000)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	inputs := map[string][]byte{
		"empty":  nil,
		"one":    {42},
		"short":  []byte("abcabcabc"),
		"text":   bytes.Repeat([]byte("plumtree gossip "), 1000),
		"zeros":  make([]byte, 1<<20),
		"random": random,
	}
	for _, level := range []int{0, 1, 9} {
		c := mustNew(t, level)
		for name, in := range inputs {
			t.Run(fmt.Sprintf("level%d/%s", level, name), func(t *testing.T) {
				prefix := []byte("pre")
				z, err := c.Compress(bytes.Clone(prefix), in)
				if err != nil || !bytes.HasPrefix(z, prefix) {
					t.Fatalf("Compress: %v", err)
				}
				body := z[len(prefix):]
				if len(body) > len(in)+binary.MaxVarintLen64 {
					t.Errorf("%d bytes compress to %d: more than the header over stored data", len(in), len(body))
				}
				out, err := c.Decompress(bytes.Clone(prefix), body, len(in))
				if err != nil {
					t.Fatalf("Decompress at limit %d: %v", len(in), err)
				}
				if !bytes.Equal(out[:len(prefix)], prefix) || !bytes.Equal(out[len(prefix):], in) {
					t.Fatal("round trip changed the data")
				}
				if len(in) > 0 {
					if _, err := c.Decompress(nil, body, len(in)-1); !errors.Is(err, compressor.ErrTooLarge) {
						t.Fatalf("Decompress one byte under the size: %v, want ErrTooLarge", err)
					}
				}
			})
		}
	}
}

// allocated returns the bytes f allocates.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestBadInput(t *testing.T) {
	c := mustNew(t, 0)
	good, err := c.Compress(nil, bytes.Repeat([]byte("lz4 block "), 300))
	if err != nil {
		t.Fatal(err)
	}
	hdr := func(n uint64, flag uint64) []byte { return binary.AppendUvarint(nil, n<<1|flag) }
	tests := []struct {
		name string
		src  []byte
		want error
	}{
		{"empty", nil, compressor.ErrCorrupt},
		{"header cut off", []byte{0x80}, compressor.ErrCorrupt},
		{"header past 64 bits", bytes.Repeat([]byte{0xff}, 11), compressor.ErrCorrupt},
		{"1 GiB declared", append(hdr(1<<30, 0), 0, 1, 2), compressor.ErrTooLarge},
		{"2^62 declared", append(hdr(1<<62, 0), 0, 1, 2), compressor.ErrTooLarge},
		{"more than the block can hold", append(hdr(60000, 0), make([]byte, 100)...), compressor.ErrCorrupt},
		{"zero-length compressed block", hdr(0, 0), compressor.ErrCorrupt},
		{"stored, short", append(hdr(10, 1), 1, 2, 3), compressor.ErrCorrupt},
		{"stored, long", append(hdr(2, 1), 1, 2, 3), compressor.ErrCorrupt},
		{"cut short", good[:len(good)-5], compressor.ErrCorrupt},
		{"length off by one", append(hdr(2999, 0), good[2:]...), compressor.ErrCorrupt},
		{"garbage block", append(hdr(5000, 0), bytes.Repeat([]byte{0xf0, 0xff}, 100)...), compressor.ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out []byte
			var err error
			n := allocated(func() { out, err = c.Decompress([]byte("pre"), tt.src, 64<<10) })
			if !errors.Is(err, tt.want) {
				t.Fatalf("Decompress error = %v, want %v", err, tt.want)
			}
			if string(out) != "pre" {
				t.Errorf("failed Decompress returned %q, want dst", out)
			}
			if n > 128<<10 {
				t.Errorf("Decompress allocated %d bytes with a limit of 64 KiB", n)
			}
		})
	}
}

// TestConcurrent shares one compressor between goroutines; run with -race.
func TestConcurrent(t *testing.T) {
	for _, level := range []int{0, 3} {
		c := mustNew(t, level)
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := range 20 {
					in := bytes.Repeat([]byte{byte(g), byte(i), 7}, 500+g*10+i)
					z, err := c.Compress(nil, in)
					if err != nil {
						t.Error(err)
						return
					}
					out, err := c.Decompress(nil, z, len(in))
					if err != nil || !bytes.Equal(out, in) {
						t.Errorf("goroutine %d round %d: %v", g, i, err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
}
