package tcp

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"math"
	"time"

	"github.com/plumtree-go/plumtree/transport/internal/bufpool"
)

// The write loop of a connection, and how a failed connection is retired.

// kick starts oc's writer unless one is running. p.mu must be held, with
// oc p's connection: Close takes the connection away under p.mu before it
// waits for the goroutines, so none starts after.
//
// The writer exits once the queue is empty. A connection used now and then
// (a graft, an exchange: payloads mostly go by datagram) then costs one
// goroutine, its reader, instead of a writer waiting too.
func (t *Transport) kick(p *peer, oc *outConn) {
	if oc.writing || oc.done {
		return
	}
	oc.writing = true
	if oc.idle != nil {
		oc.idle.Stop()
	}
	t.wg.Add(1)
	t.writers.Add(1)
	go t.writeLoop(p, oc)
}

// idleOut retires oc after IdleTimeout without frames; a writer that goes
// idle arms the timer again.
func (t *Transport) idleOut(p *peer, oc *outConn) {
	p.mu.Lock()
	busy := oc.writing || oc.done || len(p.q) > 0
	p.mu.Unlock()
	if !busy {
		t.retire(p, oc)
	}
}

// writeLoop drains p's queue into oc until the queue is empty or the
// connection fails.
func (t *Transport) writeLoop(p *peer, oc *outConn) {
	defer t.wg.Done()
	defer func() {
		live := t.writers.Add(-1)
		if t.hookWriterExit != nil {
			t.hookWriterExit(live)
		}
	}()
	if _, ok := oc.c.(*tls.Conn); ok && oc.bw == nil {
		oc.bw = bufio.NewWriterSize(oc.c, 16<<10) // one TLS record
	}
	for {
		p.mu.Lock()
		if oc.done || p.conn != oc {
			// The connection failed or was retired while this writer
			// wrote: the queue is the next connection's (its own writer
			// drains it), not this one's to write to a closed socket.
			oc.writing = false
			p.mu.Unlock()
			return
		}
		batch := p.q
		p.q, p.qBytes = oc.spare, 0
		oc.spare = nil
		if p.space != nil {
			close(p.space)
			p.space = nil
		}
		if len(batch) == 0 {
			oc.spare = batch
			oc.writing = false
			if oc.idle != nil && !oc.done {
				oc.idle.Reset(t.cfg.IdleTimeout)
			}
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()

		if t.cfg.WriteTimeout > 0 {
			oc.c.SetWriteDeadline(time.Now().Add(t.cfg.WriteTimeout))
		}
		var n int64
		var err error
		if bw := oc.bw; bw != nil {
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
			bufs := oc.bufs[:0]
			for _, f := range batch {
				bufs = append(bufs, *f)
			}
			n, err = bufs.WriteTo(oc.c)
			clear(bufs[:cap(bufs)])
			oc.bufs = bufs[:0]
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
		oc.spare = batch[:0]
		if err != nil {
			if t.closed.Load() {
				t.framesDropped.Add(uint64(len(batch) - whole))
				return
			}
			t.fail(p, oc, err, len(batch)-whole)
			return
		}
	}
}

// fail ends a failed connection: it drops what is queued so that the next
// SendFrame dials again.
func (t *Transport) fail(p *peer, oc *outConn, err error, lost int) {
	oc.c.Close()
	p.mu.Lock()
	if oc.done {
		// Its reader and its writer both noticed, or it was retired
		// or closed: the first to see it has done the rest.
		p.mu.Unlock()
		t.framesDropped.Add(uint64(lost))
		return
	}
	oc.done = true
	if oc.idle != nil {
		oc.idle.Stop()
	}
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
	if len(p.q) > 0 || oc.writing || oc.done {
		return false
	}
	oc.done = true
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
