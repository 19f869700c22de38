// Package zstd is the Zstandard compressor, on github.com/klauspost/compress/zstd.
//
// Its wire ID is 1 and its name "zstd" (see package compressor for the
// reserved IDs). The level picks speed against ratio, as the reference
// zstd's levels do: New(3) is the tuning guide's zstd(3).
//
// One Compressor value holds one shared encoder and shares its decoders:
// both are safe for concurrent use, and neither starts a goroutine. Each
// frame is written as a single segment with its content size and a checksum,
// so that a receiver can refuse it by its header alone.
//
// Decompress is bounded by its maxSize: a frame that declares more is refused
// before anything is allocated; a frame that does not declare its size (or
// a run of frames) is decoded by a decoder whose memory limit is maxSize (or
// 1 KiB, the format's smallest window, if more), so the output stops within
// one block (128 KiB) of the limit; a frame whose window passes that limit
// is refused. These fail with compressor.ErrTooLarge. A frame that produces
// more than it declared is refused with compressor.ErrCorrupt as soon as a
// block passes the declared size.
//
// This package must never import the gossip core or any transport.
package zstd

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	kzstd "github.com/klauspost/compress/zstd"

	"github.com/plumtree-go/plumtree/compressor"
)

// ID is the wire ID of the zstd compressor. It never changes.
const ID byte = 1

// Name is the name of the zstd compressor.
const Name = "zstd"

// The levels New accepts, on the reference zstd's scale.
const (
	// MinLevel is the fastest level.
	MinLevel = 1
	// DefaultLevel is used for level 0: the tuning guide's zstd(3).
	DefaultLevel = 3
	// MaxLevel is the slowest, densest level.
	MaxLevel = 22
)

// maxDecoders bounds the decoders one Compressor keeps, one per distinct
// maxSize it has been asked to honour (a node uses one).
const maxDecoders = 8

// Compressor compresses with zstd. Make one with New; it is safe for
// concurrent use.
type Compressor struct {
	level int
	elvl  kzstd.EncoderLevel

	encOnce sync.Once
	enc     *kzstd.Encoder
	encErr  error

	mu   sync.Mutex
	decs map[int]*kzstd.Decoder
}

var _ compressor.Compressor = (*Compressor)(nil)

// New returns a zstd compressor at level, from MinLevel (fastest) to MaxLevel
// (densest); 0 means DefaultLevel. As in klauspost/compress, the levels fall
// into four encoder speeds: 1-2 fastest, 3-5 default, 6-9 better, 10 and up
// best. The encoder is built on first use.
func New(level int) (*Compressor, error) {
	if level == 0 {
		level = DefaultLevel
	}
	if level < MinLevel || level > MaxLevel {
		return nil, fmt.Errorf("zstd: level %d out of range [%d, %d] (0 for %d)", level, MinLevel, MaxLevel, DefaultLevel)
	}
	return &Compressor{level: level, elvl: kzstd.EncoderLevelFromZstd(level), decs: make(map[int]*kzstd.Decoder)}, nil
}

// ID returns 1.
func (*Compressor) ID() byte { return ID }

// Name returns "zstd".
func (*Compressor) Name() string { return Name }

// Level returns the level the compressor was made with (DefaultLevel for 0).
func (c *Compressor) Level() int { return c.level }

// concurrency bounds the encoders and decoders held at once.
func concurrency() int { return min(runtime.GOMAXPROCS(0), 4) }

func (c *Compressor) encoder() (*kzstd.Encoder, error) {
	c.encOnce.Do(func() {
		c.enc, c.encErr = kzstd.NewWriter(nil,
			kzstd.WithEncoderLevel(c.elvl),
			kzstd.WithEncoderConcurrency(concurrency()),
			// The content size in every header, so receivers refuse by it.
			kzstd.WithSingleSegment(true),
			kzstd.WithZeroFrames(true),
			kzstd.WithEncoderCRC(true))
	})
	return c.enc, c.encErr
}

// Compress appends one zstd frame holding src to dst.
func (c *Compressor) Compress(dst, src []byte) ([]byte, error) {
	enc, err := c.encoder()
	if err != nil {
		return dst, fmt.Errorf("zstd: encoder: %w", err)
	}
	return enc.EncodeAll(src, dst), nil
}

// decoder returns the shared decoder whose memory limit is limit (at least
// kzstd.MinWindowSize).
func (c *Compressor) decoder(limit int) (*kzstd.Decoder, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d, ok := c.decs[limit]; ok {
		return d, nil
	}
	d, err := kzstd.NewReader(nil,
		kzstd.WithDecoderConcurrency(concurrency()),
		kzstd.WithDecoderMaxMemory(uint64(limit)),
		kzstd.WithDecoderLowmem(true))
	if err != nil {
		return nil, err
	}
	if len(c.decs) >= maxDecoders {
		// Drop one. It started no goroutine, and a call still using it
		// finishes normally; the garbage collector frees it.
		for k := range c.decs {
			delete(c.decs, k)
			break
		}
	}
	c.decs[limit] = d
	return d, nil
}

// Decompress appends the content of the zstd frames in src to dst. It fails
// with an error wrapping compressor.ErrTooLarge when a frame declares more
// than maxSize bytes, when its window passes maxSize, or when decoding passes
// maxSize (stopping within one block of it); with one wrapping
// compressor.ErrCorrupt for anything else it cannot read. On error dst is
// returned as it was.
func (c *Compressor) Decompress(dst, src []byte, maxSize int) ([]byte, error) {
	if maxSize < 0 {
		return dst, fmt.Errorf("%w: zstd: limit %d", compressor.ErrTooLarge, maxSize)
	}
	// Refuse by the first header before anything is allocated.
	var h kzstd.Header
	if err := h.Decode(src); err == nil && h.HasFCS && h.FrameContentSize > uint64(maxSize) {
		return dst, fmt.Errorf("%w: zstd: frame declares %d bytes, limit %d", compressor.ErrTooLarge, h.FrameContentSize, maxSize)
	}
	// A decoder refuses any limit under the format's smallest window, so
	// small limits share one of 1 KiB and the exact limit is checked below.
	d, err := c.decoder(max(maxSize, kzstd.MinWindowSize))
	if err != nil {
		return dst, fmt.Errorf("zstd: decoder: %w", err)
	}
	// Decode into the spare capacity with an empty prefix: the decoder
	// counts the prefix against its limit.
	tail := dst[len(dst):]
	out, err := d.DecodeAll(src, tail)
	switch {
	case errors.Is(err, kzstd.ErrDecoderSizeExceeded), errors.Is(err, kzstd.ErrWindowSizeExceeded):
		return dst, fmt.Errorf("%w: zstd: limit %d: %w", compressor.ErrTooLarge, maxSize, err)
	case err != nil:
		return dst, fmt.Errorf("%w: zstd: %w", compressor.ErrCorrupt, err)
	case len(out) > maxSize:
		return dst, fmt.Errorf("%w: zstd: %d bytes, limit %d", compressor.ErrTooLarge, len(out), maxSize)
	case len(out) == 0:
		return dst, nil
	case cap(tail) > 0 && &out[:1][0] == &tail[:1][0]:
		return dst[:len(dst)+len(out)], nil // decoded in place
	}
	return append(dst, out...), nil
}
