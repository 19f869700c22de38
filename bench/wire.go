package main

import (
	"net"
	"sync/atomic"

	"github.com/plumtree-go/plumtree/internal/bench"
)

// wireCounter counts what one node writes to its sockets: bytes, and write
// calls (a datagram for a packet socket; for a stream, one write call,
// which is one frame or record flushed to the kernel: TCP_NODELAY is Go's
// default, so each write leaves as its own segment or segments).
type wireCounter struct {
	bytes, writes atomic.Uint64
}

// add counts one write of n bytes.
func (c *wireCounter) add(n int) {
	if n > 0 {
		c.bytes.Add(uint64(n))
		c.writes.Add(1)
	}
}

// wire returns the counts so far.
func (c *wireCounter) wire() bench.Wire {
	return bench.Wire{Bytes: c.bytes.Load(), Packets: c.writes.Load()}
}

// sumWire adds up the counters of every node.
func sumWire(counters []*wireCounter) bench.Wire {
	var w bench.Wire
	for _, c := range counters {
		cw := c.wire()
		w.Bytes += cw.Bytes
		w.Packets += cw.Packets
	}
	return w
}

// countingConn is a stream connection whose writes are counted.
type countingConn struct {
	net.Conn
	counter *wireCounter
}

// Write writes b and counts what was written.
func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.counter.add(n)
	return n, err
}
