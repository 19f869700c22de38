package gossip

import (
	"context"
	"encoding/binary"
	"math"
	"sync/atomic"
	"time"

	"github.com/plumtree-go/plumtree/transport"
)

// Flow control. The node bounds what it has accepted from its own
// publishers but not yet handed to the transport: a local broadcast is taken
// only while every peer's stream queue holds less than
// Config.PublishQueueBytes (and half of SendQueueSize frames) and all of them
// together less than Config.PublishPendingBytes. Broadcast waits for room,
// TryBroadcast refuses with a *BusyError. Frames relayed for other origins
// never wait: they may fill a queue up to SendQueueBytes, so the room left
// above the publishers' share is the relays'.
//
// An announcement (IHave) for a message whose eager push from this node is
// still in one of its stream queues is held back until the push has left:
// otherwise a lazy neighbour would hear of the message by datagram long
// before any payload could arrive, and graft it, for a delay that is only
// this node's queueing (issue 17).

// Request states: a broadcast request is taken by the loop (sent) or
// withdrawn by its caller (never sent), whichever comes first.
const (
	reqPending int32 = iota
	reqTaken
	reqWithdrawn
)

// flow is the runner's flow-control state. The atomics are shared with the
// stream senders; the rest is owned by the loop.
type flow struct {
	pending  atomic.Int64  // bytes in every peer's stream queue
	wantRoom atomic.Bool   // the loop waits for frames to leave: senders signal room
	room     chan struct{} // cap 1: a frame left a queue while wantRoom

	// Lateness of payloads: per origin (by wire ID), the least age seen in
	// this window and the last (a clock offset cancels out), and how much
	// older than that payloads arrive now.
	ageMin     map[string][2]time.Duration
	windowEnds time.Time
	lag        time.Duration
	lagAt      time.Time // when lag was last set

	queues  []*peer         // peers with a stream queue
	waiting []*broadcastReq // Broadcast calls waiting for room, in order
	pushes  map[MessageID][]queuedAt
	sweepAt int // sweep pushes when it grows past this
	held    []heldAnn
}

// queuedAt is a push waiting in a peer's stream queue: it has left when the
// peer's sender has taken frame number seq.
type queuedAt struct {
	pr  *peer
	seq uint64
}

// heldAnn is an announcement held back until this node's pushes of its
// message have left.
type heldAnn struct {
	to    *peer
	ann   Announcement
	until time.Time
}

// maxHeld bounds the announcements held back; past it they go at once.
const maxHeld = 8192

func (f *flow) init() {
	f.room = make(chan struct{}, 1)
	f.pushes = make(map[MessageID][]queuedAt)
	f.sweepAt = 256
}

// signalRoom is called by a stream sender after a frame left its queue.
func (f *flow) signalRoom() {
	if f.wantRoom.Load() {
		select {
		case f.room <- struct{}{}:
		default:
		}
	}
}

// publishLimits returns the per-peer and per-node byte limits for local
// broadcasts.
func (c *Config) publishLimits() (perPeer, perNode int64) {
	perPeer = int64(min(c.PublishQueueBytes, c.SendQueueBytes/2))
	if perPeer <= 0 {
		perPeer = int64(min(256<<10, c.SendQueueBytes/2))
	}
	perNode = int64(c.PublishPendingBytes)
	if perNode <= 0 {
		perNode = 4 * perPeer
	}
	return perPeer, perNode
}

// busy reports why a local broadcast cannot be taken now, or nil.
func (p *Plumtree[ID, M]) busy() *BusyError {
	perPeer, perNode := p.cfg.publishLimits()
	maxFrames := max(1, p.cfg.SendQueueSize/2)
	for _, pr := range p.flow.queues {
		if q, n := pr.queued.Load(), len(pr.queue); q >= perPeer || n >= maxFrames {
			return &BusyError{Peer: pr.addr, Queued: q, Frames: n, Limit: perPeer}
		}
	}
	if q := p.flow.pending.Load(); q >= perNode {
		return &BusyError{Queued: q, Limit: perNode}
	}
	return nil
}

