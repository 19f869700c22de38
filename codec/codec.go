// Package codec defines how values become bytes and back, and provides codecs
// for []byte, string, JSON and the identity types (string and integers).
// Package codec/protobuf has the codec for protocol buffer messages.
//
// A Codec appends the encoding of a value to a buffer and decodes a value from
// bytes. Append must leave dst[:len(dst)] untouched and may grow it. Decode
// must not keep src after it returns (a decoded []byte is a copy), and must
// return an error, never panic, on input it cannot read.
//
// This package must never import the gossip core or any transport.
package codec

// Codec encodes and decodes values of type T.
type Codec[T any] interface {
	// Append appends the encoding of v to dst and returns the extended buffer.
	Append(dst []byte, v T) ([]byte, error)
	// Decode decodes a value from src. It does not keep src.
	Decode(src []byte) (T, error)
}
