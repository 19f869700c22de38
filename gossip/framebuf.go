package gossip

import (
	"sync"
	"sync/atomic"
)

// frameBuf is one encoded frame, shared by every send of it: a push to k
// eager peers encodes once. Each holder has a reference (the loop while it
// encodes and while the frame is its last encoded push, and every stream
// sender queue it waits in); the last release returns the buffer to a pool,
// so that the steady path encodes without allocating. A transport never keeps
// the bytes it is given (transport package doc), so a datagram send needs no
// reference of its own.
type frameBuf struct {
	b    []byte
	refs atomic.Int32
}

// frameClasses are the capacities of pooled frame buffers; a frame larger
// than the last is allocated and left to the garbage collector.
var frameClasses = [...]int{256, 2 << 10, 16 << 10, 64 << 10}

var framePools [len(frameClasses)]sync.Pool

// getFrame returns an empty frame buffer with room for size bytes and one
// reference, the caller's.
func getFrame(size int) *frameBuf {
	for i, c := range frameClasses {
		if size <= c {
			fb, _ := framePools[i].Get().(*frameBuf)
			if fb == nil {
				fb = &frameBuf{b: make([]byte, 0, c)}
			}
			fb.b = fb.b[:0]
			fb.refs.Store(1)
			return fb
		}
	}
	fb := &frameBuf{b: make([]byte, 0, size)}
	fb.refs.Store(1)
	return fb
}

// retain adds a reference.
func (fb *frameBuf) retain() { fb.refs.Add(1) }

// release drops a reference; the last one returns the buffer to its pool.
func (fb *frameBuf) release() {
	switch n := fb.refs.Add(-1); {
	case n > 0:
		return
	case n < 0:
		panic("gossip: frame buffer released more often than retained")
	}
	c := cap(fb.b)
	for i, cc := range frameClasses {
		if c == cc {
			framePools[i].Put(fb)
			return
		}
	}
}
