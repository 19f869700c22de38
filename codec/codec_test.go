package codec_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/plumtree-go/plumtree/codec"
)

type (
	NodeID   string
	Port     uint16
	Shard    int8
	BigID    int64
	Unsigned uint
	Pair     struct{ A, B int }
	Ptr      *int
	Uptr     uintptr
)

// roundTrip encodes v after a prefix, checks the prefix is intact, decodes
// what was appended and returns it.
func roundTrip[T any](t *testing.T, c codec.Codec[T], v T) T {
	t.Helper()
	prefix := []byte("prefix:")
	dst := make([]byte, len(prefix), 64)
	copy(dst, prefix)
	out, err := c.Append(dst, v)
	if err != nil {
		t.Fatalf("Append(%v): %v", v, err)
	}
	if !bytes.Equal(out[:len(prefix)], prefix) {
		t.Fatalf("Append(%v) disturbed the prefix: %q", v, out[:len(prefix)])
	}
	got, err := c.Decode(out[len(prefix):])
	if err != nil {
		t.Fatalf("Decode(Append(%v)) = %x: %v", v, out[len(prefix):], err)
	}
	return got
}

func checkRoundTrips[T comparable](t *testing.T, c codec.Codec[T], vals ...T) {
	t.Helper()
	for _, v := range vals {
		if got := roundTrip(t, c, v); got != v {
			t.Errorf("round trip of %v (%T) gave %v", v, v, got)
		}
	}
}

