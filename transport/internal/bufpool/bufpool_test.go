package bufpool

import "testing"

func TestGetHasRoom(t *testing.T) {
	for _, size := range []int{0, 1, 255, 256, 257, 2048, 2049, 16 << 10, 64 << 10, 64<<10 + 1, 1 << 20} {
		bp := Get(size)
		if len(*bp) != 0 || cap(*bp) < size {
			t.Fatalf("Get(%d): len %d cap %d", size, len(*bp), cap(*bp))
		}
		*bp = append(*bp, make([]byte, size)...)
		Put(bp)
	}
}

// A buffer put back comes out empty, whatever it held.
func TestReuseIsEmpty(t *testing.T) {
	for range 100 {
		bp := Get(100)
		*bp = append(*bp, "some bytes"...)
		Put(bp)
		if bp := Get(100); len(*bp) != 0 {
			t.Fatalf("reused buffer has length %d", len(*bp))
		}
	}
}

// Steady Get and Put of one size do not allocate.
func TestNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops buffers at random under the race detector")
	}
	Put(Get(1000))
	if n := testing.AllocsPerRun(100, func() {
		bp := Get(1000)
		*bp = append(*bp, 1, 2, 3)
		Put(bp)
	}); n > 0.1 {
		t.Fatalf("%v allocations per Get and Put", n)
	}
}
