package conformance

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"testing"

	"github.com/plumtree-go/plumtree/compressor"
)

// compressorRule is one rule of TestCompressor: its name and sentence, and
// the function that checks it. The suite runs exactly the rules of
// compressorRules, in order.
type compressorRule struct {
	Subtest
	check func(c *zenv)
}

// compressorRules is TestCompressor's table.
var compressorRules = []compressorRule{
	{Subtest{"round-trip", "Decompress(Compress(x)) gives back x for empty, small, large, incompressible and highly compressible data."}, ruleCompressorRoundTrip},
	{Subtest{"append-keeps-prefix", "Compress and Decompress append: the bytes already in dst stay as they were."}, ruleCompressorAppendKeepsPrefix},
	{Subtest{"input-untouched", "Compress and Decompress neither modify src nor keep it: overwriting src after the call does not change the output."}, ruleCompressorInputUntouched},
	{Subtest{"limit", "Decompress with maxSize one byte short of the original fails with an error wrapping compressor.ErrTooLarge; with maxSize equal to the original it succeeds."}, ruleCompressorLimit},
	{Subtest{"limit-every-size", "Decompress keeps maxSize whatever its value: for limits around every power of two and between them, a limit below the original size fails with compressor.ErrTooLarge and returns no more than the limit, and one at or above it gives back the original."}, ruleCompressorLimitEverySize},
	{Subtest{"output-not-shared", "What Compress and Decompress return belongs to the caller: later calls on the same compressor, with other input, do not change it."}, ruleCompressorOutputNotShared},
	{Subtest{"corrupt-error", "Decompress of input it cannot read fails with an error wrapping compressor.ErrCorrupt (or compressor.ErrTooLarge), so a caller can tell bad input from a bug."}, ruleCompressorCorruptError},
	{Subtest{"bomb", "Decompressing a bomb (32 MiB of zeros) with a 256 KiB limit fails with compressor.ErrTooLarge and allocates a small multiple of the limit, not the bomb's size."}, ruleCompressorBomb},
	{Subtest{"corrupt-input", "Decompress never panics and never returns more than maxSize bytes on random, truncated or bit-flipped input."}, ruleCompressorCorruptInput},
	{Subtest{"stable-identity", "ID and Name are stable: two compressors from the constructor agree, the name is not empty, and the values do not change between calls."}, ruleCompressorStableIdentity},
}

// compressorSubtests is the names and sentences of compressorRules.
var compressorSubtests = func() []Subtest {
	st := make([]Subtest, len(compressorRules))
	for i, r := range compressorRules {
		st[i] = r.Subtest
	}
	return st
}()

// CompressorSubtests lists the rules TestCompressor checks, for Skip.
func CompressorSubtests() []Subtest { return append([]Subtest(nil), compressorSubtests...) }

// TestCompressor checks a compressor against the compressor.Compressor
// contract. makeCompressor is called for each subtest.
//
// The "bomb" subtest measures the process's allocations while it
// decompresses, so do not run it in parallel with other tests that allocate
// a lot.
func TestCompressor(t *testing.T, makeCompressor func() compressor.Compressor, opts ...Option) {
	t.Helper()
	testCompressor(stdT{t}, makeCompressor, opts)
}

func testCompressor(t tT, makeCompressor func() compressor.Compressor, opts []Option) {
	t.Helper()
	s := newSuite(t, "Compressor", compressorSubtests, opts)
	for _, r := range compressorRules {
		s.run(t, r.Name, func(c *caseEnv) { r.check(&zenv{caseEnv: c, makeCompressor: makeCompressor}) })
	}
}

// zenv is the environment of one compressor subtest.
type zenv struct {
	*caseEnv
	makeCompressor func() compressor.Compressor
}

// mk makes a fresh compressor for the case.
func (c *zenv) mk() compressor.Compressor {
	c.t.Helper()
	z := c.makeCompressor()
	if z == nil {
		c.t.Fatalf("makeCompressor returned nil")
	}
	return z
}

// compress compresses src, failing the case on an error or a panic.
func (c *zenv) compress(z compressor.Compressor, dst, src []byte) []byte {
	c.t.Helper()
	var out []byte
	var err error
	if perr := protectPanic("Compress", func() { out, err = z.Compress(dst, src) }); perr != nil {
		c.t.Fatalf("%v", perr)
	}
	if err != nil {
		c.t.Fatalf("Compress of %d bytes: %v", len(src), err)
	}
	return out
}