func TestRoundTrips(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"String", func(t *testing.T) {
			checkRoundTrips(t, codec.String(), "", "a", "héllo, 世界", "\x00\xff not utf-8", strings.Repeat("x", 1000))
		}},
		{"StringOf", func(t *testing.T) { checkRoundTrips(t, codec.StringOf[NodeID](), "", "node-1") }},
		{"Int", func(t *testing.T) { checkRoundTrips(t, codec.Int(), 0, 1, -1, math.MaxInt, math.MinInt) }},
		{"Int8", func(t *testing.T) { checkRoundTrips(t, codec.Int8(), 0, 1, -1, math.MaxInt8, math.MinInt8) }},
		{"Int16", func(t *testing.T) { checkRoundTrips(t, codec.Int16(), 0, -300, math.MaxInt16, math.MinInt16) }},
		{"Int32", func(t *testing.T) { checkRoundTrips(t, codec.Int32(), 0, -70000, math.MaxInt32, math.MinInt32) }},
		{"Int64", func(t *testing.T) {
			checkRoundTrips(t, codec.Int64(), 0, 63, -64, 64, -65, math.MaxInt64, math.MinInt64)
		}},
		{"Uint", func(t *testing.T) { checkRoundTrips(t, codec.Uint(), 0, 1, math.MaxUint) }},
		{"Uint8", func(t *testing.T) { checkRoundTrips(t, codec.Uint8(), 0, 127, 128, math.MaxUint8) }},
		{"Uint16", func(t *testing.T) { checkRoundTrips(t, codec.Uint16(), 0, 300, math.MaxUint16) }},
		{"Uint32", func(t *testing.T) { checkRoundTrips(t, codec.Uint32(), 0, 1<<31, math.MaxUint32) }},
		{"Uint64", func(t *testing.T) { checkRoundTrips(t, codec.Uint64(), 0, 1<<63, math.MaxUint64) }},
		{"IntegerOf named", func(t *testing.T) {
			checkRoundTrips(t, codec.IntegerOf[Port](), 0, 443, math.MaxUint16)
			checkRoundTrips(t, codec.IntegerOf[Shard](), 0, math.MinInt8, math.MaxInt8)
		}},
		{"Bytes", func(t *testing.T) {
			for _, v := range [][]byte{nil, {}, {0}, []byte("payload"), bytes.Repeat([]byte{0xff}, 300)} {
				if got := roundTrip(t, codec.Bytes(), v); !bytes.Equal(got, v) {
					t.Errorf("round trip of %x gave %x", v, got)
				}
			}
		}},
		{"JSON struct", func(t *testing.T) {
			type msg struct {
				Name string            `json:"name"`
				N    int               `json:"n"`
				Data []byte            `json:"data"`
				Tags map[string]string `json:"tags"`
			}
			for _, v := range []msg{{}, {Name: "a", N: -5, Data: []byte{1, 2, 3}, Tags: map[string]string{"k": "v"}}} {
				if got := roundTrip(t, codec.JSON[msg](), v); !reflect.DeepEqual(got, v) {
					t.Errorf("round trip of %+v gave %+v", v, got)
				}
			}
		}},
		{"JSON scalars", func(t *testing.T) {
			checkRoundTrips(t, codec.JSON[string](), "", "quote\" <html>")
			checkRoundTrips(t, codec.JSON[float64](), 0, 1.5, -1e300)
			checkRoundTrips(t, codec.JSON[bool](), true, false)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}

// TestForID checks that ForID finds a codec for every string and integer
// kind, named or not, and that it encodes like the matching built-in codec.
func TestForID(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"string", func(t *testing.T) { forIDCase(t, codec.String(), "", "n1", "\xff") }},
		{"NodeID", func(t *testing.T) { forIDCase[NodeID](t, codec.StringOf[NodeID](), "", "node-7") }},
		{"int", func(t *testing.T) { forIDCase(t, codec.Int(), 0, -1, math.MinInt, math.MaxInt) }},
		{"int8", func(t *testing.T) { forIDCase(t, codec.Int8(), math.MinInt8, math.MaxInt8) }},
		{"int16", func(t *testing.T) { forIDCase(t, codec.Int16(), math.MinInt16, math.MaxInt16) }},
		{"int32", func(t *testing.T) { forIDCase(t, codec.Int32(), math.MinInt32, math.MaxInt32) }},
		{"int64", func(t *testing.T) { forIDCase(t, codec.Int64(), math.MinInt64, 0, math.MaxInt64) }},
		{"uint", func(t *testing.T) { forIDCase(t, codec.Uint(), 0, math.MaxUint) }},
		{"uint8", func(t *testing.T) { forIDCase(t, codec.Uint8(), 0, math.MaxUint8) }},
		{"uint16", func(t *testing.T) { forIDCase(t, codec.Uint16(), 0, math.MaxUint16) }},
		{"uint32", func(t *testing.T) { forIDCase(t, codec.Uint32(), 0, math.MaxUint32) }},
		{"uint64", func(t *testing.T) { forIDCase(t, codec.Uint64(), 0, math.MaxUint64) }},
		{"Port", func(t *testing.T) { forIDCase[Port](t, codec.IntegerOf[Port](), 0, 80, math.MaxUint16) }},
		{"Shard", func(t *testing.T) { forIDCase[Shard](t, codec.IntegerOf[Shard](), math.MinInt8, -1, math.MaxInt8) }},
		{"BigID", func(t *testing.T) { forIDCase[BigID](t, codec.IntegerOf[BigID](), math.MinInt64, math.MaxInt64) }},
		{"Unsigned", func(t *testing.T) { forIDCase[Unsigned](t, codec.IntegerOf[Unsigned](), 0, math.MaxUint) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}

// forIDCase checks ForID[ID] round-trips vals and produces the same bytes as
// want, the codec picked by hand.
func forIDCase[ID comparable](t *testing.T, want codec.Codec[ID], vals ...ID) {
	t.Helper()
	c, err := codec.ForID[ID]()
	if err != nil {
		t.Fatalf("ForID: %v", err)
	}
	checkRoundTrips(t, c, vals...)
	for _, v := range vals {
		got, err1 := c.Append(nil, v)
		exp, err2 := want.Append(nil, v)
		if err1 != nil || err2 != nil || !bytes.Equal(got, exp) {
			t.Errorf("ForID encodes %v as %x (%v); built-in codec gives %x (%v)", v, got, err1, exp, err2)
		}
	}
}

func TestForIDNoCodec(t *testing.T) {
	tests := []struct {
		name    string
		forID   func() error
		typeStr string
		kind    string
	}{
		{"struct", func() error { _, err := codec.ForID[Pair](); return err }, "codec_test.Pair", "struct"},
		{"anonymous struct", func() error { _, err := codec.ForID[struct{ X int }](); return err }, "struct { X int }", "struct"},
		{"uintptr", func() error { _, err := codec.ForID[uintptr](); return err }, "uintptr", "uintptr"},
		{"named uintptr", func() error { _, err := codec.ForID[Uptr](); return err }, "codec_test.Uptr", "uintptr"},
		{"pointer", func() error { _, err := codec.ForID[Ptr](); return err }, "codec_test.Ptr", "ptr"},
		{"interface", func() error { _, err := codec.ForID[any](); return err }, "interface {}", "interface"},
		{"float", func() error { _, err := codec.ForID[float64](); return err }, "float64", "float64"},
		{"bool", func() error { _, err := codec.ForID[bool](); return err }, "bool", "bool"},
		{"array", func() error { _, err := codec.ForID[[4]byte](); return err }, "[4]uint8", "array"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.forID()
			if err == nil {
				t.Fatal("ForID returned no error")
			}
			want := "codec: no built-in codec for ID type " + tt.typeStr + " (" + tt.kind + "); pass one explicitly"
			if err.Error() != want {
				t.Errorf("error = %q, want %q", err, want)
			}
		})
	}
}

// TestDecodeDoesNotAlias mutates the input after Decode and checks the
// decoded value did not change.
func TestDecodeDoesNotAlias(t *testing.T) {
	type withBytes struct {
		S string
		B []byte
		R map[string][]byte
	}
	nodeIDCodec, err := codec.ForID[NodeID]()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		input  []byte
		decode func([]byte) (any, error)
	}{
		{"Bytes", []byte("abcdef"), func(b []byte) (any, error) { return codec.Bytes().Decode(b) }},
		{"String", []byte("abcdef"), func(b []byte) (any, error) { return codec.String().Decode(b) }},
		{"StringOf", []byte("abcdef"), func(b []byte) (any, error) { return codec.StringOf[NodeID]().Decode(b) }},
		{"ForID NodeID", []byte("abcdef"), func(b []byte) (any, error) { return nodeIDCodec.Decode(b) }},
		{"JSON string", []byte(`"abcdef"`), func(b []byte) (any, error) { return codec.JSON[string]().Decode(b) }},
		{"JSON struct", []byte(`{"S":"abc","B":"AQID","R":{"k":"BAU="}}`), func(b []byte) (any, error) {
			return codec.JSON[withBytes]().Decode(b)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.decode(tt.input)
			if err != nil {
				t.Fatal(err)
			}
			before := deepCopy(t, got)
			for i := range tt.input {
				tt.input[i] = '#'
			}
			if !reflect.DeepEqual(got, before) {
				t.Errorf("decoded value changed with its input: was %#v, now %#v", before, got)
			}
		})
	}
}

