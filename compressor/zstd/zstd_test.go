package zstd_test

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

	kzstd "github.com/klauspost/compress/zstd"
	"go.uber.org/goleak"

	"github.com/plumtree-go/plumtree/compressor"
	"github.com/plumtree-go/plumtree/compressor/zstd"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// levels are one level of each of klauspost's four encoder speeds.
var levels = []int{1, 3, 7, 11}

func mustNew(t testing.TB, level int) *zstd.Compressor {
	t.Helper()
	c, err := zstd.New(level)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewLevels(t *testing.T) {
	for _, level := range []int{-1, 23, 100} {
		if _, err := zstd.New(level); err == nil || !strings.Contains(err.Error(), "out of range") {
			t.Errorf("New(%d) error = %v, want out of range", level, err)
		}
	}
	for level, want := range map[int]int{0: 3, 1: 1, 3: 3, 22: 22} {
		c := mustNew(t, level)
		if c.Level() != want || c.ID() != 1 || c.Name() != "zstd" {
			t.Errorf("New(%d): level %d, ID %d, name %q", level, c.Level(), c.ID(), c.Name())
		}
	}
}

func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 100_000)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	inputs := map[string][]byte{
		"empty":  nil,
		"one":    {42},
		"text":   bytes.Repeat([]byte("plumtree gossip "), 1000),
		"zeros":  make([]byte, 256<<10),
		"random": random,
	}
	for _, level := range levels {
		c := mustNew(t, level)
		for name, in := range inputs {
			t.Run(fmt.Sprintf("level%d/%s", level, name), func(t *testing.T) {
				prefix := []byte("pre")
				z, err := c.Compress(bytes.Clone(prefix), in)
				if err != nil || !bytes.HasPrefix(z, prefix) {
					t.Fatalf("Compress: %v (prefix kept: %v)", err, bytes.HasPrefix(z, prefix))
				}
				out, err := c.Decompress(bytes.Clone(prefix), z[len(prefix):], len(in))
				if err != nil {
					t.Fatalf("Decompress at limit %d: %v", len(in), err)
				}
				if !bytes.Equal(out[:len(prefix)], prefix) || !bytes.Equal(out[len(prefix):], in) {
					t.Fatal("round trip changed the data")
				}
				if len(in) > 0 {
					_, err := c.Decompress(nil, z[len(prefix):], len(in)-1)
					if !errors.Is(err, compressor.ErrTooLarge) {
						t.Fatalf("Decompress one byte under the size: %v, want ErrTooLarge", err)
					}
				}
			})
		}
	}
}

