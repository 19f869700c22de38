package gossip

// The way out: the engine's outbox to the transport, by datagram or through a stream sender per peer.

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"

	"github.com/plumtree-go/plumtree/gossip/internal/wire"
	"github.com/plumtree-go/plumtree/transport"
)

// flushOutbox encodes and sends what the engine produced.
func (p *Plumtree[ID, M]) flushOutbox() {
	for _, s := range p.eng.Outbox() {
		pr := p.peers[s.To]
		if pr == nil {
			p.emit(Event{Kind: EventUnknownPeer, Type: s.Msg.Kind})
			continue
		}
		switch s.Msg.Kind {
		case KindIHave:
			if p.holdAnnouncements(pr, &s.Msg) {
				p.sendAnnouncements(pr, &s.Msg)
			}
		case KindExchange:
			p.trimExchange(&s.Msg)
			p.sendAnnouncements(pr, &s.Msg)
		default:
			p.sendOne(pr, &s.Msg)
		}
	}
}

func (p *Plumtree[ID, M]) sendOne(pr *peer, m *Msg[ID]) {
	var fb *frameBuf
	key := gossipKey{id: m.ID, round: m.Round, rec: m.Recovered, ok: m.Kind == KindGossip}
	if key.ok && key == p.lastKey {
		fb = p.lastFrame // the same push to the next eager peer: encode once
	} else {
		var err error
		if fb, err = p.encode(m); err != nil {
			p.sendError(m.Kind, err)
			return
		}
		if key.ok {
			// The loop keeps its reference while the frame is the last
			// push, and gives up the one to the push before.
			if p.lastFrame != nil {
				p.lastFrame.release()
			}
			p.lastKey, p.lastFrame = key, fb
		} else {
			defer fb.release()
		}
	}
	path := transport.PathStream
	if m.Kind == KindGossip && p.sendDg != nil && len(fb.b) <= min(p.cfg.GossipDatagramMaxSize, p.sendDg.MaxDatagramSize()) {
		path = transport.PathDatagram
	}
	p.transmit(pr, m, path, fb)
}

// sendAnnouncements sends IHave by datagram and exchanges by stream (either
// falls back to the other path), split into frames that fit. An exchange
// that fits in one datagram of GossipDatagramMaxSize goes as one: it is
// periodic, so a lost one costs no more than a late one, and by stream
// each cost a sender goroutine, a TCP segment and its acknowledgement
// (on 20 nodes, 0.4 packets per broadcast at 100 broadcasts/s). An
// exchange that answers one (Msg.ExchangeReply) goes by stream: it names a
// gap that its peer is known to have.
func (p *Plumtree[ID, M]) sendAnnouncements(pr *peer, m *Msg[ID]) {
	if m.Kind == KindExchange && !m.ExchangeReply && p.sendDg != nil && p.exchangeByDatagram(pr, m) {
		return
	}
	path := transport.PathDatagram
	if m.Kind == KindExchange || p.sendDg == nil {
		path = transport.PathStream
	}
	if p.st == nil {
		path = transport.PathDatagram
	}
	limit := p.cfg.MaxMessageSize
	if path == transport.PathDatagram {
		limit = p.sendDg.MaxDatagramSize()
	} else {
		limit = min(limit, p.st.MaxFrameSize())
	}
	room := limit - wire.AnnouncementsHeaderSize(len(p.selfWire))
	// A range at most; announcements are sized exactly (wire.FitAnnouncements
	// counts the prefix once per run of one incarnation).
	per := room / (wire.PrefixSize + 2*binary.MaxVarintLen64)
	if per < 1 {
		p.sendError(m.Kind, fmt.Errorf("a %s frame does not fit in %d bytes", m.Kind, limit))
		return
	}
	anns, ranges := m.Announcements, m.Ranges
	// At least one frame: an empty IHave is a greeting (see Engine.fill).
	for first := true; first || len(anns) > 0 || len(ranges) > 0; first = false {
		part := *m
		n := wire.FitAnnouncements(anns, room)
		if n == 0 && len(anns) > 0 {
			p.sendError(m.Kind, fmt.Errorf("a %s frame does not fit in %d bytes", m.Kind, limit))
			return
		}
		part.Announcements = anns[:n]
		anns = anns[n:]
		n = min(per, len(ranges))
		part.Ranges = ranges[:n]
		ranges = ranges[n:]
		fb, err := p.encode(&part)
		if err != nil {
			p.sendError(m.Kind, err)
			return
		}
		p.transmit(pr, &part, path, fb)
		fb.release()
	}
}

