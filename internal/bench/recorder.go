package bench

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"
)

// The payload of every broadcast is an 8-byte big-endian sequence followed
// by filler up to the workload's size. The sequence's top 16 bits name the
// recorder (the warm-up's, or one measured run's), so that a late delivery
// of an earlier phase is not counted in a later one.
const (
	seqBytes = 8
	genShift = 48
	seqMask  = 1<<genShift - 1
)

// recorder keeps the time each message was published and the time each
// node delivered it.
type recorder struct {
	gen    uint64
	n      int
	base   time.Time
	origin []int // read-only once the recorder is in use

	published []time.Duration // written by the publisher only
	at        []atomic.Int64  // [seq*n+node]: delivery time since base, 0 if none

	delivered, duplicates, stray atomic.Int64
	expected                     int64
	done                         chan struct{}
	once                         sync.Once
}

// newRecorder makes a recorder for len(origin) messages to n nodes,
// message s published by node origin[s].
func newRecorder(gen uint64, n int, origin []int) *recorder {
	r := &recorder{
		gen: gen, n: n, base: time.Now(), origin: origin,
		published: make([]time.Duration, len(origin)),
		at:        make([]atomic.Int64, len(origin)*n),
		expected:  int64(len(origin) * (n - 1)),
		done:      make(chan struct{}),
	}
	if r.expected == 0 {
		close(r.done)
	}
	return r
}

// payload writes message s's payload into buf (of the workload's size).
func (r *recorder) payload(buf []byte, s int) {
	binary.BigEndian.PutUint64(buf, r.gen<<genShift|uint64(s))
}

// publishing records that message s is being published now.
func (r *recorder) publishing(s int) {
	r.published[s] = time.Since(r.base)
}

// deliver records a delivery of payload at node. It is safe for concurrent
// use.
func (r *recorder) deliver(node int, payload []byte) {
	now := max(int64(time.Since(r.base)), 1)
	if len(payload) < seqBytes || node < 0 || node >= r.n {
		r.stray.Add(1)
		return
	}
	v := binary.BigEndian.Uint64(payload)
	if v>>genShift != r.gen {
		return // an earlier phase's message
	}
	s := v & seqMask
	if s >= uint64(len(r.origin)) {
		r.stray.Add(1)
		return
	}
	if r.origin[s] == node {
		return // the origin's own delivery
	}
	if !r.at[int(s)*r.n+node].CompareAndSwap(0, now) {
		r.duplicates.Add(1)
		return
	}
	if r.delivered.Add(1) == r.expected {
		r.once.Do(func() { close(r.done) })
	}
}

// summary reduces what the recorder saw so far.
func (r *recorder) summary() latencies {
	at := make([]time.Duration, len(r.at))
	for i := range r.at {
		at[i] = time.Duration(r.at[i].Load())
	}
	return summarize(r.published, r.origin, at, r.n, int(r.duplicates.Load()))
}