// decompress decompresses src, failing the case on a panic.
func (c *zenv) decompress(z compressor.Compressor, dst, src []byte, maxSize int) ([]byte, error) {
	c.t.Helper()
	var out []byte
	var err error
	if perr := protectPanic("Decompress", func() { out, err = z.Decompress(dst, src, maxSize) }); perr != nil {
		c.t.Fatalf("%v", perr)
	}
	return out, err
}

// inputs are the kinds of data every compressor must round-trip.
func (c *zenv) inputs() []struct {
	name string
	b    []byte
} {
	text := bytes.Repeat([]byte(`{"node":"n-17","seq":4242,"kind":"update","ok":true} `), 400)
	return []struct {
		name string
		b    []byte
	}{
		{"empty", []byte{}},
		{"one byte", []byte{7}},
		{"small text", []byte("hello, plumtree")},
		{"incompressible 4 KiB", c.payload(4 << 10)},
		{"incompressible 1 MiB", c.payload(1 << 20)},
		{"repetitive text", text},
		{"zeros 1 MiB", make([]byte, 1<<20)},
	}
}

func ruleCompressorRoundTrip(c *zenv) {
	z := c.mk()
	for _, in := range c.inputs() {
		zb := c.compress(z, nil, in.b)
		out, err := c.decompress(z, nil, zb, len(in.b))
		if err != nil {
			c.t.Errorf("%s: Decompress: %v", in.name, err)
			continue
		}
		if !bytes.Equal(out, in.b) {
			c.t.Errorf("%s: round trip gave %d bytes that differ from the %d sent", in.name, len(out), len(in.b))
		}
	}
}

func ruleCompressorAppendKeepsPrefix(c *zenv) {
	z := c.mk()
	prefix := c.payload(11)
	for _, in := range c.inputs() {
		dst := make([]byte, len(prefix), len(prefix)+len(in.b)+64)
		copy(dst, prefix)
		zb := c.compress(z, dst, in.b)
		if !bytes.Equal(zb[:len(prefix)], prefix) {
			c.t.Errorf("%s: Compress changed the bytes already in dst", in.name)
			continue
		}
		dst2 := make([]byte, len(prefix), len(prefix)+len(in.b)+64)
		copy(dst2, prefix)
		out, err := c.decompress(z, dst2, zb[len(prefix):], len(in.b))
		if err != nil {
			c.t.Errorf("%s: Decompress after a prefix: %v", in.name, err)
			continue
		}
		if !bytes.Equal(out[:len(prefix)], prefix) {
			c.t.Errorf("%s: Decompress changed the bytes already in dst", in.name)
		} else if !bytes.Equal(out[len(prefix):], in.b) {
			c.t.Errorf("%s: Decompress after a prefix gave different bytes", in.name)
		}
	}
}

func ruleCompressorInputUntouched(c *zenv) {
	z := c.mk()
	for _, in := range c.inputs() {
		src := bytes.Clone(in.b)
		zb := c.compress(z, nil, src)
		if !bytes.Equal(src, in.b) {
			c.t.Errorf("%s: Compress modified its input", in.name)
		}
		want := bytes.Clone(zb)
		for i := range src {
			src[i] ^= 0x5A
		}
		if !bytes.Equal(zb, want) {
			c.t.Errorf("%s: overwriting the input after Compress changed its output", in.name)
		}
		zsrc := bytes.Clone(want)
		out, err := c.decompress(z, nil, zsrc, len(in.b))
		if err != nil {
			c.t.Errorf("%s: Decompress: %v", in.name, err)
			continue
		}
		if !bytes.Equal(zsrc, want) {
			c.t.Errorf("%s: Decompress modified its input", in.name)
		}
		for i := range zsrc {
			zsrc[i] ^= 0x5A
		}
		if !bytes.Equal(out, in.b) {
			c.t.Errorf("%s: overwriting the input after Decompress changed its output", in.name)
		}
	}
}