// exchangeByDatagram sends the exchange m to pr in one datagram if it
// fits in GossipDatagramMaxSize, and reports whether it did.
func (p *Plumtree[ID, M]) exchangeByDatagram(pr *peer, m *Msg[ID]) bool {
	limit := min(p.cfg.GossipDatagramMaxSize, p.sendDg.MaxDatagramSize())
	if wire.AnnouncementsHeaderSize(len(p.selfWire))+len(m.Ranges)*(wire.PrefixSize+2) > limit {
		return false // not even at the smallest encoding of each range
	}
	fb, err := p.encode(m)
	if err != nil {
		p.sendError(m.Kind, err)
		return true
	}
	defer fb.release()
	if len(fb.b) > limit {
		return false
	}
	p.transmit(pr, m, transport.PathDatagram, fb)
	return true
}

// transmit sends fb to pr. The caller keeps its reference; a frame queued
// for the stream sender takes one of its own.
func (p *Plumtree[ID, M]) transmit(pr *peer, m *Msg[ID], path transport.Path, fb *frameBuf) {
	kind, b := m.Kind, fb.b
	if path == transport.PathDatagram && p.sendDg == nil {
		path = transport.PathStream
	}
	if path == transport.PathStream && p.st == nil {
		path = transport.PathDatagram
	}
	if path == transport.PathDatagram {
		if err := p.sendDg.SendDatagram(p.ctx, pr.addr, b); err != nil {
			p.sendError(kind, err)
			return
		}
	} else {
		p.queueOf(pr)
		if pr.queued.Load()+int64(len(b)) > int64(p.cfg.SendQueueBytes) {
			p.sendError(kind, fmt.Errorf("send queue to %s holds %d bytes, limit %d", pr.addr, pr.queued.Load(), p.cfg.SendQueueBytes))
			return
		}
		pr.queued.Add(int64(len(b)))
		p.flow.pending.Add(int64(len(b)))
		fb.retain()
		select {
		case pr.queue <- fb:
			p.wakeSender(pr)
			pr.queues++
			if kind == KindGossip {
				p.notePush(m.ID, pr, pr.queues)
			}
		default:
			fb.release()
			pr.queued.Add(-int64(len(b)))
			p.flow.pending.Add(-int64(len(b)))
			p.sendError(kind, fmt.Errorf("send queue to %s is full", pr.addr))
			return
		}
	}
	p.emit(Event{Kind: EventSent, Type: kind, Path: path, Bytes: len(b), Message: m.ID, GraftReply: m.GraftReply})
}

// wakeSender starts pr's stream sender unless one is running. The loop
// calls it after queueing a frame (or closing the queue).
func (p *Plumtree[ID, M]) wakeSender(pr *peer) {
	if pr.running.CompareAndSwap(false, true) {
		p.senders.Add(1)
		p.sendersLive.Add(1)
		p.sendersStarted.Add(1)
		go p.streamSender(pr.addr, pr.queue, pr.queued, pr.sent, pr.running)
	}
}

// streamSender writes one peer's stream frames in order, so that a slow
// peer's backpressure never blocks the protocol loop. It exits once the
// queue is empty (or closed and drained): with payloads up to
// GossipDatagramMaxSize going by datagram, a peer's stream carries a graft,
// a prune or an exchange now and then, and a goroutine per peer waiting
// for them was most of a node's goroutines.
func (p *Plumtree[ID, M]) streamSender(addr string, q <-chan *frameBuf, queued *atomic.Int64, sent *atomic.Uint64, running *atomic.Bool) {
	defer p.senders.Done()
	defer p.sendersLive.Add(-1)
	for {
		select {
		case fb, ok := <-q:
			if !ok {
				return
			}
			p.sendFrame(addr, fb, queued)
			sent.Add(1)
			p.flow.signalRoom()
		default:
			// Idle. A frame queued before the store below finds running
			// set and relies on this goroutine: look again. One queued
			// after it starts a sender of its own (wakeSender).
			running.Store(false)
			if len(q) == 0 || !running.CompareAndSwap(false, true) {
				return
			}
		}
	}
}

// sendFrame sends one queued frame and gives up the queue's reference to it.
// The frame counts as queued until the transport has taken it.
func (p *Plumtree[ID, M]) sendFrame(addr string, fb *frameBuf, queued *atomic.Int64) {
	defer fb.release()
	b := fb.b
	defer func() {
		queued.Add(-int64(len(b)))
		p.flow.pending.Add(-int64(len(b)))
	}()
	if p.ctx.Err() != nil {
		return // closing: drain without sending
	}
	if err := p.st.SendFrame(p.ctx, addr, b); err != nil && p.ctx.Err() == nil {
		p.sendErrs.Add(1)
		p.emit(Event{Kind: EventSendError, Path: transport.PathStream, Bytes: len(b), Err: err})
		p.log.Debug("gossip: stream send failed", "to", addr, "err", err)
	}
}

func (p *Plumtree[ID, M]) sendError(kind Kind, err error) {
	p.sendErrs.Add(1)
	p.emit(Event{Kind: EventSendError, Type: kind, Err: err})
	p.log.Debug("gossip: send failed", "type", kind, "err", err)
}
