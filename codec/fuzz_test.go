package codec_test

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/plumtree-go/plumtree/codec"
)

// fuzzCanonical decodes data with c; when that succeeds, encoding the value
// again must give back data exactly (the codec has one encoding per value).
func fuzzCanonical[T comparable](t *testing.T, c codec.Codec[T], data []byte) {
	t.Helper()
	v, err := c.Decode(data)
	if err != nil {
		if !errors.Is(err, codec.ErrTruncated) && !errors.Is(err, codec.ErrOverflow) && !errors.Is(err, codec.ErrMalformed) {
			t.Fatalf("Decode(%x) (%T) error %v wraps none of the codec errors", data, v, err)
		}
		return
	}
	out, err := c.Append([]byte{0xAA}, v)
	if err != nil {
		t.Fatalf("Append(%v): %v", v, err)
	}
	if out[0] != 0xAA || !bytes.Equal(out[1:], data) {
		t.Fatalf("%T: Decode(%x) = %v, which encodes as %x", v, data, v, out)
	}
}

func FuzzIntegerDecode(f *testing.F) {
	for _, seed := range [][]byte{
		nil, {0}, {1}, {0x7f}, {0x80}, {0x80, 0x00}, {0xac, 0x02}, {0x01, 0x00},
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02},
		bytes.Repeat([]byte{0x80}, 12),
	} {
		f.Add(seed)
	}
	port, err := codec.ForID[Port]()
	if err != nil {
		f.Fatal(err)
	}
	shard, err := codec.ForID[Shard]()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzCanonical(t, codec.Int(), data)
		fuzzCanonical(t, codec.Int8(), data)
		fuzzCanonical(t, codec.Int16(), data)
		fuzzCanonical(t, codec.Int32(), data)
		fuzzCanonical(t, codec.Int64(), data)
		fuzzCanonical(t, codec.Uint(), data)
		fuzzCanonical(t, codec.Uint8(), data)
		fuzzCanonical(t, codec.Uint16(), data)
		fuzzCanonical(t, codec.Uint32(), data)
		fuzzCanonical(t, codec.Uint64(), data)
		fuzzCanonical(t, port, data)
		fuzzCanonical(t, shard, data)

		// A narrower type accepts a subset of what a wider one does, with
		// the same value.
		if v, err := codec.Uint8().Decode(data); err == nil {
			if w, err := codec.Uint64().Decode(data); err != nil || uint64(v) != w {
				t.Fatalf("Uint8 decodes %x as %d, Uint64 as %d, %v", data, v, w, err)
			}
		}
		if v, err := shard.Decode(data); err == nil {
			if w, err := codec.Int64().Decode(data); err != nil || int64(v) != w {
				t.Fatalf("Shard decodes %x as %d, Int64 as %d, %v", data, v, w, err)
			}
		}
	})
}

func FuzzStringDecode(f *testing.F) {
	for _, seed := range []string{"", "a", "node-1", "\xff\x00", "世界"} {
		f.Add([]byte(seed))
	}
	nodeID, err := codec.ForID[NodeID]()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := codec.String().Decode(data)
		if err != nil {
			t.Fatalf("String().Decode(%q): %v", data, err)
		}
		fuzzCanonical(t, codec.String(), data)
		fuzzCanonical(t, codec.StringOf[NodeID](), data)
		fuzzCanonical(t, nodeID, data)
		if s != string(data) {
			t.Fatalf("String().Decode(%q) = %q", data, s)
		}
	})
}

func FuzzBytesDecode(f *testing.F) {
	f.Add([]byte(nil))
	f.Add([]byte("payload"))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := codec.Bytes().Decode(data)
		if err != nil {
			t.Fatalf("Bytes().Decode(%x): %v", data, err)
		}
		if !bytes.Equal(b, data) {
			t.Fatalf("Bytes().Decode(%x) = %x", data, b)
		}
		if len(b) > 0 && &b[0] == &data[0] {
			t.Fatal("Bytes().Decode returned its input")
		}
		out, err := codec.Bytes().Append([]byte{1}, b)
		if err != nil || !bytes.Equal(out[1:], data) || out[0] != 1 {
			t.Fatalf("Append(%x) = %x, %v", b, out, err)
		}
	})
}

type fuzzMsg struct {
	Name string            `json:"name"`
	N    int64             `json:"n"`
	F    float64           `json:"f"`
	Data []byte            `json:"data"`
	Tags map[string]string `json:"tags"`
	Next *fuzzMsg          `json:"next"`
	Any  any               `json:"any"`
}

func FuzzJSONDecode(f *testing.F) {
	for _, seed := range []string{
		`{}`, `null`, `{"name":"a","n":-3,"f":1.5,"data":"AQI=","tags":{"k":"v"}}`,
		`{"next":{"next":{"name":"deep"}}}`, `{"any":[1,"x",{"y":null}]}`, `{"n":1e400}`, `{"data":"!!"}`, `[`,
	} {
		f.Add([]byte(seed))
	}
	c := codec.JSON[fuzzMsg]()
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := c.Decode(data)
		if err != nil {
			return
		}
		out, err := c.Append(nil, v)
		if err != nil {
			t.Fatalf("Append(%+v): %v", v, err)
		}
		w, err := c.Decode(out)
		if err != nil {
			t.Fatalf("Decode(Append(%+v)) = Decode(%s): %v", v, out, err)
		}
		if !reflect.DeepEqual(normalize(t, v), normalize(t, w)) {
			t.Fatalf("round trip changed %+v into %+v", v, w)
		}
	})
}

// normalize puts v through one more JSON round trip so that nil and empty
// collections, which JSON does not tell apart in every position, compare
// equal.
func normalize(t *testing.T, v fuzzMsg) string {
	t.Helper()
	b, err := codec.JSON[fuzzMsg]().Append(nil, v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
