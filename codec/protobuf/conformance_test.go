package protobuf_test

import (
	"bytes"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/plumtree-go/plumtree/codec"
	"github.com/plumtree-go/plumtree/codec/protobuf"
	"github.com/plumtree-go/plumtree/conformance"
)

func TestConformanceStruct(t *testing.T) {
	samples := []*structpb.Struct{
		{},
		mustStruct(t, map[string]any{"id": 1.0, "name": "node-1"}),
		mustStruct(t, map[string]any{
			"text":   strings.Repeat("plumtree ", 2000),
			"nested": map[string]any{"ok": true, "list": []any{1.0, "two", nil, map[string]any{"x": -3.5}}},
			"empty":  map[string]any{},
			"utf8":   "世界",
		}),
	}
	conformance.TestCodec(t, func() codec.Codec[*structpb.Struct] { return structCodec(t) }, samples,
		conformance.EqualFunc(func(a, b *structpb.Struct) bool { return proto.Equal(a, b) }))
}

func TestConformanceBytes(t *testing.T) {
	samples := []*wrapperspb.BytesValue{
		wrapperspb.Bytes(nil), wrapperspb.Bytes([]byte{0}), wrapperspb.Bytes(bytes.Repeat([]byte{1, 2, 3}, 10_000)),
	}
	conformance.TestCodec(t, func() codec.Codec[*wrapperspb.BytesValue] {
		c, err := protobuf.New[*wrapperspb.BytesValue]()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}, samples, conformance.EqualFunc(func(a, b *wrapperspb.BytesValue) bool { return proto.Equal(a, b) }))
}

func TestConformanceDynamic(t *testing.T) {
	md := eventType(t)
	event := func(name string, body []byte, ids ...int64) *dynamicpb.Message {
		m := dynamicpb.NewMessage(md)
		m.Set(md.Fields().ByName("name"), protoreflect.ValueOfString(name))
		m.Set(md.Fields().ByName("body"), protoreflect.ValueOfBytes(body))
		l := m.Mutable(md.Fields().ByName("ids")).List()
		for _, id := range ids {
			l.Append(protoreflect.ValueOfInt64(id))
		}
		return m
	}
	parent := event("parent", []byte("p"), 1)
	parent.Set(md.Fields().ByName("child"), protoreflect.ValueOfMessage(event("child", bytes.Repeat([]byte("c"), 5000), -1, 1<<40)))
	samples := []*dynamicpb.Message{dynamicpb.NewMessage(md), event("a", nil), event("b", []byte{0, 1, 2}, 1, 2, 3), parent}
	conformance.TestCodec(t, func() codec.Codec[*dynamicpb.Message] {
		c, err := protobuf.NewFunc(func() *dynamicpb.Message { return dynamicpb.NewMessage(md) })
		if err != nil {
			t.Fatal(err)
		}
		return c
	}, samples, conformance.EqualFunc(func(a, b *dynamicpb.Message) bool { return proto.Equal(a, b) }))
}
