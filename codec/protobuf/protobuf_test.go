package protobuf_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/plumtree-go/plumtree/codec"
	"github.com/plumtree-go/plumtree/codec/protobuf"
)

func mustStruct(t testing.TB, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func structCodec(t testing.TB) codec.Codec[*structpb.Struct] {
	t.Helper()
	c, err := protobuf.New[*structpb.Struct]()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// eventType builds, without protoc, the descriptor of
//
//	message Event { string name = 1; bytes body = 2; repeated int64 ids = 3; Event child = 4; }
func eventType(t testing.TB) protoreflect.MessageDescriptor {
	t.Helper()
	label := func(l descriptorpb.FieldDescriptorProto_Label) *descriptorpb.FieldDescriptorProto_Label { return &l }
	typ := func(ty descriptorpb.FieldDescriptorProto_Type) *descriptorpb.FieldDescriptorProto_Type { return &ty }
	opt := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL
	fd := &descriptorpb.FileDescriptorProto{
		Name:    proto.String("event.proto"),
		Package: proto.String("plumtree.test"),
		Syntax:  proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{{
			Name: proto.String("Event"),
			Field: []*descriptorpb.FieldDescriptorProto{
				{Name: proto.String("name"), Number: proto.Int32(1), Label: label(opt), Type: typ(descriptorpb.FieldDescriptorProto_TYPE_STRING), JsonName: proto.String("name")},
				{Name: proto.String("body"), Number: proto.Int32(2), Label: label(opt), Type: typ(descriptorpb.FieldDescriptorProto_TYPE_BYTES), JsonName: proto.String("body")},
				{Name: proto.String("ids"), Number: proto.Int32(3), Label: label(descriptorpb.FieldDescriptorProto_LABEL_REPEATED), Type: typ(descriptorpb.FieldDescriptorProto_TYPE_INT64), JsonName: proto.String("ids")},
				{Name: proto.String("child"), Number: proto.Int32(4), Label: label(opt), Type: typ(descriptorpb.FieldDescriptorProto_TYPE_MESSAGE), TypeName: proto.String(".plumtree.test.Event"), JsonName: proto.String("child")},
			},
		}},
	}
	f, err := protodesc.NewFile(fd, nil)
	if err != nil {
		t.Fatal(err)
	}
	return f.Messages().ByName("Event")
}

func TestConstructors(t *testing.T) {
	if _, err := protobuf.New[proto.Message](); err == nil {
		t.Error("New[proto.Message] made a codec with no message type")
	}
	if _, err := protobuf.New[*dynamicpb.Message](); err == nil {
		t.Error("New[*dynamicpb.Message] made a codec with no descriptor")
	}
	if _, err := protobuf.NewFunc[*structpb.Struct](nil); err == nil {
		t.Error("NewFunc(nil) made a codec")
	}
	if _, err := protobuf.NewFunc(func() *structpb.Struct { return nil }); err == nil {
		t.Error("NewFunc of a function returning nil made a codec")
	}
	// An interface type works through NewFunc.
	c, err := protobuf.NewFunc(func() proto.Message { return new(wrapperspb.StringValue) })
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Append([]byte("pre"), wrapperspb.String("hi"))
	if err != nil || !bytes.HasPrefix(b, []byte("pre")) {
		t.Fatalf("Append: %q, %v", b, err)
	}
	m, err := c.Decode(b[3:])
	if err != nil || m.(*wrapperspb.StringValue).GetValue() != "hi" {
		t.Fatalf("Decode: %v, %v", m, err)
	}
}

func TestDecodeErrors(t *testing.T) {
	c := structCodec(t)
	good, err := c.Append(nil, mustStruct(t, map[string]any{"k": "value"}))
	if err != nil {
		t.Fatal(err)
	}
	for name, src := range map[string][]byte{
		"truncated":       good[:len(good)-2],
		"bad wire type":   {0x0f},
		"length too long": {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"field number 0":  {0x00, 0x01},
		"invalid utf8":    {0x0a, 0x07, 0x0a, 0x01, 0xff, 0x12, 0x02, 0x08, 0x00},
	} {
		t.Run(name, func(t *testing.T) {
			v, err := c.Decode(src)
			if !errors.Is(err, codec.ErrMalformed) || v != nil {
				t.Fatalf("Decode(%x) = %v, %v; want nil and an error wrapping codec.ErrMalformed", src, v, err)
			}
			if !strings.Contains(err.Error(), "google.protobuf.Struct") {
				t.Errorf("error %q does not name the message type", err)
			}
		})
	}
}

// Decoded bytes and strings are copies: the message does not alias src.
func TestDecodeCopies(t *testing.T) {
	c, err := protobuf.New[*wrapperspb.BytesValue]()
	if err != nil {
		t.Fatal(err)
	}
	want := []byte("payload that must survive")
	src, err := c.Append(nil, wrapperspb.Bytes(want))
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.Decode(src)
	if err != nil {
		t.Fatal(err)
	}
	for i := range src {
		src[i] = 0xAA
	}
	if !bytes.Equal(m.GetValue(), want) {
		t.Fatalf("decoded value changed with its input: %q", m.GetValue())
	}
}

// Maps encode in a deterministic order: equal messages, equal bytes.
func TestDeterministic(t *testing.T) {
	c := structCodec(t)
	fields := map[string]any{}
	for i := range 50 {
		fields[strings.Repeat("k", i+1)] = float64(i)
	}
	first, err := c.Append(nil, mustStruct(t, fields))
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		again, err := c.Append(nil, mustStruct(t, fields))
		if err != nil || !bytes.Equal(first, again) {
			t.Fatalf("the same message encoded differently (%v)", err)
		}
	}
}
