package seal

import (
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// header returns a frame header whose key ID and nonce encode i.
func header(i uint64) []byte {
	h := make([]byte, headerLen)
	h[0] = Version
	binary.BigEndian.PutUint32(h[1:], 7)
	binary.BigEndian.PutUint64(h[1+idLen:], i)
	return h
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano()

// A frame is accepted once and refused as a replay after; frames that differ
// only in key ID or only in nonce are different frames.
func TestReplayFilterOnce(t *testing.T) {
	f := newReplayFilter(int64(time.Minute), 100)
	h := header(1)
	if got := f.check(h, t0, t0); got != reasonNone {
		t.Fatalf("first: %v", got)
	}
	for range 3 {
		if got := f.check(h, t0, t0+int64(time.Second)); got != ReasonReplay {
			t.Errorf("again: %v; want replay", got)
		}
	}
	otherKey := header(1)
	otherKey[1] ^= 1
	otherNonce := header(2)
	for _, h := range [][]byte{otherKey, otherNonce} {
		if got := f.check(h, t0, t0); got != reasonNone {
			t.Errorf("a different frame %x: %v", h, got)
		}
	}
}

// Entries leave the filter with the window, amortized over the calls that
// follow; nothing sent before the window passes once they have gone.
func TestReplayFilterExpiry(t *testing.T) {
	const window = 32 * time.Second // granules of 1 s
	f := newReplayFilter(int64(window), 1000)
	for i := range uint64(100) {
		if got := f.check(header(i), t0, t0); got != reasonNone {
			t.Fatalf("frame %d: %v", i, got)
		}
	}
	if n := f.len(); n != 100 {
		t.Fatalf("holds %d; want 100", n)
	}
	// Still within the window (plus the granule being filled): kept.
	later := t0 + int64(window)
	if got := f.check(header(1000), later, later); got != reasonNone {
		t.Fatalf("a fresh frame: %v", got)
	}
	if n := f.len(); n != 101 {
		t.Errorf("holds %d after %v; want 101", n, window)
	}
	if got := f.check(header(5), t0, later); got != ReasonReplay {
		t.Errorf("a replay at the edge of the window: %v", got)
	}
	// Two granules later, t0's frames are outside the window and forgotten.
	later += int64(2 * time.Second)
	if got := f.check(header(1001), later, later); got != reasonNone {
		t.Fatalf("a fresh frame: %v", got)
	}
	if n := f.len(); n != 2 {
		t.Errorf("holds %d; want the 2 frames sent since", n)
	}
	if got := f.check(header(5), t0, later); got != ReasonWindow {
		t.Errorf("a forgotten frame: %v; want window", got)
	}
}

// A full cache forgets the earliest granule and refuses from then on all it
// cannot tell apart: any frame sent in or before that granule, remembered or
// not. It never holds more than its limit, and every frame opens at most
// once.
func TestReplayFilterFloor(t *testing.T) {
	const window = 32 * time.Second // granules of 1 s
	f := newReplayFilter(int64(window), 4)
	for i := range uint64(4) {
		if got := f.check(header(i), t0, t0); got != reasonNone {
			t.Fatalf("frame %d: %v", i, got)
		}
	}
	// A fifth frame of the same granule: the granule is forgotten, and
	// with it everything sent in it.
	if got := f.check(header(4), t0, t0); got != ReasonWindow {
		t.Errorf("a fifth frame into a full cache: %v; want window", got)
	}
	for i := range uint64(5) {
		if got := f.check(header(i), t0, t0); got != ReasonWindow {
			t.Errorf("frame %d again: %v; want window", i, got)
		}
	}
	half := t0 + int64(time.Second/2)
	if got := f.check(header(10), half, half); got != ReasonWindow {
		t.Errorf("a new frame from the forgotten granule: %v; want window", got)
	}
	// The next granule opens.
	next := t0 + int64(time.Second)
	for i := range uint64(3) {
		if got := f.check(header(20+i), next, next); got != reasonNone {
			t.Errorf("a frame from the next granule: %v", got)
		}
	}
	if got := f.check(header(20), next, next); got != ReasonReplay {
		t.Errorf("a replay of a remembered frame: %v; want replay", got)
	}
	// Frames spread over granules: the earliest go first.
	for s := range uint64(3) {
		sent := next + int64(s+1)*int64(time.Second)
		if got := f.check(header(30+s), sent, next); got != reasonNone {
			t.Errorf("a frame %ds on: %v", s+1, got)
		}
		if n := f.len(); n > 4 {
			t.Fatalf("holds %d; the limit is 4", n)
		}
	}
	// next's three frames were forgotten to make room; the later ones held.
	if got := f.check(header(21), next, next); got != ReasonWindow {
		t.Errorf("a frame of the forgotten granule: %v; want window", got)
	}
	for s := range uint64(3) {
		if got := f.check(header(30+s), next+int64(s+1)*int64(time.Second), next); got != ReasonReplay {
			t.Errorf("a replay of the frame %ds on: %v; want replay", s+1, got)
		}
	}

	// A long run with a tiny cache: never more than the limit, never a
	// frame twice.
	g := newReplayFilter(int64(window), 8)
	opened := make(map[uint64]bool)
	now := t0
	for i := range uint64(2000) {
		now += int64(100 * time.Millisecond)
		// Each frame is sent up to 3 s before now, then replayed.
		sent := now - int64(i%31)*int64(100*time.Millisecond)
		for range 2 {
			if g.check(header(i), sent, now) == reasonNone {
				if opened[i] {
					t.Fatalf("frame %d opened twice", i)
				}
				opened[i] = true
			}
		}
		if n := g.len(); n > 8 {
			t.Fatalf("holds %d; the limit is 8", n)
		}
	}
	if len(opened) == 0 {
		t.Error("a cache of 8 opened nothing")
	}
}

// Concurrent checks of the same frames from several goroutines (the receive
// goroutines of a sealed transport) open each frame exactly once with room
// to spare, and at most once with a cache that keeps forgetting. Run with
// -race.
func TestReplayFilterConcurrent(t *testing.T) {
	for _, limit := range []int{1 << 16, 16} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			const (
				goroutines = 4
				frames     = 2000
			)
			f := newReplayFilter(int64(time.Minute), limit)
			var opens [frames]atomic.Int32
			var wg sync.WaitGroup
			for w := range goroutines {
				wg.Go(func() {
					for i := range frames {
						j := (i + w*frames/goroutines) % frames // differing orders
						// Send times spread over 2 s, so that a
						// small cache forgets granule after granule.
						sent := t0 + int64(j)*int64(time.Millisecond)
						if f.check(header(uint64(j)), sent, t0+int64(time.Second)) == reasonNone {
							opens[j].Add(1)
						}
					}
				})
			}
			wg.Wait()
			total := 0
			for i := range opens {
				n := int(opens[i].Load())
				total += n
				if n > 1 || (limit >= frames && n != 1) {
					t.Errorf("frame %d opened %d times", i, n)
				}
			}
			if n := f.len(); n > limit {
				t.Errorf("holds %d; the limit is %d", n, limit)
			}
			t.Logf("%d of %d frames opened", total, frames)
		})
	}
}

// The filter's cost per frame, in a steady state where frames leave the
// window as fast as they come (about 10,000 held), and with a full cache
// (4096) that keeps forgetting its earliest granule of 1,000 frames. Every
// frame opens.
func BenchmarkReplayFilter(b *testing.B) {
	for _, c := range []struct {
		name   string
		window time.Duration
		limit  int
		step   time.Duration
	}{
		{"expiring", 10 * time.Millisecond, DefaultReplayCache, time.Microsecond},
		{"full", 32 * time.Second, 4096, time.Millisecond},
	} {
		b.Run(c.name, func(b *testing.B) {
			f := newReplayFilter(int64(c.window), c.limit)
			h := header(0)
			now := t0
			var i uint64
			b.ReportAllocs()
			for b.Loop() {
				i++
				now += int64(c.step)
				binary.BigEndian.PutUint64(h[1+idLen:], i)
				if why := f.check(h, now, now); why != reasonNone {
					b.Fatal(why)
				}
			}
		})
	}
}
