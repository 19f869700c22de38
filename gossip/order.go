package gossip

import (
	"container/heap"
	"math"
	"slices"
	"time"
)

// The reorder buffer of Config.Ordered: the rules are in the package
// documentation (Per-origin order). The engine holds only IDs and arrival
// times; the runner keeps the decoded messages until the engine releases
// them (EngineOptions.Release).

// Release is the engine's hand-over of an accepted message to the
// application when Config.Ordered is set (EngineOptions.Release).
type Release[ID comparable] struct {
	ID     MessageID // the message, accepted earlier by EngineOptions.Deliver
	Origin ID        // its origin
	// Skipped is how many of the origin's messages just before this one
	// were given up: not recovered within OrderGapTimeout, or pushed out
	// by OrderMaxHeld.
	Skipped uint64
	// Stale: the message came after a later one of its origin was
	// released. It is not for the application.
	Stale bool
}

// OrderStats are the ordering buffer's sizes and totals (Config.Ordered).
type OrderStats struct {
	Streams int    // origins with a stream here (at most MaxOrigins)
	Held    int    // messages waiting for an earlier one
	Skipped uint64 // messages given up (holes not recovered in time)
	Stale   uint64 // messages that came too late and were dropped
}

// retiredIncarnations is how many earlier incarnations of an origin a stream
// remembers, so that their late messages are recognized as stale.
const retiredIncarnations = 4

type heldMsg struct {
	seq uint64
	id  MessageID
	at  time.Time // arrival
}

type orderStream[ID comparable] struct {
	origin  ID
	inc     uint64
	next    uint64    // the sequence number due next; 0 while the start is open
	joinAt  time.Time // while next is 0: the first message's arrival
	held    []heldMsg // sorted by seq, every one above next
	retired [retiredIncarnations]uint64
	nRet    int // incarnations retired so far (retired is a ring)
	used    time.Time
	gen     uint64 // the deadline that counts: earlier heap entries are stale
	n       uint64 // creation order
	// succ is the origin's next incarnation while the old one may still
	// have messages on their way: its messages wait (succ.held) until
	// switchAt, then it takes the old one's place.
	succ     *orderStream[ID]
	switchAt time.Time
}

type orderTimer[ID comparable] struct {
	at     time.Time
	origin ID
	gen    uint64
}

type orderHeap[ID comparable] []orderTimer[ID]

func (h orderHeap[ID]) Len() int           { return len(h) }
func (h orderHeap[ID]) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h orderHeap[ID]) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *orderHeap[ID]) Push(x any)        { *h = append(*h, x.(orderTimer[ID])) }
func (h *orderHeap[ID]) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// orderBuf is the reorder buffer of every origin. It is part of the engine:
// pure, with a deadline.
type orderBuf[ID comparable] struct {
	gap     time.Duration // Config.OrderGapTimeout
	maxHeld int           // Config.OrderMaxHeld
	maxN    int           // Config.MaxOrigins
	idle    time.Duration // a stream holding nothing is forgotten after this
	release func(Release[ID])
	emit    func(Event)

	streams map[ID]*orderStream[ID]
	timers  orderHeap[ID]
	held    int
	made    uint64 // streams made so far
	skipped uint64
	stale   uint64
}

func newOrderBuf[ID comparable](cfg *Config, release func(Release[ID]), emit func(Event)) *orderBuf[ID] {
	return &orderBuf[ID]{gap: cfg.OrderGapTimeout, maxHeld: cfg.OrderMaxHeld, maxN: cfg.MaxOrigins,
		idle: cfg.seenTTL(), release: release, emit: emit, streams: make(map[ID]*orderStream[ID])}
}

func (b *orderBuf[ID]) stats() OrderStats {
	return OrderStats{Streams: len(b.streams), Held: b.held, Skipped: b.skipped, Stale: b.stale}
}

