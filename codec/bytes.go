package codec

// Bytes returns a Codec for []byte. The encoding is the bytes themselves, so
// the whole of src is the value. Decode returns a copy of src; an empty or nil
// src decodes to a nil slice.
func Bytes() Codec[[]byte] { return bytesCodec{} }

type bytesCodec struct{}

func (bytesCodec) Append(dst []byte, v []byte) ([]byte, error) {
	return append(dst, v...), nil
}

func (bytesCodec) Decode(src []byte) ([]byte, error) {
	if len(src) == 0 {
		return nil, nil
	}
	return append([]byte(nil), src...), nil
}

// String returns a Codec for string. The encoding is the string's bytes, so
// the whole of src is the value. Bytes that are not valid UTF-8 are kept as
// they are, as a Go string may hold any bytes.
func String() Codec[string] { return stringCodec{} }

type stringCodec struct{}

func (stringCodec) Append(dst []byte, v string) ([]byte, error) {
	return append(dst, v...), nil
}

func (stringCodec) Decode(src []byte) (string, error) {
	return string(src), nil
}

// StringOf returns a Codec for a string type T, such as a named
// `type NodeID string`, with the same encoding as String.
func StringOf[T ~string]() Codec[T] { return stringOfCodec[T]{} }

type stringOfCodec[T ~string] struct{}

func (stringOfCodec[T]) Append(dst []byte, v T) ([]byte, error) {
	return append(dst, v...), nil
}

func (stringOfCodec[T]) Decode(src []byte) (T, error) {
	return T(src), nil
}
