package conformance

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"

	"github.com/plumtree-go/plumtree/codec"
)

// codecRule is one rule of TestCodec: its name and sentence, and the
// function that checks it. The suite runs exactly the rules of codecRules,
// in order.
type codecRule[T any] struct {
	Subtest
	check func(c *cdenv[T])
}

// codecRules is TestCodec's table, for values of type T.
func codecRules[T any]() []codecRule[T] {
	return []codecRule[T]{
		{Subtest{"round-trip", "Decode(Append(nil, v)) gives back a value equal to v, for every sample."}, ruleCodecRoundTrip[T]},
		{Subtest{"append-keeps-prefix", "Append appends: the bytes already in dst stay as they were, and the bytes after them decode to v."}, ruleCodecAppendKeepsPrefix[T]},
		{Subtest{"append-full-dst", "Append to a dst with no spare capacity (len == cap, as a buffer cut from a larger one is) keeps its bytes: the result starts with them, and the slice dst was cut from is not written past len(dst)."}, ruleCodecAppendFullDst[T]},
		{Subtest{"decode-independent", "A decoded value shares no memory with the codec or a later decode: decoding every sample with one codec, then each again in the other order, leaves the first values unchanged."}, ruleCodecDecodeIndependent[T]},
		{Subtest{"decode-leaves-input", "Decode does not modify its input."}, ruleCodecDecodeLeavesInput[T]},
		{Subtest{"decode-does-not-keep-input", "A decoded value shares no memory with the input: overwriting the input after Decode does not change the value."}, ruleCodecDecodeDoesNotKeepInput[T]},
		{Subtest{"garbage", "Decode never panics: random bytes, truncated encodings and encodings with a flipped byte give an error or a value, and a value so decoded encodes again."}, ruleCodecGarbage[T]},
	}
}

// codecSubtests is the names and sentences of codecRules (the same for
// every T).
var codecSubtests = func() []Subtest {
	rules := codecRules[struct{}]()
	st := make([]Subtest, len(rules))
	for i, r := range rules {
		st[i] = r.Subtest
	}
	return st
}()

// CodecSubtests lists the rules TestCodec checks, for Skip.
func CodecSubtests() []Subtest { return append([]Subtest(nil), codecSubtests...) }

// TestCodec checks a codec against the codec.Codec contract, with the given
// sample values (give a few, covering the zero value, small and large
// values, and whatever is special for T). makeCodec is called for each
// subtest. Values are compared with reflect.DeepEqual unless EqualFunc says
// otherwise.
//
// A codec that documents that decoded values share memory with the input
// skips "decode-does-not-keep-input" with Skip.
func TestCodec[T any](t *testing.T, makeCodec func() codec.Codec[T], samples []T, opts ...Option) {
	t.Helper()
	testCodec(stdT{t}, makeCodec, samples, opts)
}

func testCodec[T any](t tT, makeCodec func() codec.Codec[T], samples []T, opts []Option) {
	t.Helper()
	s := newSuite(t, "Codec", codecSubtests, opts)
	eq := func(a, b T) bool { return reflect.DeepEqual(a, b) }
	if s.o.equal != nil {
		f, ok := s.o.equal.(func(a, b T) bool)
		if !ok {
			t.Fatalf("conformance: EqualFunc was given a %T; this codec's values need a func(a, b %s) bool", s.o.equal, reflect.TypeFor[T]())
		}
		eq = f
	}
	if len(samples) == 0 {
		t.Fatalf("conformance: TestCodec needs at least one sample value")
	}
	for _, r := range codecRules[T]() {
		s.run(t, r.Name, func(c *caseEnv) {
			r.check(&cdenv[T]{caseEnv: c, makeCodec: makeCodec, samples: samples, eq: eq})
		})
	}
}

// cdenv is the environment of one codec subtest.
type cdenv[T any] struct {
	*caseEnv
	makeCodec func() codec.Codec[T]
	samples   []T
	eq        func(a, b T) bool
}