// offer takes an accepted message of origin and releases what its stream
// allows.
func (b *orderBuf[ID]) offer(now time.Time, origin ID, id MessageID) {
	inc, seq := id.Incarnation(), id.Seq()
	if seq == 0 || seq == math.MaxUint64 {
		// No origin makes these (sequences count from 1, and never that
		// far): a made-up ID, which would stall or wrap the stream.
		b.dropStale(origin, id)
		return
	}
	s := b.streams[origin]
	if s == nil {
		if len(b.streams) >= b.maxN {
			b.evictOldest()
		}
		b.made++
		s = &orderStream[ID]{origin: origin, inc: inc, n: b.made}
		b.streams[origin] = s
	}
	s.used = now
	if s.inc != inc {
		if slices.Contains(s.retired[:min(s.nRet, retiredIncarnations)], inc) {
			b.dropStale(origin, id)
			return
		}
		if s.succ != nil && s.succ.inc != inc {
			b.switchOver(s) // a third incarnation: the second takes over now
		}
		if s.inc != inc {
			// A restart of the origin: its messages wait OrderGapTimeout
			// from the first, for the old incarnation's last ones.
			if s.succ == nil {
				s.succ = &orderStream[ID]{origin: origin, inc: inc}
				s.switchAt = now.Add(b.gap)
			}
			if !b.insert(s.succ, seq, id, now) {
				b.dropStale(origin, id)
				return
			}
			for s.succ != nil && len(s.held)+len(s.succ.held) > b.maxHeld {
				if len(s.held) == 0 {
					b.switchOver(s)
				} else {
					b.giveUpHole(s)
				}
			}
			for len(s.held) > b.maxHeld {
				b.giveUpHole(s)
			}
			b.arm(s)
			return
		}
	}
	if s.next == 0 && seq == 1 {
		s.next = 1 // nothing comes before 1: no need to wait
	}
	if s.next != 0 && seq < s.next {
		b.dropStale(origin, id)
		return
	}
	if !b.insert(s, seq, id, now) {
		b.dropStale(origin, id)
		return
	}
	if s.succ != nil {
		// This incarnation still sends: the waiting one (a restart whose
		// first messages overtook this one's last, or an incarnation a
		// member made up) takes over only once this one has been quiet
		// for OrderGapTimeout, never while it lives.
		s.switchAt = now.Add(b.gap)
	}
	b.drain(s, 0)
	for len(s.held) > b.maxHeld {
		b.giveUpHole(s)
	}
	b.arm(s)
}

// insert adds a message to s's held ones, in sequence order; false if s
// holds that sequence number already (the seen set lets no such thing
// through).
func (b *orderBuf[ID]) insert(s *orderStream[ID], seq uint64, id MessageID, now time.Time) bool {
	i, found := slices.BinarySearchFunc(s.held, seq, func(h heldMsg, seq uint64) int {
		switch {
		case h.seq < seq:
			return -1
		case h.seq > seq:
			return 1
		}
		return 0
	})
	if found {
		return false
	}
	if s.next == 0 && seq == 1 {
		s.next = 1
	}
	if s.next == 0 && len(s.held) == 0 {
		s.joinAt = now
	}
	s.held = slices.Insert(s.held, i, heldMsg{seq: seq, id: id, at: now})
	b.held++
	return true
}

// switchOver ends s's incarnation (its held messages released, its holes
// given up, its late messages stale from now on) and makes the waiting
// next incarnation s's stream, starting at its lowest message.
func (b *orderBuf[ID]) switchOver(s *orderStream[ID]) {
	b.flush(s)
	succ := s.succ
	s.retired[s.nRet%retiredIncarnations] = s.inc
	s.nRet++
	s.inc, s.next, s.held, s.joinAt = succ.inc, succ.next, succ.held, time.Time{}
	s.succ, s.switchAt = nil, time.Time{}
	if s.next == 0 && len(s.held) > 0 {
		s.next = s.held[0].seq // it waited OrderGapTimeout: a stream joined midway
	}
	b.drain(s, 0)
}

// drain releases the held messages that follow next without a hole; the
// first of them carries skipped.
func (b *orderBuf[ID]) drain(s *orderStream[ID], skipped uint64) {
	if s.next == 0 {
		return
	}
	n := 0
	for n < len(s.held) && s.held[n].seq == s.next {
		b.release(Release[ID]{ID: s.held[n].id, Origin: s.origin, Skipped: skipped})
		skipped = 0
		s.next++
		n++
	}
	if n > 0 {
		s.held = slices.Delete(s.held, 0, n)
		b.held -= n
	}
}

