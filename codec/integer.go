package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
)

// Errors wrapped by the integer codecs' Decode. Test for them with errors.Is.
var (
	// ErrTruncated means the input ended before the value did (this
	// includes empty input).
	ErrTruncated = errors.New("codec: truncated input")
	// ErrOverflow means the encoded value does not fit the target type.
	ErrOverflow = errors.New("codec: value out of range")
	// ErrMalformed means the input is not a valid encoding: bytes follow
	// the value, or the varint is not in its shortest form.
	ErrMalformed = errors.New("codec: malformed input")
)

// Integer is the set of integer types that have a built-in codec. uintptr is
// left out on purpose: its values are not portable between machines.
type Integer interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64 |
		~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64
}

// IntegerOf returns a Codec for the integer type T, named types included.
//
// Signed types are encoded as a zig-zag varint (binary.AppendVarint) and
// unsigned types as a varint (binary.AppendUvarint), so the encoding of a
// value does not depend on the width of its type. Decode takes the whole of
// src as one varint in its shortest form, and fails with an error wrapping
// ErrTruncated, ErrOverflow or ErrMalformed on empty or cut-off input, on a
// value that does not fit T (300 into a uint8, -1 into any unsigned type), on
// trailing bytes and on over-long encodings. Since only the shortest form is
// accepted, every value has exactly one encoding.
func IntegerOf[T Integer]() Codec[T] { return integerCodec[T]{} }

// Int returns the Codec for int; see IntegerOf for the encoding.
func Int() Codec[int] { return integerCodec[int]{} }

// Int8 returns the Codec for int8; see IntegerOf for the encoding.
func Int8() Codec[int8] { return integerCodec[int8]{} }

// Int16 returns the Codec for int16; see IntegerOf for the encoding.
func Int16() Codec[int16] { return integerCodec[int16]{} }

// Int32 returns the Codec for int32; see IntegerOf for the encoding.
func Int32() Codec[int32] { return integerCodec[int32]{} }

// Int64 returns the Codec for int64; see IntegerOf for the encoding.
func Int64() Codec[int64] { return integerCodec[int64]{} }

// Uint returns the Codec for uint; see IntegerOf for the encoding.
func Uint() Codec[uint] { return integerCodec[uint]{} }

// Uint8 returns the Codec for uint8; see IntegerOf for the encoding.
func Uint8() Codec[uint8] { return integerCodec[uint8]{} }

// Uint16 returns the Codec for uint16; see IntegerOf for the encoding.
func Uint16() Codec[uint16] { return integerCodec[uint16]{} }

// Uint32 returns the Codec for uint32; see IntegerOf for the encoding.
func Uint32() Codec[uint32] { return integerCodec[uint32]{} }

// Uint64 returns the Codec for uint64; see IntegerOf for the encoding.
func Uint64() Codec[uint64] { return integerCodec[uint64]{} }

type integerCodec[T Integer] struct{}

// signed reports whether T is a signed type.
func signed[T Integer]() bool {
	var v T
	v--
	return v < 0
}

func (integerCodec[T]) Append(dst []byte, v T) ([]byte, error) {
	if signed[T]() {
		return binary.AppendVarint(dst, int64(v)), nil
	}
	return binary.AppendUvarint(dst, uint64(v)), nil
}

func (integerCodec[T]) Decode(src []byte) (T, error) {
	if signed[T]() {
		x, err := decodeVarint(src)
		if err != nil {
			return 0, decodeErr[T](err)
		}
		if v := T(x); int64(v) == x {
			return v, nil
		}
		return 0, overflowErr[T](x)
	}
	x, err := decodeUvarint(src)
	if err != nil {
		return 0, decodeErr[T](err)
	}
	if v := T(x); uint64(v) == x {
		return v, nil
	}
	return 0, overflowErr[T](x)
}

// decodeErr names the type being decoded in a varint error.
func decodeErr[T any](err *varintError) error {
	return err.in(reflect.TypeFor[T]().String())
}

func overflowErr[T any](x any) error {
	return fmt.Errorf("%w: decoding %s: %d does not fit", ErrOverflow, reflect.TypeFor[T](), x)
}

// varintError is a varint decoding failure, not yet told the type.
type varintError struct {
	kind   error // ErrTruncated, ErrOverflow or ErrMalformed
	detail string
}

func (e *varintError) in(typ string) error {
	return fmt.Errorf("%w: decoding %s: %s", e.kind, typ, e.detail)
}

// decodeUvarint reads src as exactly one shortest-form unsigned varint.
func decodeUvarint(src []byte) (uint64, *varintError) {
	x, n := binary.Uvarint(src)
	switch {
	case n == 0 && len(src) == 0:
		return 0, &varintError{ErrTruncated, "empty input"}
	case n == 0:
		return 0, &varintError{ErrTruncated, fmt.Sprintf("varint cut off after %d bytes", len(src))}
	case n < 0:
		return 0, &varintError{ErrOverflow, "varint exceeds 64 bits"}
	case n > 1 && src[n-1] == 0:
		return 0, &varintError{ErrMalformed, "varint not in shortest form"}
	case n != len(src):
		return 0, &varintError{ErrMalformed, fmt.Sprintf("%d trailing bytes after varint", len(src)-n)}
	}
	return x, nil
}

// decodeVarint reads src as exactly one shortest-form zig-zag varint.
func decodeVarint(src []byte) (int64, *varintError) {
	ux, err := decodeUvarint(src)
	if err != nil {
		return 0, err
	}
	// Zig-zag, as in binary.Varint.
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x, nil
}