// enc is a sample and its encoding.
type enc[T any] struct {
	v T
	b []byte
}

// encodeAll encodes every sample with a fresh codec.
func (c *cdenv[T]) encodeAll() (codec.Codec[T], []enc[T]) {
	c.t.Helper()
	cd := c.makeCodec()
	if cd == nil {
		c.t.Fatalf("makeCodec returned nil")
	}
	out := make([]enc[T], 0, len(c.samples))
	for i, v := range c.samples {
		var b []byte
		var err error
		if perr := protectPanic("Append", func() { b, err = cd.Append(nil, v) }); perr != nil {
			c.t.Fatalf("sample %d: %v", i, perr)
		}
		if err != nil {
			c.t.Fatalf("sample %d: Append: %v", i, err)
		}
		out = append(out, enc[T]{v, b})
	}
	return cd, out
}

// decode decodes b, failing the case on a panic.
func (c *cdenv[T]) decode(cd codec.Codec[T], b []byte) (v T, err error) {
	c.t.Helper()
	if perr := protectPanic("Decode", func() { v, err = cd.Decode(b) }); perr != nil {
		c.t.Fatalf("%v (input %d bytes: %x)", perr, len(b), head(b))
	}
	return v, err
}

func ruleCodecRoundTrip[T any](c *cdenv[T]) {
	cd, encs := c.encodeAll()
	for i, e := range encs {
		got, err := c.decode(cd, e.b)
		if err != nil {
			c.t.Errorf("sample %d: Decode of its own encoding: %v", i, err)
			continue
		}
		if !c.eq(got, e.v) {
			c.t.Errorf("sample %d: round trip gave %s, want %s", i, show(got), show(e.v))
		}
	}
}

func ruleCodecAppendKeepsPrefix[T any](c *cdenv[T]) {
	cd, encs := c.encodeAll()
	prefix := c.payload(13)
	for i, e := range encs {
		// Spare capacity after the prefix, filled with a pattern, so
		// a codec that writes before len(dst) or ignores dst shows.
		dst := make([]byte, len(prefix), len(prefix)+len(e.b)+64)
		copy(dst, prefix)
		out, err := cd.Append(dst, e.v)
		if err != nil {
			c.t.Errorf("sample %d: Append to a non-empty buffer: %v", i, err)
			continue
		}
		if len(out) < len(prefix) || !bytes.Equal(out[:len(prefix)], prefix) {
			c.t.Errorf("sample %d: Append changed the %d bytes already in dst", i, len(prefix))
			continue
		}
		got, err := c.decode(cd, out[len(prefix):])
		if err != nil || !c.eq(got, e.v) {
			c.t.Errorf("sample %d: the bytes Append added after a prefix decode to %s (err %v), want %s", i, show(got), err, show(e.v))
		}
	}
}

func ruleCodecAppendFullDst[T any](c *cdenv[T]) {
	cd, encs := c.encodeAll()
	for i, e := range encs {
		for _, n := range []int{0, 1, 13, 200} {
			// dst is the first n bytes of a larger buffer, with no
			// spare capacity: the bytes after it belong to someone
			// else.
			whole := c.payload(n + 32)
			want := bytes.Clone(whole)
			dst := whole[:n:n]
			var out []byte
			var err error
			if perr := protectPanic("Append", func() { out, err = cd.Append(dst, e.v) }); perr != nil {
				c.t.Fatalf("sample %d: %v", i, perr)
			}
			if err != nil {
				c.t.Errorf("sample %d: Append to a full %d-byte dst: %v", i, n, err)
				continue
			}
			if !bytes.Equal(whole, want) {
				c.t.Errorf("sample %d: Append to a full %d-byte dst wrote into the buffer it was cut from", i, n)
			}
			if len(out) < n || !bytes.Equal(out[:n], want[:n]) {
				c.t.Errorf("sample %d: Append to a full %d-byte dst lost its bytes (the result starts %x, want %x)", i, n, head(out), head(want[:n]))
				continue
			}
			got, err := c.decode(cd, out[n:])
			if err != nil || !c.eq(got, e.v) {
				c.t.Errorf("sample %d: the bytes Append added after a full %d-byte dst decode to %s (err %v), want %s", i, n, show(got), err, show(e.v))
			}
		}
	}
}

