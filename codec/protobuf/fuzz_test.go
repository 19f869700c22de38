package protobuf_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/plumtree-go/plumtree/codec"
)

// fuzzMaxInput caps the input of one fuzzed Decode.
const fuzzMaxInput = 64 << 10

// FuzzDecode decodes arbitrary bytes as a google.protobuf.Struct (maps,
// lists, nesting, strings): an error must wrap codec.ErrMalformed, nothing
// may panic, and a decoded message must encode and decode to an equal one.
func FuzzDecode(f *testing.F) {
	c := structCodec(f)
	for _, m := range []map[string]any{
		{},
		{"id": 1.0, "name": "node-1", "ok": true, "none": nil},
		{"nested": map[string]any{"list": []any{1.0, "two", map[string]any{"x": -3.5}}}, "text": strings.Repeat("gossip ", 40)},
	} {
		b, err := c.Append(nil, mustStruct(f, m))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add(bytes.Repeat([]byte{0x0a, 0x02, 0x12, 0x00}, 10))
	f.Fuzz(func(t *testing.T, src []byte) {
		if len(src) > fuzzMaxInput {
			return
		}
		in := bytes.Clone(src)
		m, err := c.Decode(src)
		if !bytes.Equal(in, src) {
			t.Fatal("Decode modified its input")
		}
		if err != nil {
			if !errors.Is(err, codec.ErrMalformed) {
				t.Fatalf("error %v does not wrap codec.ErrMalformed", err)
			}
			return
		}
		b, err := c.Append(nil, m)
		if err != nil {
			t.Fatalf("Append of a decoded message: %v", err)
		}
		again, err := c.Decode(b)
		if err != nil || !proto.Equal(m, again) {
			t.Fatalf("re-decoding %x: %v (equal %v)", b, err, proto.Equal(m, again))
		}
	})
}