// TryBroadcast is Broadcast that never waits for room: when the node's send
// queues are too full to take the message now (or other Broadcast calls
// already wait), it returns a *BusyError, which errors.Is ErrBusy, and the
// message is not sent. The application can then drop it, or keep it and
// try again later.
func (p *Plumtree[ID, M]) TryBroadcast(ctx context.Context, m M) (MessageID, error) {
	return p.publish(ctx, m, false)
}

func (p *Plumtree[ID, M]) publish(ctx context.Context, m M, wait bool) (MessageID, error) {
	// A done context never sends, whatever the loop would do.
	if err := ctx.Err(); err != nil {
		return MessageID{}, err
	}
	pl, err := p.encodePayload(m)
	if err != nil {
		return MessageID{}, err
	}
	req := &broadcastReq{ctx: ctx, payload: pl, wait: wait, reply: make(chan broadcastResp, 1)}
	select {
	case p.bcast <- req:
	case <-ctx.Done():
		return MessageID{}, ctx.Err()
	case <-p.stop:
		return MessageID{}, ErrClosed
	}
	var withdraw error
	select {
	case r := <-req.reply:
		return r.id, r.err
	case <-ctx.Done():
		withdraw = ctx.Err()
	case <-p.stop:
		withdraw = ErrClosed
	}
	if req.state.CompareAndSwap(reqPending, reqWithdrawn) {
		return MessageID{}, withdraw
	}
	r := <-req.reply // the loop took it first: it answers at once
	return r.id, r.err
}

// onBroadcast handles a broadcast request on the loop.
func (p *Plumtree[ID, M]) onBroadcast(req *broadcastReq) {
	if err := req.ctx.Err(); err != nil {
		// Done before the loop could take it: never sent.
		if req.state.CompareAndSwap(reqPending, reqWithdrawn) {
			req.reply <- broadcastResp{err: err}
		}
		return
	}
	p.flow.wantRoom.Store(true) // before looking: a frame leaving after signals
	if len(p.flow.waiting) == 0 {
		b := p.busy()
		if b == nil {
			p.publishNow(req)
			return
		}
		if !req.wait {
			if req.state.CompareAndSwap(reqPending, reqWithdrawn) {
				req.reply <- broadcastResp{err: b}
			}
			return
		}
	} else if !req.wait {
		if req.state.CompareAndSwap(reqPending, reqWithdrawn) {
			req.reply <- broadcastResp{err: &BusyError{Waiting: len(p.flow.waiting)}}
		}
		return
	}
	// Wait for room, first come first served; drop the withdrawn.
	w := p.flow.waiting[:0]
	for _, r := range p.flow.waiting {
		if r.state.Load() == reqPending {
			w = append(w, r)
		}
	}
	clear(p.flow.waiting[len(w):])
	p.flow.waiting = append(w, req)
}

// publishNow hands a request to the engine, unless its caller withdrew it.
func (p *Plumtree[ID, M]) publishNow(req *broadcastReq) {
	if !req.state.CompareAndSwap(reqPending, reqTaken) {
		return
	}
	// The trace starts once the loop has the broadcast, so that a broadcast
	// refused before (a cancelled context, a closed node, no room) records
	// no span.
	var trace []byte
	if p.o.Tracer != nil {
		if tc := p.o.Tracer.Broadcast(req.ctx); len(tc) <= MaxTraceSize {
			trace = tc
		}
	}
	id, err := p.eng.Broadcast(p.clock.Now(), req.payload, trace)
	req.reply <- broadcastResp{id: id, err: err}
	p.flushOutbox() // so that the next look at the queues sees this one
}

