package zstd_test

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/plumtree-go/plumtree/compressor"
	"github.com/plumtree-go/plumtree/compressor/zstd"
)

// Compress appends to a buffer; Decompress takes the most it may produce and
// refuses a frame that declares more, before allocating it. In a node built
// by package stack, Config.Compression{Algorithm: "zstd"} does this for you.
func ExampleNew() {
	c, err := zstd.New(zstd.DefaultLevel) // the tuning guide's zstd(3)
	if err != nil {
		panic(err)
	}
	msg := bytes.Repeat([]byte(`{"service":"api","level":"warn","msg":"slow request"} `), 100)
	z, err := c.Compress(nil, msg)
	if err != nil {
		panic(err)
	}
	fmt.Println(c.Name(), c.ID(), c.Level(), len(msg), "bytes, compressed smaller:", len(z) < len(msg)/10)

	out, err := c.Decompress(nil, z, 1<<20)
	fmt.Println(bytes.Equal(out, msg), err)

	_, err = c.Decompress(nil, z, 1024) // a limit below the declared size
	fmt.Println(errors.Is(err, compressor.ErrTooLarge))
	// Output:
	// zstd 1 3 5400 bytes, compressed smaller: true
	// true <nil>
	// true
}
