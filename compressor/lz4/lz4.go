// Package lz4 is the LZ4 compressor, on the block API of
// github.com/pierrec/lz4/v4.
//
// Its wire ID is 2 and its name "lz4" (see package compressor for the
// reserved IDs). Level 0 is LZ4's fast compressor; levels 1 to 9 are its
// high-compression (HC) compressor, searching deeper at each level. Every
// level decompresses the same way.
//
// The LZ4 block format does not record the decoded length, so this package
// frames each block: a uvarint holding the decoded length n shifted left by
// one, with the low bit set when the block is stored as it is (LZ4 could not
// shrink it), then the block. Decompress reads n first and refuses it, before
// allocating, when it passes maxSize, or when the block is too short to
// decode to n bytes (LZ4 expands at most about 255 times).
//
// This package must never import the gossip core or any transport.
package lz4

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sync"

	plz4 "github.com/pierrec/lz4/v4"

	"github.com/plumtree-go/plumtree/compressor"
)

// ID is the wire ID of the lz4 compressor. It never changes.
const ID byte = 2

// Name is the name of the lz4 compressor.
const Name = "lz4"

// The levels New accepts.
const (
	// FastLevel (0) is LZ4's fast compressor, the default.
	FastLevel = 0
	// MaxLevel is the deepest search of the high-compression compressor.
	MaxLevel = 9
)

// maxExpansion bounds how many bytes one byte of an LZ4 block decodes to:
// a match length grows by 255 per extra byte.
const maxExpansion = 256

// stored is the header's low bit: the block is the data itself.
const stored = 1

// Compressor compresses with LZ4. Make one with New; it is safe for
// concurrent use.
type Compressor struct {
	level int
	pool  sync.Pool // of blockCompressor, which are not safe for concurrent use
}

var _ compressor.Compressor = (*Compressor)(nil)

type blockCompressor interface {
	CompressBlock(src, dst []byte) (int, error)
}

// New returns an lz4 compressor at level: FastLevel (0) or 1 to MaxLevel for
// the high-compression compressor.
func New(level int) (*Compressor, error) {
	if level < FastLevel || level > MaxLevel {
		return nil, fmt.Errorf("lz4: level %d out of range [%d, %d]", level, FastLevel, MaxLevel)
	}
	c := &Compressor{level: level}
	c.pool.New = func() any {
		if level == FastLevel {
			return new(plz4.Compressor)
		}
		// pierrec's Level1..Level9 are search depths 1<<9 .. 1<<17.
		return &plz4.CompressorHC{Level: plz4.CompressionLevel(1 << (8 + level))}
	}
	return c, nil
}

// ID returns 2.
func (*Compressor) ID() byte { return ID }

// Name returns "lz4".
func (*Compressor) Name() string { return Name }

// Level returns the level the compressor was made with.
func (c *Compressor) Level() int { return c.level }

// Compress appends the framed LZ4 block of src to dst. Data LZ4 cannot shrink
// is stored as it is, behind the same header.
func (c *Compressor) Compress(dst, src []byte) ([]byte, error) {
	n := len(src)
	bound := plz4.CompressBlockBound(n)
	out := slices.Grow(dst, binary.MaxVarintLen64+bound)
	start := len(out)
	out = binary.AppendUvarint(out, uint64(n)<<1)
	body := out[len(out) : len(out)+bound]
	bc := c.pool.Get().(blockCompressor)
	k, err := bc.CompressBlock(src, body)
	c.pool.Put(bc)
	if err != nil {
		return dst, fmt.Errorf("lz4: compress %d bytes: %w", n, err)
	}
	if k == 0 || k >= n {
		// Incompressible (or empty): store it.
		out = binary.AppendUvarint(out[:start], uint64(n)<<1|stored)
		return append(out, src...), nil
	}
	return out[:len(out)+k], nil
}

// Decompress appends the data of the framed block src to dst. It fails with
// an error wrapping compressor.ErrTooLarge, before allocating, when the
// header's length passes maxSize, and with one wrapping compressor.ErrCorrupt
// when src cannot be read or does not decode to exactly that length. On error
// dst is returned as it was.
func (c *Compressor) Decompress(dst, src []byte, maxSize int) ([]byte, error) {
	h, hn := binary.Uvarint(src)
	if hn <= 0 {
		return dst, fmt.Errorf("%w: lz4: bad length header", compressor.ErrCorrupt)
	}
	body := src[hn:]
	n := h >> 1
	if maxSize < 0 || n > uint64(maxSize) {
		return dst, fmt.Errorf("%w: lz4: block declares %d bytes, limit %d", compressor.ErrTooLarge, n, maxSize)
	}
	if h&stored != 0 {
		if uint64(len(body)) != n {
			return dst, fmt.Errorf("%w: lz4: stored block of %d bytes declares %d", compressor.ErrCorrupt, len(body), n)
		}
		return append(dst, body...), nil
	}
	if n == 0 || n > uint64(len(body))*maxExpansion {
		return dst, fmt.Errorf("%w: lz4: a block of %d bytes cannot decode to %d", compressor.ErrCorrupt, len(body), n)
	}
	out := slices.Grow(dst, int(n))
	k, err := plz4.UncompressBlock(body, out[len(dst):len(dst)+int(n)])
	if err != nil {
		return dst, fmt.Errorf("%w: lz4: %w", compressor.ErrCorrupt, err)
	}
	if k != int(n) {
		return dst, fmt.Errorf("%w: lz4: block decodes to %d bytes, declares %d", compressor.ErrCorrupt, k, n)
	}
	return out[:len(dst)+int(n)], nil
}