// onRoom runs when frames have left the stream queues (or a peer's queue
// went away): it sends the announcements no longer held and takes waiting
// broadcasts while there is room.
func (p *Plumtree[ID, M]) onRoom(now time.Time) {
	p.releaseHeld(now, false)
	for len(p.flow.waiting) > 0 {
		req := p.flow.waiting[0]
		if req.state.Load() == reqPending && p.busy() != nil {
			break
		}
		p.flow.waiting[0] = nil
		p.flow.waiting = p.flow.waiting[1:]
		if req.ctx.Err() != nil {
			if req.state.CompareAndSwap(reqPending, reqWithdrawn) {
				req.reply <- broadcastResp{err: req.ctx.Err()}
			}
			continue
		}
		p.publishNow(req)
	}
	if len(p.flow.waiting) == 0 {
		p.flow.waiting = nil
	}
	// Only ever cleared here, when nothing waits: whoever needs room again
	// sets it before looking at the queues, so no departure is missed.
	p.flow.wantRoom.Store(len(p.flow.waiting) > 0 || len(p.flow.held) > 0)
}

// notePush records a push of id queued for pr as frame number seq.
func (p *Plumtree[ID, M]) notePush(id MessageID, pr *peer, seq uint64) {
	p.flow.pushes[id] = append(p.flow.pushes[id], queuedAt{pr: pr, seq: seq})
	if len(p.flow.pushes) > p.flow.sweepAt {
		for mid, qs := range p.flow.pushes {
			if pushesLeft(qs) {
				delete(p.flow.pushes, mid)
			}
		}
		p.flow.sweepAt = max(256, 2*len(p.flow.pushes))
	}
}

func pushesLeft(qs []queuedAt) bool {
	for _, q := range qs {
		if q.pr.sent.Load() < q.seq && !q.pr.gone {
			return false
		}
	}
	return true
}

// pushQueued reports whether a push of id still waits in a stream queue.
func (p *Plumtree[ID, M]) pushQueued(id MessageID) bool {
	qs, ok := p.flow.pushes[id]
	if !ok {
		return false
	}
	if pushesLeft(qs) {
		delete(p.flow.pushes, id)
		return false
	}
	return true
}

// holdAnnouncements sends m (an IHave to pr) without the announcements of
// messages whose push from here is still queued; those are held until it
// has left. It reports whether anything is left to send.
func (p *Plumtree[ID, M]) holdAnnouncements(pr *peer, m *Msg[ID]) bool {
	if len(p.flow.pushes) == 0 || len(m.Announcements) == 0 {
		return true
	}
	var keep []Announcement
	held := false
	for i, a := range m.Announcements {
		if len(p.flow.held) < maxHeld && p.pushQueued(MessageID(a.ID)) {
			if !held {
				keep = append(keep[:0], m.Announcements[:i]...)
				held = true
			}
			p.flow.held = append(p.flow.held, heldAnn{to: pr, ann: a, until: p.clock.Now().Add(p.cfg.GraftMaxBackoff)})
			continue
		}
		if held {
			keep = append(keep, a)
		}
	}
	if !held {
		return true
	}
	p.flow.wantRoom.Store(true)
	m.Announcements = keep
	return len(keep) > 0
}

// lagWindow is how long the least age of an origin's payloads is kept.
const lagWindow = 10 * time.Second

// noteLateness measures how late a payload from origin, broadcast at ts
// (the origin's clock, Unix ns), arrives compared with the quickest of that
// origin's payloads recently: that difference is queueing, here, on the
// way, or at a neighbour. The engine's first graft waits that much longer
// (Engine.SetGraftDelay), so that a message that is only late is not
// grafted: a lazy neighbour's announcement comes by datagram and overtakes
// payloads that wait in stream queues, whatever the node that queues them.
// The estimate rises at once and falls by 250 ms per second.
func (p *Plumtree[ID, M]) noteLateness(origin []byte, ts int64) {
	now := p.clock.Now()
	age := now.Sub(time.Unix(0, ts))
	f := &p.flow
	if f.ageMin == nil || now.After(f.windowEnds) {
		old := f.ageMin
		f.ageMin = make(map[string][2]time.Duration, len(old))
		if len(old) <= p.cfg.MaxOrigins {
			for k, v := range old {
				f.ageMin[k] = [2]time.Duration{math.MaxInt64, v[0]}
			}
		}
		f.windowEnds = now.Add(lagWindow)
	}
	m, ok := f.ageMin[string(origin)]
	if !ok || age < m[0] {
		if !ok {
			m[1] = age
		}
		m[0] = age
		f.ageMin[string(origin)] = m // allocates the key: only when it changes
	}
	// Up at once, down by a quarter of the time passed: a node that falls
	// behind in bursts (a pause, a busy core) stays patient between them.
	late := age - min(m[0], m[1])
	f.lag = max(late, f.lag-now.Sub(f.lagAt)/4, 0)
	f.lagAt = now
	p.eng.SetGraftDelay(f.lag)
}