// giveUpHole ends the wait for what is missing before the first held
// message (or, at the start of a stream, starts it there) and releases
// what then follows.
func (b *orderBuf[ID]) giveUpHole(s *orderStream[ID]) {
	if len(s.held) == 0 {
		return
	}
	first := s.held[0]
	var skipped uint64
	if s.next == 0 {
		s.next = first.seq // the stream starts here: nothing is skipped
	} else if first.seq > s.next {
		skipped = first.seq - s.next
		s.next = first.seq
		b.skipped += skipped
		b.emit(Event{Kind: EventOrderSkipped, Message: first.id, Count: int(min(skipped, math.MaxInt32))})
	}
	b.drain(s, skipped)
}

// flushAll releases everything s holds, its next incarnation's too.
func (b *orderBuf[ID]) flushAll(s *orderStream[ID]) {
	if s.succ != nil {
		b.switchOver(s)
	}
	b.flush(s)
}

// flush releases everything s holds, giving up every hole.
func (b *orderBuf[ID]) flush(s *orderStream[ID]) {
	for len(s.held) > 0 {
		b.giveUpHole(s)
	}
	s.gen++
}

func (b *orderBuf[ID]) dropStale(origin ID, id MessageID) {
	b.stale++
	b.emit(Event{Kind: EventOrderStale, Message: id})
	b.release(Release[ID]{ID: id, Origin: origin, Stale: true})
}

// deadline is when s must give up its first hole or switch to its next
// incarnation (zero: nothing to do).
func (b *orderBuf[ID]) deadline(s *orderStream[ID]) time.Time {
	if s.succ != nil {
		if d := b.holeDeadline(s); !d.IsZero() && d.Before(s.switchAt) {
			return d
		}
		return s.switchAt
	}
	return b.holeDeadline(s)
}

func (b *orderBuf[ID]) holeDeadline(s *orderStream[ID]) time.Time {
	if len(s.held) == 0 {
		return time.Time{}
	}
	if s.next == 0 {
		return s.joinAt.Add(b.gap)
	}
	oldest := s.held[0].at
	for _, h := range s.held[1:] {
		if h.at.Before(oldest) {
			oldest = h.at
		}
	}
	return oldest.Add(b.gap)
}

// arm schedules s's deadline, making its earlier one stale.
func (b *orderBuf[ID]) arm(s *orderStream[ID]) {
	s.gen++
	if at := b.deadline(s); !at.IsZero() {
		heap.Push(&b.timers, orderTimer[ID]{at: at, origin: s.origin, gen: s.gen})
	}
	b.dropStaleTimers()
}

func (b *orderBuf[ID]) dropStaleTimers() {
	for len(b.timers) > 0 {
		t := b.timers[0]
		if s := b.streams[t.origin]; s != nil && s.gen == t.gen {
			return
		}
		heap.Pop(&b.timers)
	}
}

// tick gives up the holes whose time has come.
func (b *orderBuf[ID]) tick(now time.Time) {
	for len(b.timers) > 0 && !now.Before(b.timers[0].at) {
		t := heap.Pop(&b.timers).(orderTimer[ID])
		s := b.streams[t.origin]
		if s == nil || s.gen != t.gen {
			continue
		}
		for at := b.deadline(s); !at.IsZero() && !now.Before(at); at = b.deadline(s) {
			if s.succ != nil && !now.Before(s.switchAt) {
				b.switchOver(s)
			} else {
				b.giveUpHole(s)
			}
		}
		b.arm(s)
	}
	b.dropStaleTimers()
}

// nextDeadline is the earliest hole's deadline (zero: none).
func (b *orderBuf[ID]) nextDeadline() time.Time {
	if len(b.timers) == 0 {
		return time.Time{}
	}
	return b.timers[0].at
}

// evictOldest releases and forgets the least recently used stream.
func (b *orderBuf[ID]) evictOldest() {
	var oldest *orderStream[ID]
	for _, s := range b.streams {
		// Ties broken by creation order, so that the output never depends
		// on map order.
		if oldest == nil || s.used.Before(oldest.used) || (s.used.Equal(oldest.used) && s.n < oldest.n) {
			oldest = s
		}
	}
	if oldest != nil {
		b.flushAll(oldest)
		delete(b.streams, oldest.origin)
	}
}

// sweep forgets streams that hold nothing and have been idle for b.idle.
func (b *orderBuf[ID]) sweep(now time.Time) {
	for o, s := range b.streams {
		if len(s.held) == 0 && s.succ == nil && now.Sub(s.used) >= b.idle {
			delete(b.streams, o)
		}
	}
}