func ruleCodecDecodeIndependent[T any](c *cdenv[T]) {
	cd, encs := c.encodeAll()
	first := make([]T, len(encs))
	for i, e := range encs {
		v, err := c.decode(cd, bytes.Clone(e.b))
		if err != nil {
			c.t.Fatalf("sample %d: Decode: %v", i, err)
		}
		first[i] = v
	}
	// Other values through the same codec, in another order.
	for i := len(encs) - 1; i >= 0; i-- {
		if _, err := c.decode(cd, bytes.Clone(encs[i].b)); err != nil {
			c.t.Fatalf("sample %d: Decode: %v", i, err)
		}
	}
	for i, v := range first {
		if !c.eq(v, encs[i].v) {
			c.t.Errorf("sample %d: its decoded value changed to %s after later decodes (want %s): Decode returns memory it reuses", i, show(v), show(encs[i].v))
		}
	}
}

func ruleCodecDecodeLeavesInput[T any](c *cdenv[T]) {
	cd, encs := c.encodeAll()
	for i, e := range encs {
		in := bytes.Clone(e.b)
		if _, err := c.decode(cd, in); err != nil {
			c.t.Errorf("sample %d: Decode: %v", i, err)
		}
		if !bytes.Equal(in, e.b) {
			c.t.Errorf("sample %d: Decode modified its input", i)
		}
	}
}

func ruleCodecDecodeDoesNotKeepInput[T any](c *cdenv[T]) {
	cd, encs := c.encodeAll()
	for i, e := range encs {
		in := bytes.Clone(e.b)
		got, err := c.decode(cd, in)
		if err != nil {
			c.t.Errorf("sample %d: Decode: %v", i, err)
			continue
		}
		for j := range in {
			in[j] ^= 0xA5
		}
		if !c.eq(got, e.v) {
			c.t.Errorf("sample %d: overwriting the input after Decode changed the decoded value to %s; want %s", i, show(got), show(e.v))
		}
	}
}

func ruleCodecGarbage[T any](c *cdenv[T]) {
	cd, encs := c.encodeAll()
	faults := 0
	try := func(what string, b []byte) {
		c.t.Helper()
		if faults == 3 {
			c.t.Fatalf("(stopping after 3 faults)")
		}
		var v T
		var err error
		if perr := protectPanic("Decode", func() { v, err = cd.Decode(b) }); perr != nil {
			faults++
			c.t.Errorf("%s (%d bytes %x): %v", what, len(b), head(b), perr)
			return
		}
		if err != nil {
			return
		}
		if perr := protectPanic("Append", func() { _, err = cd.Append(nil, v) }); perr != nil {
			faults++
			c.t.Errorf("%s: a value Decode accepted: %v", what, perr)
		}
	}
	try("empty input", nil)
	for n := 1; n <= 4096; n *= 2 {
		for k := 0; k < 8; k++ {
			try("random bytes", c.payload(n))
		}
	}
	for _, e := range encs {
		step := max(1, len(e.b)/256)
		for n := 0; n < len(e.b); n += step {
			try(fmt.Sprintf("encoding truncated to %d of %d bytes", n, len(e.b)), bytes.Clone(e.b[:n]))
		}
		for k := 0; k < 64 && len(e.b) > 0; k++ {
			b := bytes.Clone(e.b)
			i := c.rng.IntN(len(b))
			b[i] ^= byte(1 + c.rng.IntN(255))
			try(fmt.Sprintf("encoding with byte %d flipped", i), b)
		}
	}
}

// head returns at most the first 32 bytes of b, for messages.
func head(b []byte) []byte {
	if len(b) > 32 {
		return b[:32]
	}
	return b
}

// show formats a value for a message, shortened.
func show(v any) string {
	s := fmt.Sprintf("%#v", v)
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
