package lz4_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/plumtree-go/plumtree/compressor"
)

// fuzzLimit caps the output of one fuzzed Decompress.
const fuzzLimit = 1 << 20

// FuzzDecompress feeds arbitrary bytes and limits to Decompress: it must
// return an error wrapping ErrTooLarge or ErrCorrupt, or at most the limit,
// never panic, and never touch dst's bytes.
func FuzzDecompress(f *testing.F) {
	c := mustNew(f, 0)
	for _, in := range [][]byte{nil, []byte("a"), bytes.Repeat([]byte("gossip "), 300), make([]byte, 5000)} {
		z, err := c.Compress(nil, in)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(z, uint32(len(in)))
		f.Add(z, uint32(len(in)/2))
	}
	f.Add(binary.AppendUvarint(nil, 1<<40), uint32(1<<20))
	f.Add(append(binary.AppendUvarint(nil, 200<<1), 0x1f, 0x00, 0x01, 0x00, 0xff, 0xff, 0x50, 0x00), uint32(1<<20))
	f.Fuzz(func(t *testing.T, src []byte, limit uint32) {
		maxSize := int(limit % (fuzzLimit + 1))
		out, err := c.Decompress([]byte("pre"), src, maxSize)
		if err != nil {
			if !errors.Is(err, compressor.ErrTooLarge) && !errors.Is(err, compressor.ErrCorrupt) {
				t.Fatalf("error %v wraps neither ErrTooLarge nor ErrCorrupt", err)
			}
			if string(out) != "pre" {
				t.Fatalf("failed Decompress returned %q, want dst", out)
			}
			return
		}
		if string(out[:3]) != "pre" || len(out)-3 > maxSize {
			t.Fatalf("Decompress returned %d bytes with limit %d (prefix %q)", len(out)-3, maxSize, out[:3])
		}
	})
}

// FuzzRoundTrip compresses arbitrary bytes, fast and high-compression, and
// decompresses them back.
func FuzzRoundTrip(f *testing.F) {
	fast, hc := mustNew(f, 0), mustNew(f, 5)
	f.Add([]byte(nil))
	f.Add([]byte(`{"id":1,"name":"node-1","tags":["a","b","a","b"]}`))
	f.Add(make([]byte, 3000))
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, c := range []interface {
			Compress(dst, src []byte) ([]byte, error)
			Decompress(dst, src []byte, maxSize int) ([]byte, error)
		}{fast, hc} {
			z, err := c.Compress(nil, in)
			if err != nil {
				t.Fatal(err)
			}
			out, err := c.Decompress(nil, z, len(in))
			if err != nil || !bytes.Equal(out, in) {
				t.Fatalf("round trip of %d bytes: %v", len(in), err)
			}
		}
	})
}