// deepCopy copies v through its string or JSON form.
func deepCopy(t *testing.T, v any) any {
	t.Helper()
	switch v := v.(type) {
	case []byte:
		return bytes.Clone(v)
	case string:
		return strings.Clone(v)
	case NodeID:
		return NodeID(strings.Clone(string(v)))
	}
	rv := reflect.New(reflect.TypeOf(v))
	b, err := codec.JSON[any]().Append(nil, v)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, rv.Interface()); err != nil {
		t.Fatal(err)
	}
	return rv.Elem().Interface()
}

func TestBytesDecodeEmpty(t *testing.T) {
	for _, in := range [][]byte{nil, {}} {
		got, err := codec.Bytes().Decode(in)
		if err != nil || len(got) != 0 {
			t.Errorf("Decode(%#v) = %#v, %v; want empty, nil", in, got, err)
		}
	}
	out, err := codec.Bytes().Append([]byte("p"), nil)
	if err != nil || string(out) != "p" {
		t.Errorf("Append(p, nil) = %q, %v", out, err)
	}
}

func TestIntegerDecodeErrors(t *testing.T) {
	named, err := codec.ForID[Port]()
	if err != nil {
		t.Fatal(err)
	}
	namedSigned, err := codec.ForID[Shard]()
	if err != nil {
		t.Fatal(err)
	}
	decoders := map[string]func([]byte) error{
		"uint8":  func(b []byte) error { _, err := codec.Uint8().Decode(b); return err },
		"int8":   func(b []byte) error { _, err := codec.Int8().Decode(b); return err },
		"uint16": func(b []byte) error { _, err := codec.Uint16().Decode(b); return err },
		"int32":  func(b []byte) error { _, err := codec.Int32().Decode(b); return err },
		"uint32": func(b []byte) error { _, err := codec.Uint32().Decode(b); return err },
		"int64":  func(b []byte) error { _, err := codec.Int64().Decode(b); return err },
		"uint64": func(b []byte) error { _, err := codec.Uint64().Decode(b); return err },
		"Port":   func(b []byte) error { _, err := named.Decode(b); return err },
		"Shard":  func(b []byte) error { _, err := namedSigned.Decode(b); return err },
	}
	tests := []struct {
		name    string
		decoder string
		input   []byte
		want    error
		msg     string
	}{
		{"empty", "uint64", nil, codec.ErrTruncated, "codec: truncated input: decoding uint64: empty input"},
		{"empty signed", "int64", []byte{}, codec.ErrTruncated, "empty input"},
		{"cut off", "uint64", []byte{0x80, 0x80}, codec.ErrTruncated, "codec: truncated input: decoding uint64: varint cut off after 2 bytes"},
		{"cut off named", "Port", []byte{0xff}, codec.ErrTruncated, "decoding codec_test.Port: varint cut off after 1 bytes"},
		{"300 into uint8", "uint8", []byte{0xac, 0x02}, codec.ErrOverflow, "codec: value out of range: decoding uint8: 300 does not fit"},
		{"128 into int8", "int8", encode(codec.Int64(), 128), codec.ErrOverflow, "decoding int8: 128 does not fit"},
		{"-129 into int8", "int8", encode(codec.Int64(), -129), codec.ErrOverflow, "-129 does not fit"},
		{"1<<16 into uint16", "uint16", encode(codec.Uint64(), 1<<16), codec.ErrOverflow, "65536 does not fit"},
		{"1<<31 into int32", "int32", encode(codec.Int64(), 1<<31), codec.ErrOverflow, "does not fit"},
		{"1<<32 into uint32", "uint32", encode(codec.Uint64(), 1<<32), codec.ErrOverflow, "does not fit"},
		{"70000 into Port", "Port", encode(codec.Uint64(), 70000), codec.ErrOverflow, "decoding codec_test.Port: 70000 does not fit"},
		{"200 into Shard", "Shard", encode(codec.Int64(), 200), codec.ErrOverflow, "decoding codec_test.Shard: 200 does not fit"},
		{"past 64 bits", "uint64", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}, codec.ErrOverflow, "varint exceeds 64 bits"},
		{"11 bytes", "int64", bytes.Repeat([]byte{0x80}, 11), codec.ErrOverflow, "varint exceeds 64 bits"},
		{"trailing", "uint64", []byte{0x01, 0x00}, codec.ErrMalformed, "codec: malformed input: decoding uint64: 1 trailing bytes after varint"},
		{"trailing named", "Port", []byte{0x01, 0x02, 0x03}, codec.ErrMalformed, "2 trailing bytes"},
		{"over-long zero", "uint64", []byte{0x80, 0x00}, codec.ErrMalformed, "not in shortest form"},
		{"over-long one", "int64", []byte{0x82, 0x80, 0x00}, codec.ErrMalformed, "not in shortest form"},
		{"over-long named", "Shard", []byte{0x81, 0x00}, codec.ErrMalformed, "not in shortest form"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := decoders[tt.decoder](tt.input)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Decode(%x) error = %v, want %v", tt.input, err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not contain %q", err, tt.msg)
			}
		})
	}
}

