// Package bufpool pools the byte buffers transports copy frames into, by
// size class, so that a steady stream of sends does not allocate.
//
// Get returns a buffer with room for a size; Put returns it once nothing
// refers to its bytes any more. A buffer larger than the largest class is
// allocated by Get and dropped by Put.
//
// This package must never import anything outside the standard library.
package bufpool

import "sync"

// classes are the capacities of pooled buffers.
var classes = [...]int{256, 2 << 10, 16 << 10, 64 << 10}

var pools [len(classes)]sync.Pool // of *[]byte

// Get returns a buffer of length 0 and capacity at least size. Keep the
// pointer: Put takes it back.
func Get(size int) *[]byte {
	for i, c := range classes {
		if size <= c {
			if bp, _ := pools[i].Get().(*[]byte); bp != nil {
				*bp = (*bp)[:0]
				return bp
			}
			b := make([]byte, 0, c)
			return &b
		}
	}
	b := make([]byte, 0, size)
	return &b
}

// Put returns a buffer from Get. The caller must not use it afterwards.
func Put(bp *[]byte) {
	c := cap(*bp)
	for i, cc := range classes {
		if c == cc {
			pools[i].Put(bp)
			return
		}
	}
}
