package codec_test

import (
	"errors"
	"fmt"

	"github.com/plumtree-go/plumtree/codec"
)

// A JSON codec carries any type encoding/json can marshal. Append adds to the
// buffer it is given, so one buffer serves many messages.
func ExampleJSON() {
	type Event struct {
		Service string `json:"service"`
		Level   string `json:"level"`
	}
	c := codec.JSON[Event]()
	buf, err := c.Append(nil, Event{Service: "api", Level: "warn"})
	if err != nil {
		panic(err)
	}
	fmt.Println(string(buf))
	ev, err := c.Decode(buf)
	fmt.Println(ev.Service, ev.Level, err)
	// Output:
	// {"service":"api","level":"warn"}
	// api warn <nil>
}

// ForID finds the codec for a node identity type, named types included; the
// gossip runner uses it when Options.IDCodec is nil.
func ExampleForID() {
	type NodeID string
	c, err := codec.ForID[NodeID]()
	if err != nil {
		panic(err)
	}
	b, _ := c.Append(nil, "node-7")
	fmt.Printf("%q\n", b)

	_, err = codec.ForID[struct{ Host string }]()
	fmt.Println(err != nil)
	// Output:
	// "node-7"
	// true
}

// Integers are varints, whatever their width, and decoding refuses what does
// not fit the type.
func ExampleIntegerOf() {
	b, _ := codec.Uint16().Append(nil, 300)
	fmt.Printf("% x\n", b)
	_, err := codec.Uint8().Decode(b)
	fmt.Println(errors.Is(err, codec.ErrOverflow))
	// Output:
	// ac 02
	// true
}
