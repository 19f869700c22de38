package codec_test

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/plumtree-go/plumtree/codec"
	"github.com/plumtree-go/plumtree/conformance"
)

// Every codec in this package passes the conformance suite.

func TestConformanceBytes(t *testing.T) {
	conformance.TestCodec(t, codec.Bytes, [][]byte{{}, []byte("x"), []byte(strings.Repeat("plumtree ", 1000)), {0, 255, 0}},
		// An empty slice decodes as nil: the wire cannot tell them apart.
		conformance.EqualFunc(bytes.Equal))
}

func TestConformanceString(t *testing.T) {
	conformance.TestCodec(t, codec.String, []string{"", "a", "héllo, wörld", strings.Repeat("z", 70000)})
}

func TestConformanceStringOf(t *testing.T) {
	conformance.TestCodec(t, codec.StringOf[NodeID], []NodeID{"", "node-1", "ノード"})
}

func TestConformanceIntegers(t *testing.T) {
	t.Run("int", func(t *testing.T) {
		conformance.TestCodec(t, codec.Int, []int{0, 1, -1, math.MaxInt, math.MinInt})
	})
	t.Run("int8", func(t *testing.T) {
		conformance.TestCodec(t, codec.Int8, []int8{0, 1, -1, math.MaxInt8, math.MinInt8})
	})
	t.Run("uint16", func(t *testing.T) {
		conformance.TestCodec(t, codec.Uint16, []uint16{0, 1, math.MaxUint16})
	})
	t.Run("int64", func(t *testing.T) {
		conformance.TestCodec(t, codec.Int64, []int64{0, 1, -1, math.MaxInt64, math.MinInt64})
	})
	t.Run("uint64", func(t *testing.T) {
		conformance.TestCodec(t, codec.Uint64, []uint64{0, 1, math.MaxUint64})
	})
	t.Run("IntegerOf", func(t *testing.T) {
		conformance.TestCodec(t, codec.IntegerOf[Shard], []Shard{0, -128, 127})
	})
}

func TestConformanceForID(t *testing.T) {
	t.Run("string", func(t *testing.T) {
		mk := func() codec.Codec[NodeID] {
			c, err := codec.ForID[NodeID]()
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		conformance.TestCodec(t, mk, []NodeID{"", "n1", "a longer node name"})
	})
	t.Run("unsigned", func(t *testing.T) {
		mk := func() codec.Codec[Unsigned] {
			c, err := codec.ForID[Unsigned]()
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		conformance.TestCodec(t, mk, []Unsigned{0, 1, math.MaxUint})
	})
}

type jsonDoc struct {
	Name  string            `json:"name"`
	Count int               `json:"count"`
	Tags  []string          `json:"tags,omitempty"`
	Attrs map[string]string `json:"attrs,omitempty"`
	Raw   []byte            `json:"raw,omitempty"`
}

func TestConformanceJSON(t *testing.T) {
	conformance.TestCodec(t, codec.JSON[jsonDoc], []jsonDoc{
		{},
		{Name: "a", Count: 1},
		{Name: strings.Repeat("long ", 500), Count: -7, Tags: []string{"x", "y"}, Attrs: map[string]string{"k": "v"}, Raw: []byte{1, 2, 3}},
	})
}
