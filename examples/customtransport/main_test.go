//go:build unix

package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// lockedBuffer is written by the nodes' delivery goroutines.
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

// TestRun runs the program's cluster and checks that every node printed
// every other node's message, once.
func TestRun(t *testing.T) {
	const n = 4
	// The deadline only breaks a hang; run returns as soon as all is delivered.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out lockedBuffer
	if err := run(ctx, n, &out); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	got := out.String()
	for i := range n {
		for j := range n {
			if i == j {
				continue
			}
			line := fmt.Sprintf("node-%d delivered %q from node-%d", i, fmt.Sprintf("hello from node-%d", j), j)
			if c := strings.Count(got, line); c != 1 {
				t.Errorf("%q printed %d times, want once", line, c)
			}
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", got)
	}
}
