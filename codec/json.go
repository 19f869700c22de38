package codec

import (
	"encoding/json"
	"fmt"
	"reflect"
)

// JSON returns a Codec for T that uses encoding/json. Append appends the
// output of json.Marshal. Decode accepts exactly one JSON value (surrounding
// white space allowed) and, like json.Unmarshal, copies what it keeps, so the
// result never aliases src.
func JSON[T any]() Codec[T] { return jsonCodec[T]{} }

type jsonCodec[T any] struct{}

func (jsonCodec[T]) Append(dst []byte, v T) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return dst, fmt.Errorf("codec: json encode %s: %w", reflect.TypeFor[T](), err)
	}
	return append(dst, b...), nil
}

func (jsonCodec[T]) Decode(src []byte) (T, error) {
	var v T
	if err := json.Unmarshal(src, &v); err != nil {
		var zero T
		return zero, fmt.Errorf("codec: json decode %s: %w", reflect.TypeFor[T](), err)
	}
	return v, nil
}