func ruleCompressorLimit(c *zenv) {
	z := c.mk()
	for _, in := range c.inputs() {
		if len(in.b) == 0 {
			continue
		}
		zb := c.compress(z, nil, in.b)
		out, err := c.decompress(z, nil, zb, len(in.b)-1)
		if !errors.Is(err, compressor.ErrTooLarge) {
			c.t.Errorf("%s: Decompress of %d bytes with maxSize %d: got %d bytes and error %v, want an error wrapping compressor.ErrTooLarge", in.name, len(in.b), len(in.b)-1, len(out), err)
		}
		if _, err := c.decompress(z, nil, zb, len(in.b)); err != nil {
			c.t.Errorf("%s: Decompress with maxSize equal to the original size: %v", in.name, err)
		}
	}
}

func ruleCompressorLimitEverySize(c *zenv) {
	z := c.mk()
	// Text compresses into many blocks, zeros into few, random bytes
	// not at all: limits fall inside blocks of every kind.
	text := bytes.Repeat([]byte(`{"node":"n-17","seq":4242,"kind":"update","ok":true} `), 7000)[:320<<10]
	for _, in := range []struct {
		name string
		b    []byte
	}{{"text", text}, {"zeros", make([]byte, 1<<20)}, {"random", c.payload(96 << 10)}} {
		zb := c.compress(z, nil, in.b)
		limits := map[int]bool{0: true, len(in.b) - 1: true, len(in.b): true, len(in.b) + 1: true}
		for p := 1; p < len(in.b); p *= 2 {
			for _, n := range []int{p - 1, p, p + 1, p + c.rng.IntN(p)} {
				limits[n] = true
			}
		}
		for limit := range limits {
			out, err := c.decompress(z, nil, zb, limit)
			switch {
			case limit < len(in.b) && !errors.Is(err, compressor.ErrTooLarge):
				c.t.Errorf("%s: Decompress of %d bytes with maxSize %d: got %d bytes and error %v, want an error wrapping compressor.ErrTooLarge", in.name, len(in.b), limit, len(out), err)
			case limit < len(in.b) && len(out) > limit:
				c.t.Errorf("%s: Decompress with maxSize %d returned %d bytes", in.name, limit, len(out))
			case limit >= len(in.b) && err != nil:
				c.t.Errorf("%s: Decompress of %d bytes with maxSize %d: %v", in.name, len(in.b), limit, err)
			case limit >= len(in.b) && !bytes.Equal(out, in.b):
				c.t.Errorf("%s: Decompress with maxSize %d gave %d bytes that differ from the %d compressed", in.name, limit, len(out), len(in.b))
			}
		}
	}
}

func ruleCompressorOutputNotShared(c *zenv) {
	z := c.mk()
	ins := c.inputs()
	var zs, zcopies, outs, outcopies [][]byte
	for _, in := range ins {
		zb := c.compress(z, nil, in.b)
		zs, zcopies = append(zs, zb), append(zcopies, bytes.Clone(zb))
	}
	for i, in := range ins {
		out, err := c.decompress(z, nil, zcopies[i], len(in.b))
		if err != nil {
			c.t.Fatalf("%s: Decompress: %v", in.name, err)
		}
		outs, outcopies = append(outs, out), append(outcopies, bytes.Clone(out))
	}
	// More calls with other input, in the other order.
	for i := len(ins) - 1; i >= 0; i-- {
		zb := c.compress(z, nil, ins[i].b)
		if _, err := c.decompress(z, nil, zb, len(ins[i].b)); err != nil {
			c.t.Fatalf("%s: Decompress: %v", ins[i].name, err)
		}
	}
	for i, in := range ins {
		if !bytes.Equal(zs[i], zcopies[i]) {
			c.t.Errorf("%s: what Compress returned changed during later calls: it returns memory it reuses", in.name)
		}
		if !bytes.Equal(outs[i], outcopies[i]) {
			c.t.Errorf("%s: what Decompress returned changed during later calls: it returns memory it reuses", in.name)
		}
	}
}