func encode[T any](c codec.Codec[T], v T) []byte {
	b, err := c.Append(nil, v)
	if err != nil {
		panic(err)
	}
	return b
}

func TestIntegerEncoding(t *testing.T) {
	// The wire form is fixed; these bytes must not change between releases.
	tests := []struct {
		name string
		got  []byte
		want []byte
	}{
		{"uint 0", encode(codec.Uint64(), 0), []byte{0x00}},
		{"uint 300", encode(codec.Uint16(), 300), []byte{0xac, 0x02}},
		{"int 0", encode(codec.Int64(), 0), []byte{0x00}},
		{"int -1", encode(codec.Int8(), -1), []byte{0x01}},
		{"int 1", encode(codec.Int(), 1), []byte{0x02}},
		{"int -65", encode(codec.Int32(), -65), []byte{0x81, 0x01}},
		{"uint max", encode(codec.Uint64(), math.MaxUint64), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{"width-independent", encode(codec.Uint8(), 200), encode(codec.Uint64(), 200)},
		{"width-independent signed", encode(codec.Int8(), -100), encode(codec.Int64(), -100)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !bytes.Equal(tt.got, tt.want) {
				t.Errorf("got %x, want %x", tt.got, tt.want)
			}
		})
	}
}

func TestJSONErrors(t *testing.T) {
	type target struct{ N int }
	tests := []struct {
		name  string
		input string
	}{
		{"empty", ""},
		{"garbage", "\x00\xff{"},
		{"truncated", `{"N":1`},
		{"trailing", `{"N":1} {}`},
		{"wrong type", `{"N":"x"}`},
		{"overflow", `{"N":1e400}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := codec.JSON[target]().Decode([]byte(tt.input))
			if err == nil {
				t.Fatalf("Decode(%q) = %+v, want an error", tt.input, got)
			}
			if !strings.HasPrefix(err.Error(), "codec: json decode codec_test.target: ") {
				t.Errorf("error %q lacks the codec prefix", err)
			}
		})
	}
	t.Run("encode", func(t *testing.T) {
		dst := []byte("keep")
		out, err := codec.JSON[chan int]().Append(dst, make(chan int))
		if err == nil {
			t.Fatal("Append of a channel gave no error")
		}
		if string(out) != "keep" {
			t.Errorf("failed Append returned %q, want dst unchanged", out)
		}
	})
}

// TestAllocs checks the predeclared-type fast paths do not allocate more
// than they must.
func TestAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	buf := make([]byte, 0, 64)
	strID, _ := codec.ForID[string]()
	intID, _ := codec.ForID[int64]()
	nodeID, _ := codec.ForID[NodeID]()
	bigID, _ := codec.ForID[BigID]()
	enc := encode(codec.Int64(), -123456)
	name := []byte("node-12")
	seven := []byte{7}
	tests := []struct {
		name string
		max  float64
		f    func()
	}{
		{"String Append", 0, func() { buf, _ = strID.Append(buf[:0], "node-12") }},
		{"String Decode", 1, func() { _, _ = strID.Decode(name) }},
		{"Int64 Append", 0, func() { buf, _ = intID.Append(buf[:0], -123456) }},
		{"Int64 Decode", 0, func() { _, _ = intID.Decode(enc) }},
		{"NodeID Append", 0, func() { buf, _ = nodeID.Append(buf[:0], "node-12") }},
		{"NodeID Decode", 1, func() { _, _ = nodeID.Decode(name) }},
		{"BigID Append", 0, func() { buf, _ = bigID.Append(buf[:0], -123456) }},
		{"BigID Decode", 0, func() { _, _ = bigID.Decode(enc) }},
		{"Uint8 Decode", 0, func() { _, _ = codec.Uint8().Decode(seven) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := testing.AllocsPerRun(100, tt.f); got > tt.max {
				t.Errorf("%v allocations per run, want at most %v", got, tt.max)
			}
		})
	}
}