// streamsFirst reads the stream frames already waiting before a datagram is
// handled. An announcement comes by datagram, its payload by stream; when
// this node falls behind, the payload that came first still waits in the
// stream queue and the announcement, read first, would start a graft for a
// message this node already has. Bounded: a busy stream path must not
// starve the datagrams.
func (p *Plumtree[ID, M]) streamsFirst(stCh <-chan transport.Message) {
	for range maxStreamsFirst {
		select {
		case m, ok := <-stCh:
			if !ok {
				return
			}
			p.receive(m)
			p.flushOutbox()
		default:
			return
		}
	}
}

// maxStreamsFirst bounds the stream frames read ahead of one datagram.
const maxStreamsFirst = 64

// trimExchange takes out of an exchange's ranges the newest messages whose
// push from here is still queued, as holdAnnouncements does for IHave: a
// neighbour that reads them would graft what is only late in this node's
// queues. Only a range's tail is trimmed (the newest messages are the ones
// queued); the next exchange announces them.
func (p *Plumtree[ID, M]) trimExchange(m *Msg[ID]) {
	if len(p.flow.pushes) == 0 {
		return
	}
	var out []Range
	for i, r := range m.Ranges {
		inc := binary.BigEndian.Uint64(r.Prefix[:])
		n := r.N
		for n > 0 && p.pushQueued(makeID(inc, r.First+n-1)) {
			n--
		}
		if n == r.N && out == nil {
			continue
		}
		if out == nil {
			out = append(make([]Range, 0, len(m.Ranges)), m.Ranges[:i]...)
		}
		if n > 0 {
			r.N = n
			out = append(out, r)
		}
	}
	if out != nil {
		m.Ranges = out
	}
}

// releaseHeld sends the held announcements whose pushes have left, or that
// have waited GraftMaxBackoff (a push stuck behind a dead peer must not
// silence the message), or all of them (all).
func (p *Plumtree[ID, M]) releaseHeld(now time.Time, all bool) {
	if len(p.flow.held) == 0 {
		return
	}
	var peers []*peer // in the order first held, so that runs repeat
	var out map[*peer][]Announcement
	keep := p.flow.held[:0]
	for _, h := range p.flow.held {
		if h.to.gone {
			continue
		}
		if !all && now.Before(h.until) && p.pushQueued(MessageID(h.ann.ID)) {
			keep = append(keep, h)
			continue
		}
		if out == nil {
			out = make(map[*peer][]Announcement)
		}
		if _, ok := out[h.to]; !ok {
			peers = append(peers, h.to)
		}
		out[h.to] = append(out[h.to], h.ann)
	}
	clear(p.flow.held[len(keep):])
	p.flow.held = keep
	for _, pr := range peers {
		p.sendAnnouncements(pr, &Msg[ID]{Kind: KindIHave, Announcements: out[pr]})
	}
}

// queueOf makes pr's stream queue on first use; wakeSender starts its sender.
func (p *Plumtree[ID, M]) queueOf(pr *peer) {
	if pr.queue != nil {
		return
	}
	pr.queue, pr.queued = make(chan *frameBuf, p.cfg.SendQueueSize), new(atomic.Int64)
	pr.sent, pr.running = new(atomic.Uint64), new(atomic.Bool)
	p.flow.queues = append(p.flow.queues, pr)
}

// forgetQueue removes pr from the queues flow control looks at.
func (p *Plumtree[ID, M]) forgetQueue(pr *peer) {
	pr.gone = true
	for i, q := range p.flow.queues {
		if q == pr {
			p.flow.queues = append(p.flow.queues[:i], p.flow.queues[i+1:]...)
			break
		}
	}
}