func ruleCompressorCorruptError(c *zenv) {
	z := c.mk()
	const maxSize = 64 << 10
	bad := 0
	try := func(what string, b []byte) {
		c.t.Helper()
		out, err := c.decompress(z, nil, b, maxSize)
		if err == nil || errors.Is(err, compressor.ErrCorrupt) || errors.Is(err, compressor.ErrTooLarge) {
			return
		}
		if bad++; bad <= 3 {
			c.t.Errorf("%s (%d bytes %x): Decompress gave %d bytes and %v; want an error wrapping compressor.ErrCorrupt", what, len(b), head(b), len(out), err)
		}
	}
	for n := 1; n <= 4096; n *= 4 {
		for range 8 {
			try("random bytes", c.payload(n))
		}
	}
	for _, in := range c.inputs() {
		if len(in.b) > maxSize {
			continue
		}
		zb := c.compress(z, nil, in.b)
		step := max(1, len(zb)/32)
		for n := 0; n < len(zb); n += step {
			try(fmt.Sprintf("%s truncated to %d of %d bytes", in.name, n, len(zb)), bytes.Clone(zb[:n]))
		}
		for k := 0; k < 16 && len(zb) > 0; k++ {
			b := bytes.Clone(zb)
			i := c.rng.IntN(len(b))
			b[i] ^= byte(1 + c.rng.IntN(255))
			try(fmt.Sprintf("%s with byte %d flipped", in.name, i), b)
		}
	}
}

func ruleCompressorBomb(c *zenv) {
	const bombSize, limit = 32 << 20, 256 << 10
	z := c.mk()
	zb := c.compress(z, nil, make([]byte, bombSize))
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	out, err := c.decompress(z, nil, zb, limit)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, compressor.ErrTooLarge) {
		c.t.Errorf("Decompress of a %d-byte bomb with a %d-byte limit: got %d bytes and error %v, want an error wrapping compressor.ErrTooLarge", bombSize, limit, len(out), err)
	}
	if len(out) > limit {
		c.t.Errorf("Decompress returned %d bytes, past its limit of %d", len(out), limit)
	}
	// A decoder may keep a window and buffers of its own; 16 times
	// the limit plus 8 MiB is generous for that and still far below
	// the bomb's size.
	allowed := uint64(16*limit + 8<<20)
	if got := after.TotalAlloc - before.TotalAlloc; got > allowed {
		c.t.Errorf("Decompress with a %d-byte limit allocated %d bytes for a %d-byte bomb (allowed %d)", limit, got, bombSize, allowed)
	}
}

func ruleCompressorCorruptInput(c *zenv) {
	z := c.mk()
	const maxSize = 64 << 10
	faults := 0
	try := func(what string, b []byte) {
		c.t.Helper()
		if faults == 3 {
			c.t.Fatalf("(stopping after 3 faults)")
		}
		var out []byte
		var err error
		if perr := protectPanic("Decompress", func() { out, err = z.Decompress(nil, b, maxSize) }); perr != nil {
			faults++
			c.t.Errorf("%s (%d bytes %x): %v", what, len(b), head(b), perr)
			return
		}
		if err == nil && len(out) > maxSize {
			faults++
			c.t.Errorf("%s: Decompress returned %d bytes, past maxSize %d", what, len(out), maxSize)
		}
	}
	for n := 1; n <= 8192; n *= 2 {
		for k := 0; k < 8; k++ {
			try("random bytes", c.payload(n))
		}
	}
	for _, in := range c.inputs() {
		if len(in.b) > maxSize {
			continue
		}
		zb := c.compress(z, nil, in.b)
		step := max(1, len(zb)/128)
		for n := 0; n < len(zb); n += step {
			try(fmt.Sprintf("%s truncated to %d of %d bytes", in.name, n, len(zb)), bytes.Clone(zb[:n]))
		}
		for k := 0; k < 64 && len(zb) > 0; k++ {
			b := bytes.Clone(zb)
			i := c.rng.IntN(len(b))
			b[i] ^= byte(1 + c.rng.IntN(255))
			try(fmt.Sprintf("%s with byte %d flipped", in.name, i), b)
		}
	}
}

func ruleCompressorStableIdentity(c *zenv) {
	a, b := c.mk(), c.mk()
	if a.Name() == "" {
		c.t.Errorf("Name is empty")
	}
	if a.ID() != b.ID() || a.Name() != b.Name() {
		c.t.Errorf("two compressors from the constructor differ: (%d, %q) and (%d, %q)", a.ID(), a.Name(), b.ID(), b.Name())
	}
	id, name := a.ID(), a.Name()
	a.Compress(nil, []byte("x"))
	if a.ID() != id || a.Name() != name {
		c.t.Errorf("ID and Name changed after use: (%d, %q) became (%d, %q)", id, name, a.ID(), a.Name())
	}
}