// frame builds a zstd frame by hand: a header with the given content size
// (fcs < 0: none) and a window of 1<<windowLog bytes (10 to 17), then n RLE
// blocks of zeros, each as large as the window allows. With a 32 KiB window,
// 32768 blocks are 1 GiB in 128 KiB.
func frame(fcs int64, windowLog, n int) []byte {
	b := binary.LittleEndian.AppendUint32(nil, 0xFD2FB528)
	if fcs < 0 {
		b = append(b, 0x00, byte(windowLog-10)<<3) // no content size
	} else {
		b = append(b, 0xC0, byte(windowLog-10)<<3) // an 8-byte content size
		b = binary.LittleEndian.AppendUint64(b, uint64(fcs))
	}
	for i := range n {
		h := uint32(1)<<windowLog<<3 | 1<<1 // RLE
		if i == n-1 {
			h |= 1
		}
		b = append(b, byte(h), byte(h>>8), byte(h>>16), 0)
	}
	return b
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

func TestBombs(t *testing.T) {
	const limit = 64 << 10
	c := mustNew(t, 3)
	enc, err := kzstd.NewWriter(nil, kzstd.WithSingleSegment(false))
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	ownZeros, err := c.Compress(nil, make([]byte, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	small := enc.EncodeAll(make([]byte, 60<<10), nil)
	tests := []struct {
		name string
		src  []byte
		want error
	}{
		{"1 GiB without a content size", frame(-1, 15, 32768), compressor.ErrTooLarge},
		{"1 GiB declared", frame(1<<30, 15, 32768), compressor.ErrTooLarge},
		{"1 GiB declared as 1000 bytes", frame(1000, 15, 32768), compressor.ErrCorrupt},
		{"1 GiB in a window past the limit", frame(-1, 17, 8192), compressor.ErrTooLarge},
		{"a declared size of 2^63", frame(1<<63-1, 15, 1), compressor.ErrTooLarge},
		{"1 MiB of zeros from Compress", ownZeros, compressor.ErrTooLarge},
		{"many small frames", bytes.Repeat(small, 1000), compressor.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _ = c.Decompress(nil, tt.src, limit) // the decoder for this limit is made once
			var err error
			n := allocated(func() { _, err = c.Decompress([]byte("pre"), tt.src, limit) })
			if !errors.Is(err, tt.want) {
				t.Fatalf("Decompress error = %v, want %v", err, tt.want)
			}
			// The limit, one block past it, and growth slack.
			if n > 2*(limit+128<<10) {
				t.Errorf("Decompress allocated %d bytes with a limit of %d", n, limit)
			}
			t.Logf("%d input bytes: %v; %d bytes allocated", len(tt.src), err, n)
		})
	}
}

func TestCorrupt(t *testing.T) {
	c := mustNew(t, 3)
	good, err := c.Compress(nil, bytes.Repeat([]byte("corrupt me "), 500))
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(good)
	flipped[len(flipped)/2] ^= 0x55
	for name, src := range map[string][]byte{
		"garbage":         []byte("this is not zstd at all"),
		"magic only":      good[:4],
		"cut short":       good[:len(good)-3],
		"flipped byte":    flipped,
		"trailing bytes":  append(bytes.Clone(good), 1, 2, 3),
		"bad block type":  append(frame(-1, 15, 0), 0x07, 0, 0),
		"window too wide": append(binary.LittleEndian.AppendUint32(nil, 0xFD2FB528), 0x00, 0xff),
	} {
		t.Run(name, func(t *testing.T) {
			out, err := c.Decompress([]byte("pre"), src, 1<<20)
			if !errors.Is(err, compressor.ErrCorrupt) && !errors.Is(err, compressor.ErrTooLarge) {
				t.Fatalf("Decompress error = %v, want ErrCorrupt or ErrTooLarge", err)
			}
			if string(out) != "pre" {
				t.Errorf("failed Decompress returned %q, want dst", out)
			}
		})
	}
}

func TestNegativeAndZeroLimit(t *testing.T) {
	c := mustNew(t, 1)
	z, _ := c.Compress(nil, []byte("x"))
	if _, err := c.Decompress(nil, z, -1); !errors.Is(err, compressor.ErrTooLarge) {
		t.Errorf("limit -1: %v", err)
	}
	if _, err := c.Decompress(nil, z, 0); !errors.Is(err, compressor.ErrTooLarge) {
		t.Errorf("limit 0 for 1 byte: %v", err)
	}
	empty, _ := c.Compress(nil, nil)
	if out, err := c.Decompress(nil, empty, 0); err != nil || len(out) != 0 {
		t.Errorf("limit 0 for nothing: %q, %v", out, err)
	}
}

// TestConcurrent shares one compressor between goroutines, with several
// limits at once (more than it keeps decoders for); run with -race.
func TestConcurrent(t *testing.T) {
	c := mustNew(t, 3)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				in := bytes.Repeat([]byte{byte(g), byte(i)}, 1000+g*100+i)
				z, err := c.Compress(nil, in)
				if err != nil {
					t.Error(err)
					return
				}
				out, err := c.Decompress(nil, z, len(in)+g*7+i)
				if err != nil || !bytes.Equal(out, in) {
					t.Errorf("goroutine %d round %d: %v", g, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
}
