package compressor

import "fmt"

// Identity returns the compressor that does not compress: ID 0, name
// "identity". Compress appends src to dst; Decompress does the same, but
// fails with an error wrapping ErrTooLarge when len(src) > maxSize (so a
// negative maxSize refuses everything).
func Identity() Compressor { return identity{} }

// IdentityName is the Name of Identity.
const IdentityName = "identity"

type identity struct{}

func (identity) ID() byte     { return 0 }
func (identity) Name() string { return IdentityName }

func (identity) Compress(dst, src []byte) ([]byte, error) {
	return append(dst, src...), nil
}

func (identity) Decompress(dst, src []byte, maxSize int) ([]byte, error) {
	if len(src) > maxSize {
		return dst, fmt.Errorf("%w: identity: %d bytes, limit %d", ErrTooLarge, len(src), maxSize)
	}
	return append(dst, src...), nil
}
