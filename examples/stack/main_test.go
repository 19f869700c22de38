package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plumtree-go/plumtree/internal/leakcheck"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// TestMain checks that no goroutine outlives the tests, with time for
// memberlist's own to end (see package leakcheck).
func TestMain(m *testing.M) { leakcheck.Main(m) }

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestStack runs three nodes and checks that each of the two others
// delivered the message unchanged, and that it was compressed on the way.
func TestStack(t *testing.T) {
	const n = 3
	msg, err := structpb.NewStruct(map[string]any{
		"event":   "test",
		"count":   42,
		"tags":    []any{"a", "b"},
		"payload": strings.Repeat("compressible ", 300),
	})
	if err != nil {
		t.Fatal(err)
	}
	// The deadline only breaks a hang; run returns once all have delivered.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out lockedBuffer
	res, err := run(ctx, n, msg, &out)
	if err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	for i := 1; i < n; i++ {
		name := fmt.Sprintf("node-%d", i)
		got, ok := res.Delivered[name]
		if !ok {
			t.Errorf("%s delivered nothing", name)
			continue
		}
		if !proto.Equal(got, msg) {
			t.Errorf("%s delivered %v, want %v", name, got, msg)
		}
	}
	if _, ok := res.Delivered["node-0"]; ok {
		t.Errorf("the origin delivered its own message")
	}
	// Uncompressed, the frame would be larger than the message.
	if res.FrameBytes == 0 || res.FrameBytes >= res.Encoded {
		t.Errorf("a %d-byte message went as a Gossip frame of %d bytes: not compressed?", res.Encoded, res.FrameBytes)
	}
	t.Logf("%d-byte message; %d-byte frame", res.Encoded, res.FrameBytes)
}
