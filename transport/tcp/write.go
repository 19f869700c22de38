package tcp

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"math"
	"net"
	"time"

	"github.com/plumtree-go/plumtree/transport/internal/bufpool"
)

// The write loop of a connection, and how a failed connection is retired.

// writeLoop drains p's queue into oc until the connection fails, idles out
// or the transport closes.
func (t *Transport) writeLoop(p *peer, oc *outConn) {
	defer t.wg.Done()
	var idle *time.Timer
	var idleC <-chan time.Time
	if t.cfg.IdleTimeout > 0 {
		idle = time.NewTimer(t.cfg.IdleTimeout)
		defer idle.Stop()
		idleC = idle.C
	}
	var bufs net.Buffers
	var bw *bufio.Writer
	if _, ok := oc.c.(*tls.Conn); ok {
		bw = bufio.NewWriterSize(oc.c, 16<<10) // one TLS record
	}
	var spare []*[]byte // the last batch's slice, for the queue to reuse
	for {
		p.mu.Lock()
		batch := p.q
		p.q, p.qBytes = spare, 0
		spare = nil
		if p.space != nil {
			close(p.space)
			p.space = nil
		}
		p.mu.Unlock()

		if len(batch) == 0 {
			select {
			case <-oc.wake:
				continue
			case <-oc.dead:
				t.fail(p, oc, errors.New("connection closed by peer"), 0)
				return
			case <-t.done:
				return
			case <-idleC:
				if t.retire(p, oc) {
					return
				}
				idle.Reset(t.cfg.IdleTimeout)
				continue
			}
		}

		if t.cfg.WriteTimeout > 0 {
			oc.c.SetWriteDeadline(time.Now().Add(t.cfg.WriteTimeout))
		}
		var n int64
		var err error
		if bw != nil {
			// TLS has no vectored write: coalesce small frames into
			// full records, one write each.
			for _, f := range batch {
				if _, err = bw.Write(*f); err != nil {
					break
				}
			}
			if err == nil {
				err = bw.Flush()
			}
			if err == nil {
				n = math.MaxInt64 // all or (on error) nothing counts
			}
		} else {
			bufs = bufs[:0]
			for _, f := range batch {
				bufs = append(bufs, *f)
			}
			n, err = bufs.WriteTo(oc.c)
			clear(bufs[:cap(bufs)])
		}
		// Count the frames written whole. Written or lost, none is needed
		// any more: the buffers go back to the pool.
		var whole int
		for i, f := range batch {
			if n >= int64(len(*f)) {
				n -= int64(len(*f))
				whole++
				t.framesSent.Add(1)
				_, prefix := binary.Uvarint(*f)
				t.bytesSent.Add(uint64(len(*f) - prefix))
			} else {
				n = -1 // a frame after a partial one is not whole either
			}
			bufpool.Put(f)
			batch[i] = nil
		}
		spare = batch[:0]
		if err != nil {
			if t.closed.Load() {
				t.framesDropped.Add(uint64(len(batch) - whole))
				return
			}
			t.fail(p, oc, err, len(batch)-whole)
			return
		}
		if idle != nil {
			idle.Reset(t.cfg.IdleTimeout)
		}
	}
}

// fail ends a failed connection: it drops what is queued so that the next
// SendFrame dials again.
func (t *Transport) fail(p *peer, oc *outConn, err error, lost int) {
	oc.c.Close()
	p.mu.Lock()
	lost += len(p.q)
	if p.conn == oc {
		p.conn = nil
		t.conns.Add(-1)
	}
	p.q, p.qBytes = nil, 0
	if p.space != nil {
		close(p.space)
		p.space = nil
	}
	p.mu.Unlock()
	t.framesDropped.Add(uint64(lost))
	if !t.closed.Load() {
		t.log.Warn("tcp: connection failed", "local", t.addr, "peer", p.addr, "err", err, "frames_dropped", lost)
	}
	t.forget(p)
}

// retire closes an idle connection; it reports false if frames arrived.
func (t *Transport) retire(p *peer, oc *outConn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.q) > 0 {
		return false
	}
	if p.conn != oc {
		return true // Close took it
	}
	p.conn = nil
	p.removed = true
	if t.peers[p.addr] == p {
		delete(t.peers, p.addr)
	}
	oc.c.Close()
	t.conns.Add(-1)
	t.log.Debug("tcp: closed idle connection", "local", t.addr, "peer", p.addr)
	return true
}
