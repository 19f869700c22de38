// Package protobuf is a Codec for protocol buffer messages, on
// google.golang.org/protobuf.
//
// The codec is generic over the message type, usually a pointer to a
// generated struct (Codec[*pb.Event]). Append uses the binary wire format
// with deterministic map order, so equal messages encode to equal bytes in
// one build. Decode unmarshals into a fresh message: bytes and string fields
// are copies, so the message never aliases src.
//
// This package must never import the gossip core or any transport.
package protobuf

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/plumtree-go/plumtree/codec"
)

// Codec encodes and decodes messages of type T. Make one with New or
// NewFunc; it is safe for concurrent use.
type Codec[T proto.Message] struct {
	newMsg func() T
	name   string
}

var _ codec.Codec[proto.Message] = (*Codec[proto.Message])(nil)

// New returns a Codec for T, which makes fresh messages from T's message
// descriptor. T must be a concrete generated message type (such as
// *pb.Event); for an interface type or a dynamic message use NewFunc.
func New[T proto.Message]() (_ *Codec[T], err error) {
	var zero T
	if any(zero) == nil {
		return nil, fmt.Errorf("protobuf: New[%T]: no message type to make; use NewFunc", zero)
	}
	// A nil message of a type without a static descriptor (a dynamicpb
	// message) panics when asked for its type.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("protobuf: New[%T]: the type has no descriptor of its own (%v); use NewFunc", zero, r)
		}
	}()
	mt := zero.ProtoReflect().Type()
	if _, ok := mt.New().Interface().(T); !ok {
		return nil, fmt.Errorf("protobuf: New[%T]: the descriptor makes %T; use NewFunc", zero, mt.New().Interface())
	}
	name := string(mt.Descriptor().FullName())
	return &Codec[T]{newMsg: func() T { return mt.New().Interface().(T) }, name: name}, nil
}

// NewFunc returns a Codec for T that makes each decoded message with newMsg,
// which must return a fresh, empty, non-nil message every call (a dynamicpb
// message, for instance).
func NewFunc[T proto.Message](newMsg func() T) (*Codec[T], error) {
	if newMsg == nil {
		return nil, errors.New("protobuf: NewFunc: nil function")
	}
	m := newMsg()
	if any(m) == nil || !m.ProtoReflect().IsValid() {
		return nil, fmt.Errorf("protobuf: NewFunc: the function returns a nil message (%T)", m)
	}
	return &Codec[T]{newMsg: newMsg, name: string(m.ProtoReflect().Descriptor().FullName())}, nil
}

// Append appends the wire encoding of m to dst. A nil message encodes as an
// empty one. On error dst is returned as it was.
func (c *Codec[T]) Append(dst []byte, m T) ([]byte, error) {
	out, err := proto.MarshalOptions{Deterministic: true}.MarshalAppend(dst, m)
	if err != nil {
		return dst, fmt.Errorf("protobuf: encoding %s: %w", c.name, err)
	}
	return out, nil
}

// Decode unmarshals src into a fresh message. Input that is not a valid
// encoding of the message gives an error wrapping codec.ErrMalformed. The
// message keeps no reference to src.
func (c *Codec[T]) Decode(src []byte) (T, error) {
	m := c.newMsg()
	if err := proto.Unmarshal(src, m); err != nil {
		var zero T
		return zero, fmt.Errorf("%w: protobuf: decoding %s: %w", codec.ErrMalformed, c.name, err)
	}
	return m, nil
}
