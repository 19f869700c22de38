// Package compressor defines payload compression: a Compressor has a stable
// one-byte wire ID and a name, compresses by appending to a buffer, and
// decompresses with a limit on the output size so hostile input cannot make it
// allocate without bound. A Registry (a value, never global state) maps wire
// IDs to compressors so a receiver can read whatever a sender used.
//
// Wire IDs are part of the wire format and never change. These are taken:
//
//	0  identity (this package)
//	1  zstd     (package compressor/zstd)
//	2  lz4      (package compressor/lz4)
//
// IDs 3 to 63 are reserved for compressors this module may add; a user's own
// compressor should take an ID from 64 to 255. Package compressor/builtin
// chooses among the module's compressors by name and builds a Registry of
// all of them.
//
// This package must never import the gossip core or any transport.
package compressor

import "errors"

// Compressor compresses payloads.
type Compressor interface {
	// ID is the compressor's wire identifier. It never changes between
	// releases. ID 0 is the identity (no compression).
	ID() byte
	// Name is a short stable name such as "zstd".
	Name() string
	// Compress appends the compressed form of src to dst. It does not keep src.
	Compress(dst, src []byte) ([]byte, error)
	// Decompress appends the decompressed form of src to dst. It fails with an
	// error wrapping ErrTooLarge, without allocating past the limit, when the
	// output would exceed maxSize bytes. It does not keep src.
	Decompress(dst, src []byte, maxSize int) ([]byte, error)
}

// ErrTooLarge is returned (wrapped) when decompressed output would pass its limit.
var ErrTooLarge = errors.New("compressor: decompressed size exceeds the limit")

// ErrCorrupt is returned (wrapped) for input a compressor cannot read.
var ErrCorrupt = errors.New("compressor: corrupt input")
