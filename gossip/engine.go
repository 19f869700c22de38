package gossip

import (
	"bytes"
	"container/heap"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/plumtree-go/plumtree/gossip/internal/cache"
	"github.com/plumtree-go/plumtree/gossip/internal/ratelimit"
)

// EngineOptions configure an Engine.
type EngineOptions[ID comparable] struct {
	Self   ID     // this node's ID
	Config Config // validated by NewEngine
	// Seed drives message IDs and peer sampling. Two engines of one cluster
	// must not share a seed (New derives one from the node's ID).
	Seed uint64
	// Deliver is called for each message the first time it arrives, before
	// it is cached or forwarded. Returning false rejects it: it is not
	// forwarded and a later copy is treated as a duplicate.
	Deliver func(RawDelivery[ID]) bool
	// Retrace, if set, is called after a message that arrived with a trace
	// context was delivered; what it returns is the trace context this node
	// forwards with the message (nil: none). Without it, the context that
	// arrived is forwarded as it is.
	Retrace func(RawDelivery[ID]) []byte
	// Observer, if not nil, receives the engine's events.
	Observer Observer
}

// Engine is the Plumtree protocol as a state machine: it has no goroutines,
// never reads the clock and does no I/O. Inputs (Broadcast, Receive,
// SetMembers, PeerUp, PeerDown, Tick) take the current time; outputs are the
// frames in Outbox, the Deliver callback and NextDeadline, the time at which
// the engine wants Tick called. The runner (New) drives one on real
// transports; the simulator drives thousands under virtual time.
//
// An Engine is not safe for concurrent use.
type Engine[ID comparable] struct {
	self    ID
	cfg     Config
	rng     *rand.Rand
	deliver func(RawDelivery[ID]) bool
	retrace func(RawDelivery[ID]) []byte
	obs     Observer

	members peerSet[ID]
	eager   peerSet[ID]
	lazy    peerSet[ID]

	cache   *cache.Store[cached[ID]]
	seen    *cache.Seen
	missing map[MessageID]*missingMsg[ID]
	// missingBy counts the missing entries each peer created, so that one
	// peer announcing made-up IDs fills at most its share of MaxMissing.
	missingBy map[ID]int
	timers    timerHeap

	lazyQ    map[ID]*lazyQueue
	lazyDue  []lazyDue[ID] // queues in the order they became non-empty
	graftRL  map[ID]*ratelimit.Bucket
	ihaveRL  map[ID]*ratelimit.Bucket
	quiet    map[ID]int       // neighbours picked by fill that have sent nothing since: greetings left
	ties     map[ID]time.Time // links a graft went over, and until when duplicates on them do not prune
	pruned   map[ID]time.Time // when a Prune last went to each peer (see prune)
	asked    map[ID]time.Time // peers that grafted this node, and until when they hear of every message (see announceTargets)
	outbox   []Send[ID]
	targets  []ID // scratch for announceTargets, reused so that choosing allocates nothing
	started  bool
	sweepAt  time.Time
	sweepGap time.Duration
	xchgAt   time.Time
}

type cached[ID comparable] struct {
	recovered bool // arrived through a graft somewhere on its path
	origin    ID
	round     uint32 // hops travelled on arrival; 0 at the origin
	ts        int64
	trace     []byte
	payload   Payload
}

type announcer[ID comparable] struct {
	peer      ID
	round     uint32
	exchanged bool // from an exchange, not an IHave: no tree information
}

type missingMsg[ID comparable] struct {
	creator     ID              // the first announcer: the entry counts against its share
	announcers  []announcer[ID] // in arrival order
	next        int             // grafts go to announcers[next % len]: an announcer added later is next in turn
	attempt     int             // grafts sent so far
	grafted     bool
	lastGrafted ID
	firstGraft  time.Time
}

// announced reports whether p announced the message (mm may be nil).
func (mm *missingMsg[ID]) announced(p ID) bool {
	if mm == nil {
		return false
	}
	for _, a := range mm.announcers {
		if a.peer == p {
			return true
		}
	}
	return false
}

type lazyQueue struct {
	anns  []Announcement
	since time.Time
}

type lazyDue[ID comparable] struct {
	peer  ID
	since time.Time
}

// NewEngine makes an engine. The configuration is validated.
func NewEngine[ID comparable](o EngineOptions[ID]) (*Engine[ID], error) {
	if err := o.Config.Validate(); err != nil {
		return nil, err
	}
	cfg := o.Config
	e := &Engine[ID]{
		self:      o.Self,
		cfg:       cfg,
		rng:       rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15)),
		deliver:   o.Deliver,
		retrace:   o.Retrace,
		obs:       o.Observer,
		members:   newPeerSet[ID](),
		eager:     newPeerSet[ID](),
		lazy:      newPeerSet[ID](),
		cache:     cache.New[cached[ID]](cfg.MessageCacheTTL, cfg.MessageCacheMaxSize),
		seen:      cache.NewSeen(cfg.seenTTL(), cfg.seenMaxSize()),
		missing:   make(map[MessageID]*missingMsg[ID]),
		missingBy: make(map[ID]int),
		lazyQ:     make(map[ID]*lazyQueue),
		graftRL:   make(map[ID]*ratelimit.Bucket),
		ihaveRL:   make(map[ID]*ratelimit.Bucket),
		quiet:     make(map[ID]int),
		ties:      make(map[ID]time.Time),
		pruned:    make(map[ID]time.Time),
		asked:     make(map[ID]time.Time),
	}
	if e.deliver == nil {
		e.deliver = func(RawDelivery[ID]) bool { return true }
	}
	return e, nil
}

func (e *Engine[ID]) emit(ev Event) {
	if e.obs != nil {
		e.obs.Observe(ev)
	}
}

func (e *Engine[ID]) start(now time.Time) {
	if e.started {
		return
	}
	e.started = true
	e.sweepGap = e.cfg.CleanupMinInterval
	e.sweepAt = now.Add(e.sweepGap)
	if e.cfg.ExchangeInterval > 0 {
		e.xchgAt = now.Add(e.jitter(e.cfg.ExchangeInterval))
	}
}

// jitter returns d scaled by a random factor in [0.75, 1.25), so that
// periodic work of many nodes does not fall in step.
func (e *Engine[ID]) jitter(d time.Duration) time.Duration {
	return d*3/4 + time.Duration(e.rng.Int64N(int64(d)/2+1))
}

func (e *Engine[ID]) send(to ID, m Msg[ID]) {
	e.outbox = append(e.outbox, Send[ID]{To: to, Msg: m})
}

// Outbox returns the messages the engine wants sent since the last call, in
// order. The slice is valid until the next call of any Engine method.
func (e *Engine[ID]) Outbox() []Send[ID] {
	out := e.outbox
	e.outbox = e.outbox[:0]
	return out
}

// Broadcast starts the dissemination of payload from this node and returns
// its new ID. The payload is not delivered locally.
func (e *Engine[ID]) Broadcast(now time.Time, p Payload, trace []byte) (MessageID, error) {
	e.start(now)
	if len(p.Data) > e.cfg.MaxMessageSize {
		return MessageID{}, &MessageTooLargeError{Size: len(p.Data), Limit: e.cfg.MaxMessageSize}
	}
	var id MessageID
	for {
		a, b := e.rng.Uint64(), e.rng.Uint64()
		for i := range 8 {
			id[i], id[8+i] = byte(a>>(8*i)), byte(b>>(8*i))
		}
		if !e.seen.Has(id, now) {
			break
		}
	}
	c := cached[ID]{origin: e.self, ts: now.UnixNano(), trace: trace, payload: p}
	e.remember(now, id, c)
	e.push(now, id, &c, e.self, nil)
	return id, nil
}

func (e *Engine[ID]) remember(now time.Time, id MessageID, c cached[ID]) {
	if n := e.seen.Add(id, now); n > 0 {
		e.emit(Event{Kind: EventSeenEvicted, Count: n})
	}
	if n := e.cache.Put(id, c, now); n > 0 {
		e.emit(Event{Kind: EventCacheEvicted, Count: n})
	}
}

// push sends the message to every eager peer except the one it came from,
// and queues an announcement for at most LazyFanout lazy peers (see
// announceTargets). miss, if not nil, is the message's missing entry: its
// announcers have the message.
func (e *Engine[ID]) push(now time.Time, id MessageID, c *cached[ID], from ID, miss *missingMsg[ID]) {
	m := Msg[ID]{Kind: KindGossip, ID: id, Round: c.round + 1, Origin: c.origin,
		Timestamp: c.ts, Trace: c.trace, Payload: c.payload, Recovered: c.recovered}
	for _, p := range e.eager.list {
		if p != from {
			e.send(p, m)
		}
	}
	ann := Announcement{ID: id, Round: c.round + 1}
	for _, p := range e.announceTargets(now, from, miss) {
		e.announce(now, p, ann)
	}
}

// announceTargets returns the lazy peers to announce a message to: those
// that do not have it (not from, not one of miss's announcers), and of them
// at most LazyFanout, a fresh random choice for each message (0: no cap),
// except that a lazy peer that grafted this node within MessageCacheTTL
// always gets it, on top of the choice if need be.
//
// Links go both ways, so a node's lazy set also holds the nodes that picked
// it: about twice LazyFanout neighbours, each of which would otherwise hear
// of every message (on 20 nodes with LANConfig, 12.5 announcements per
// node and message, most of them one datagram each). The paper announces
// to the lazy part of a small active view; a random LazyFanout of them per
// message keeps every lazy link in use (any one can repair the tree). But a
// node that no neighbour pushes to (its eager picks had no room for it)
// then missed a message whenever none of its neighbours chose it, and waited
// for the periodic exchange (TestChurn, caps bind: 6 runs in 60 missed a
// delivery within the settle time); such a node grafts, and a graft marks
// the link. The result is valid until the next call.
func (e *Engine[ID]) announceTargets(now time.Time, from ID, miss *missingMsg[ID]) []ID {
	t := e.targets[:0]
	asked := 0 // t[:asked] grafted this node recently
	for _, p := range e.lazy.list {
		if p == from || miss.announced(p) {
			continue
		}
		t = append(t, p)
		if len(e.asked) == 0 {
			continue
		}
		if until, ok := e.asked[p]; ok {
			if now.Before(until) {
				t[asked], t[len(t)-1] = t[len(t)-1], t[asked]
				asked++
			} else {
				delete(e.asked, p)
			}
		}
	}
	e.targets = t
	k := max(e.cfg.LazyFanout, asked)
	if e.cfg.LazyFanout <= 0 || len(t) <= k {
		return t
	}
	// A partial Fisher-Yates shuffle of the rest: t[asked:k] is a uniform
	// choice among them.
	for i := asked; i < k; i++ {
		j := i + e.rng.IntN(len(t)-i)
		t[i], t[j] = t[j], t[i]
	}
	return t[:k]
}

func (e *Engine[ID]) announce(now time.Time, p ID, a Announcement) {
	q := e.lazyQ[p]
	if q == nil {
		q = &lazyQueue{}
		e.lazyQ[p] = q
	}
	if len(q.anns) == 0 {
		q.since = now
		e.lazyDue = append(e.lazyDue, lazyDue[ID]{peer: p, since: now})
	}
	q.anns = append(q.anns, a)
	if len(q.anns) >= e.cfg.IHaveBatchSize {
		e.flush(p, q)
	}
}

// unannounce drops id from the announcements queued for p: p has just
// announced or sent the message itself, so it has it, and an IHave would
// tell it nothing (a node ignores announcements of messages it has seen).
// Two lazy neighbours that both received a message otherwise announce it to
// each other; whichever flushes first spares the other's announcement. On 20
// nodes with the LAN preset this was a quarter of all bytes on the wire.
func (e *Engine[ID]) unannounce(p ID, id MessageID) {
	q := e.lazyQ[p]
	if q == nil {
		return
	}
	if i := slices.IndexFunc(q.anns, func(a Announcement) bool { return a.ID == id }); i >= 0 {
		q.anns = slices.Delete(q.anns, i, i+1)
	}
}

func (e *Engine[ID]) flush(p ID, q *lazyQueue) {
	anns := slices.Clone(q.anns)
	q.anns = q.anns[:0]
	e.send(p, Msg[ID]{Kind: KindIHave, Announcements: anns})
	e.emit(Event{Kind: EventIHaveSent, Count: len(anns)})
}

// makeEager moves p to the eager set within the caps. Only members are
// neighbours, so a late message from a departed peer never re-inserts it.
func (e *Engine[ID]) makeEager(p ID) bool {
	if e.eager.has(p) {
		return true
	}
	if !e.members.has(p) || e.eager.len() >= e.cfg.MaxEagerPeers {
		return false
	}
	if !e.lazy.remove(p) && e.eager.len()+e.lazy.len() >= e.cfg.MaxPeers {
		return false
	}
	e.eager.add(p)
	e.emit(Event{Kind: EventPromoted})
	return true
}

// makeLazy moves p out of the eager set and, room permitting, into the lazy
// set.
func (e *Engine[ID]) makeLazy(p ID) {
	if e.lazy.has(p) || !e.members.has(p) {
		return
	}
	wasEager := e.eager.remove(p)
	if e.lazy.len() < e.cfg.MaxLazyPeers && e.eager.len()+e.lazy.len() < e.cfg.MaxPeers {
		e.lazy.add(p)
	}
	if wasEager {
		e.emit(Event{Kind: EventDemoted})
	}
}

// prune makes p lazy and tells it so, at most once per GraftTimeout: the
// payloads p pushed before the first Prune reached it are duplicates that
// say nothing new, and a peer sending duplicates or grafts on purpose would
// otherwise get one Prune back for every frame. A Prune that was lost is sent
// again on the first duplicate after the interval.
func (e *Engine[ID]) prune(now time.Time, p ID) {
	e.makeLazy(p)
	if at, ok := e.pruned[p]; ok && now.Sub(at) < e.cfg.GraftTimeout {
		return
	}
	if e.members.has(p) {
		e.pruned[p] = now
	}
	e.send(p, Msg[ID]{Kind: KindPrune})
	e.emit(Event{Kind: EventPruneSent})
}

// Receive processes a message from peer from.
func (e *Engine[ID]) Receive(now time.Time, from ID, m *Msg[ID]) {
	e.start(now)
	delete(e.quiet, from) // it knows this node: no need to greet it again
	switch m.Kind {
	case KindGossip:
		e.onGossip(now, from, m)
	case KindIHave:
		e.onAnnouncements(now, from, m.Announcements, true)
	case KindExchange:
		e.onAnnouncements(now, from, m.Announcements, false)
	case KindGraft:
		e.onGraft(now, from, m)
	case KindPrune:
		e.emit(Event{Kind: EventPruneReceived})
		if e.eager.has(from) {
			e.makeLazy(from)
		}
	}
}

func (e *Engine[ID]) onGossip(now time.Time, from ID, m *Msg[ID]) {
	if e.seen.Has(m.ID, now) {
		e.emit(Event{Kind: EventDuplicate, Message: m.ID, Hops: m.Round})
		e.unannounce(from, m.ID)
		// Paper: a duplicate payload means a redundant tree edge: prune it.
		// Only a duplicate that races the first copy says so. One that comes
		// later than a graft would have been sent is an old message that
		// some node recovered and passed on over today's tree: pruning for
		// it would cut the edges the tree needs now.
		if at, ok := e.cache.Added(m.ID, now); ok && now.Sub(at) < e.cfg.GraftTimeout && !e.tied(now, from) {
			e.prune(now, from)
		}
		return
	}
	if len(m.Payload.Data) > e.cfg.MaxMessageSize {
		e.emit(Event{Kind: EventRejected, Message: m.ID, Err: &MessageTooLargeError{Size: len(m.Payload.Data), Limit: e.cfg.MaxMessageSize}})
		return
	}
	ts := time.Unix(0, m.Timestamp)
	miss := e.missing[m.ID]
	rd := RawDelivery[ID]{ID: m.ID, From: from, Origin: m.Origin, Hops: m.Round,
		Timestamp: ts, Trace: m.Trace, Payload: m.Payload,
		Recovered: m.Recovered || (miss != nil && miss.grafted)}
	if !e.deliver(rd) {
		e.seen.Add(m.ID, now)
		e.emit(Event{Kind: EventRejected, Message: m.ID})
		return
	}
	e.emit(Event{Kind: EventDelivered, Message: m.ID, Hops: m.Round, Latency: now.Sub(ts)})
	trace := m.Trace
	if len(trace) > 0 && e.retrace != nil {
		trace = e.retrace(rd)
	}
	c := cached[ID]{origin: m.Origin, round: m.Round, ts: m.Timestamp, trace: trace,
		payload: m.Payload, recovered: rd.Recovered}
	e.forget(m.ID, miss)
	if miss != nil && miss.grafted {
		e.emit(Event{Kind: EventRecovered, Message: m.ID, Latency: now.Sub(miss.firstGraft)})
	}
	e.remember(now, m.ID, c)
	e.push(now, m.ID, &c, from, miss)
	// Paper: the sender of a first payload becomes (or stays) eager: it is
	// this node's parent in the tree. Past the eager cap, refuse the edge.
	if !e.makeEager(from) && e.members.has(from) {
		e.prune(now, from)
		return
	}
	// Paper, optimization: an announcer that had it sooner is a shorter path.
	// Not after a graft, here or upstream: the payload came by a path chosen
	// to recover it, and its hop count says nothing about the tree.
	if miss != nil && !c.recovered && e.cfg.OptimizationThreshold > 0 {
		best := -1
		for i, a := range miss.announcers {
			if a.peer != from && !a.exchanged && e.members.has(a.peer) && (best < 0 || a.round < miss.announcers[best].round) {
				best = i
			}
		}
		if best >= 0 {
			a := miss.announcers[best]
			e.optimize(m.ID, from, a.peer, m.Round, a.round)
		}
	}
}

// forget removes a missing entry (mm may be nil) and its creator's count.
func (e *Engine[ID]) forget(id MessageID, mm *missingMsg[ID]) {
	if mm == nil {
		return
	}
	delete(e.missing, id)
	if n := e.missingBy[mm.creator]; n > 1 {
		e.missingBy[mm.creator] = n - 1
	} else {
		delete(e.missingBy, mm.creator)
	}
}

// maxMissingPerPeer is one peer's share of MaxMissing.
func (e *Engine[ID]) maxMissingPerPeer() int { return max(1, e.cfg.MaxMissing/4) }

// optimize grafts announcer when its path is at least OptimizationThreshold
// hops shorter than the one the payload took (paper, Algorithm 2). The paper
// also prunes the parent at once; here the duplicate rule does it, with the
// next payload that reaches this node both ways, because a prune sent on a
// guess cut nodes off the tree when the announcer's eager set was full or
// many origins were sending (the announcer then prunes the graft back, and
// the node is left with neither edge).
func (e *Engine[ID]) optimize(id MessageID, parent, announcer ID, round, announced uint32) {
	if parent == announcer || announced >= round || int(round-announced) < e.cfg.OptimizationThreshold {
		return
	}
	if !e.eager.has(parent) || !e.makeEager(announcer) {
		return
	}
	e.send(announcer, Msg[ID]{Kind: KindGraft, ID: id, Round: announced})
	e.emit(Event{Kind: EventGraftSent, Message: id})
	e.emit(Event{Kind: EventOptimized, Message: id, Hops: round - announced})
}

func (e *Engine[ID]) onAnnouncements(now time.Time, from ID, anns []Announcement, isIHave bool) {
	if !e.members.has(from) {
		e.emit(Event{Kind: EventIHaveDropped, Count: len(anns)})
		return
	}
	if !e.eager.has(from) {
		known := e.lazy.has(from)
		e.makeLazy(from) // an announcer is a neighbour (room permitting)
		if !known && e.lazy.has(from) {
			// A new neighbour may have missed recent messages while no one
			// sent it anything: tell it what they were, or, with nothing
			// to tell, greet it back so that it stops greeting.
			if !e.exchangeTo(now, from) {
				e.send(from, Msg[ID]{Kind: KindIHave})
			}
		}
	}
	rl := e.ihaveRL[from]
	if rl == nil {
		rl = &ratelimit.Bucket{}
		e.ihaveRL[from] = rl
	}
	for i, a := range anns {
		if !rl.Allow(now, 1, e.cfg.IHaveRateLimitPerSecond, e.cfg.IHaveRateLimitBurst) {
			e.emit(Event{Kind: EventIHaveDropped, Count: len(anns) - i})
			return
		}
		id := MessageID(a.ID)
		if e.seen.Has(id, now) {
			e.unannounce(from, id)
			continue
		}
		mm := e.missing[id]
		if mm == nil {
			if len(e.missing) >= e.cfg.MaxMissing || e.missingBy[from] >= e.maxMissingPerPeer() {
				e.emit(Event{Kind: EventIHaveDropped, Count: 1})
				continue
			}
			mm = &missingMsg[ID]{creator: from}
			e.missing[id] = mm
			e.missingBy[from]++
			heap.Push(&e.timers, graftTimer{at: now.Add(e.cfg.GraftTimeout), id: id})
		}
		if !slices.ContainsFunc(mm.announcers, func(x announcer[ID]) bool { return x.peer == from }) &&
			len(mm.announcers) < e.cfg.MaxPeers {
			mm.announcers = append(mm.announcers, announcer[ID]{peer: from, round: a.Round, exchanged: !isIHave})
		}
	}
}

func (e *Engine[ID]) onGraft(now time.Time, from ID, m *Msg[ID]) {
	if !e.members.has(from) {
		// Only members have an address to answer at and a rate limit.
		e.emit(Event{Kind: EventUnknownPeer, Type: KindGraft, Message: m.ID})
		return
	}
	// A peer that grafts wants pushes, or missed a message: while it is
	// lazy here it hears of every message (see announceTargets).
	e.asked[from] = now.Add(e.cfg.MessageCacheTTL)
	if m.ID == (MessageID{}) && !m.WantPayload && (e.eager.has(from) || e.lazy.has(from)) {
		// A greeting from a neighbour this node already has: its place
		// (eager, or lazy after a prune) stands.
		return
	}
	accepted := e.makeEager(from)
	if m.WantPayload {
		e.tie(now, from)
		rl := e.graftRL[from]
		if rl == nil {
			rl = &ratelimit.Bucket{}
			e.graftRL[from] = rl
		}
		switch c, ok := e.cache.Get(m.ID, now); {
		case !rl.Allow(now, 1, e.cfg.GraftRateLimitPerSecond, e.cfg.GraftRateLimitBurst):
			e.emit(Event{Kind: EventGraftRateLimited, Message: m.ID})
		case !ok:
			e.emit(Event{Kind: EventGraftMiss, Message: m.ID})
		default:
			// The reply carries this node's own hop count plus one: the
			// hops the payload has really travelled.
			e.send(from, Msg[ID]{Kind: KindGossip, ID: m.ID, Round: c.round + 1, Origin: c.origin,
				Timestamp: c.ts, Trace: c.trace, Payload: c.payload, GraftReply: true, Recovered: true})
			e.emit(Event{Kind: EventGraftAnswered, Message: m.ID})
		}
	}
	if !accepted {
		e.prune(now, from) // over the eager cap: answered, but not a tree edge
	}
}

// Tick runs what is due at now: announcement batches, graft timers, the
// exchange and the cache sweep.
func (e *Engine[ID]) Tick(now time.Time) {
	e.start(now)
	for len(e.lazyDue) > 0 {
		d := e.lazyDue[0]
		q := e.lazyQ[d.peer]
		if q == nil || len(q.anns) == 0 || !q.since.Equal(d.since) {
			e.lazyDue = e.lazyDue[1:]
			continue
		}
		if now.Before(d.since.Add(e.cfg.IHaveInterval)) {
			break
		}
		e.lazyDue = e.lazyDue[1:]
		e.flush(d.peer, q)
	}
	for len(e.timers) > 0 && !now.Before(e.timers[0].at) {
		t := heap.Pop(&e.timers).(graftTimer)
		e.onGraftTimer(now, t)
	}
	if !e.xchgAt.IsZero() && !now.Before(e.xchgAt) {
		e.exchange(now)
		e.greet()
		e.xchgAt = now.Add(e.jitter(e.cfg.ExchangeInterval))
	}
	if !now.Before(e.sweepAt) {
		e.sweep(now)
	}
}

func (e *Engine[ID]) onGraftTimer(now time.Time, t graftTimer) {
	mm := e.missing[t.id]
	if mm == nil || mm.attempt != t.attempt {
		return // delivered, or superseded by a newer timer
	}
	if e.seen.Has(t.id, now) {
		e.forget(t.id, mm)
		return
	}
	// Announcers that left were removed by PeerDown.
	if mm.attempt > e.cfg.GraftMaxRetries || len(mm.announcers) == 0 {
		e.forget(t.id, mm)
		e.emit(Event{Kind: EventGraftFailed, Message: t.id, Count: mm.attempt})
		return
	}
	a := mm.announcers[mm.next%len(mm.announcers)]
	mm.next++
	mm.attempt++
	if !mm.grafted {
		mm.grafted, mm.firstGraft = true, now
	}
	mm.lastGrafted = a.peer
	// The graft goes even if the eager set is full: the payload is needed.
	// The link then stays lazy here, and a later push on it is pruned.
	e.makeEager(a.peer)
	e.tie(now, a.peer)
	e.send(a.peer, Msg[ID]{Kind: KindGraft, ID: t.id, Round: a.round, WantPayload: true})
	e.emit(Event{Kind: EventGraftSent, Message: t.id, Count: mm.attempt})
	wait := e.cfg.GraftTimeout << min(mm.attempt-1, 20)
	if wait > e.cfg.GraftMaxBackoff || wait <= 0 {
		wait = e.cfg.GraftMaxBackoff
	}
	heap.Push(&e.timers, graftTimer{at: now.Add(wait), id: t.id, attempt: mm.attempt})
}

// exchange sends one random neighbour the IDs of recent messages, newest
// first, so that it grafts whatever it missed.
func (e *Engine[ID]) exchange(now time.Time) {
	n := e.eager.len() + e.lazy.len()
	if n == 0 {
		return
	}
	var to ID
	if i := e.rng.IntN(n); i < e.eager.len() {
		to = e.eager.list[i]
	} else {
		to = e.lazy.list[i-e.eager.len()]
	}
	e.exchangeTo(now, to)
}

// exchangeTo sends to the IDs of recent messages, and reports whether
// there were any.
func (e *Engine[ID]) exchangeTo(now time.Time, to ID) bool {
	if e.cfg.ExchangeInterval <= 0 {
		return false
	}
	oldest := now.Add(-e.cfg.exchangeWindow()).UnixNano()
	var anns []Announcement
	scanned := 0
	e.cache.Newest(now, func(k cache.Key, _ time.Time, c *cached[ID]) bool {
		scanned++
		if c.ts >= oldest {
			anns = append(anns, Announcement{ID: k, Round: c.round + 1})
		}
		return len(anns) < e.cfg.ExchangeMaxIDs && scanned < 4*e.cfg.ExchangeMaxIDs
	})
	if len(anns) == 0 {
		return false
	}
	e.send(to, Msg[ID]{Kind: KindExchange, Announcements: anns})
	e.emit(Event{Kind: EventExchangeSent, Count: len(anns)})
	return true
}

func (e *Engine[ID]) sweep(now time.Time) {
	rc, moreC := e.cache.Sweep(now, e.cfg.CleanupBatch)
	rs, moreS := e.seen.Sweep(now, e.cfg.CleanupBatch)
	if rc > 0 {
		e.emit(Event{Kind: EventCacheEvicted, Count: rc})
	}
	if rs > 0 {
		e.emit(Event{Kind: EventSeenEvicted, Count: rs})
	}
	switch {
	case moreC || moreS:
		e.sweepGap = e.cfg.CleanupMinInterval
	case rc+rs == 0:
		e.sweepGap = min(2*e.sweepGap, e.cfg.CleanupMaxInterval)
	default:
		e.sweepGap = max(e.sweepGap/2, e.cfg.CleanupMinInterval)
	}
	e.sweepAt = now.Add(e.sweepGap)
}

// NextDeadline is the time at which the engine next wants Tick, or the zero
// time if it has nothing scheduled.
func (e *Engine[ID]) NextDeadline() time.Time {
	var t time.Time
	earlier := func(c time.Time) {
		if !c.IsZero() && (t.IsZero() || c.Before(t)) {
			t = c
		}
	}
	if len(e.lazyDue) > 0 {
		earlier(e.lazyDue[0].since.Add(e.cfg.IHaveInterval))
	}
	if len(e.timers) > 0 {
		earlier(e.timers[0].at)
	}
	earlier(e.xchgAt)
	earlier(e.sweepAt)
	return t
}

// SetMembers reconciles the engine's view with the full membership: members
// no longer listed go down, new ones come up, and the neighbour sets are
// filled by random sampling. The local node in ids is ignored.
func (e *Engine[ID]) SetMembers(now time.Time, ids []ID) {
	e.start(now)
	want := make(map[ID]struct{}, len(ids))
	for _, id := range ids {
		if id != e.self {
			want[id] = struct{}{}
		}
	}
	for _, id := range e.members.snapshot() {
		if _, ok := want[id]; !ok {
			e.PeerDown(now, id)
		}
	}
	for _, id := range ids {
		if id != e.self {
			e.members.add(id)
		}
	}
	e.fill()
}

// PeerUp adds a member. Paper: a new neighbour starts eager; here, while the
// eager set is below EagerFanout, then lazy while the lazy set is below
// LazyFanout, else it waits outside both sets as a spare.
func (e *Engine[ID]) PeerUp(now time.Time, id ID) {
	e.start(now)
	if id == e.self || !e.members.add(id) {
		return
	}
	e.fill()
}

// PeerDown removes a member from every set, from the announcers of missing
// messages, and moves a graft in flight to it on to the next announcer.
// Spare members replace it.
func (e *Engine[ID]) PeerDown(now time.Time, id ID) {
	e.start(now)
	if !e.members.remove(id) {
		return
	}
	if e.eager.remove(id) {
		e.emit(Event{Kind: EventDemoted})
	}
	e.lazy.remove(id)
	delete(e.lazyQ, id)
	delete(e.missingBy, id)
	delete(e.graftRL, id)
	delete(e.ihaveRL, id)
	delete(e.quiet, id)
	delete(e.ties, id)
	delete(e.pruned, id)
	delete(e.asked, id)
	var retry []MessageID
	for mid, mm := range e.missing {
		i := slices.IndexFunc(mm.announcers, func(a announcer[ID]) bool { return a.peer == id })
		if i < 0 {
			continue
		}
		mm.announcers = slices.Delete(mm.announcers, i, i+1)
		if i < mm.next {
			mm.next--
		}
		if mm.grafted && mm.lastGrafted == id {
			retry = append(retry, mid)
		}
	}
	// Sorted so that the engine's output does not depend on map order.
	slices.SortFunc(retry, func(a, b MessageID) int { return bytes.Compare(a[:], b[:]) })
	for _, mid := range retry {
		heap.Push(&e.timers, graftTimer{at: now, id: mid, attempt: e.missing[mid].attempt})
	}
	e.fill()
}

// fill tops the neighbour count up to EagerFanout+LazyFanout from the spare
// members, chosen at random; a newcomer is eager while the eager set is below
// EagerFanout (paper: a new neighbour starts eager), else lazy. It counts
// neighbours, not eager ones: a pruned link stays a (lazy) neighbour, and
// topping the eager set up again would undo the tree.
func (e *Engine[ID]) fill() {
	need := min(e.cfg.EagerFanout+e.cfg.LazyFanout, e.cfg.MaxPeers) - e.eager.len() - e.lazy.len()
	if need <= 0 || e.members.len() == e.eager.len()+e.lazy.len() {
		return
	}
	spare := make([]ID, 0, e.members.len())
	for _, id := range e.members.list {
		if !e.eager.has(id) && !e.lazy.has(id) {
			spare = append(spare, id)
		}
	}
	e.rng.Shuffle(len(spare), func(i, j int) { spare[i], spare[j] = spare[j], spare[i] })
	for _, id := range spare[:min(need, len(spare))] {
		switch {
		case e.eager.len() < e.cfg.EagerFanout && e.eager.len() < e.cfg.MaxEagerPeers:
			e.eager.add(id)
			e.emit(Event{Kind: EventPromoted})
		case e.lazy.len() < e.cfg.MaxLazyPeers:
			e.lazy.add(id)
		default:
			continue
		}
		// Links go both ways: a greeting makes the new neighbour take this
		// node as a neighbour too, room permitting, eager for an eager
		// pick (paper: neighbours start eager), lazy for a lazy one.
		// Without it a node that no other node picked, a newcomer to a
		// settled cluster say, would hear of nothing: nodes send only to
		// their own neighbours; and a node no one picked as eager would
		// get every early broadcast by a graft. It is sent again at each
		// exchange, up to greetings times, until the neighbour sends
		// something: the first may arrive before the neighbour knows this
		// node is a member, and be ignored.
		e.quiet[id] = greetings
		if e.eager.has(id) {
			e.send(id, Msg[ID]{Kind: KindGraft}) // no message: "push to me"
		} else {
			e.send(id, Msg[ID]{Kind: KindIHave})
		}
	}
}

// greetings is how many times a node greets a neighbour it picked before
// it gives up: a neighbour with no room for it never answers.
const greetings = 4

// greet greets again the neighbours that have sent nothing since this node
// picked them (see fill), up to greetings times in all.
func (e *Engine[ID]) greet() {
	if len(e.quiet) == 0 {
		return
	}
	for _, list := range [][]ID{e.eager.list, e.lazy.list} {
		for _, id := range list {
			left, ok := e.quiet[id]
			if !ok {
				continue
			}
			if left--; left <= 0 {
				delete(e.quiet, id)
			} else {
				e.quiet[id] = left
			}
			// Again as an empty IHave: the neighbour takes this node as
			// lazy at most, so a greeting that crossed a prune cannot
			// undo it.
			e.send(id, Msg[ID]{Kind: KindIHave})
		}
	}
}

// EngineStats is a snapshot of the engine's sizes.
type EngineStats struct {
	Members, Eager, Lazy int // known members, and the eager and lazy sets
	CacheSize, SeenSize  int // messages cached for grafts, IDs in the seen set
	Missing              int // announced messages not yet received
	LazyQueued           int // announcements waiting to be sent
}

// Stats returns the engine's current sizes.
func (e *Engine[ID]) Stats() EngineStats {
	s := EngineStats{Members: e.members.len(), Eager: e.eager.len(), Lazy: e.lazy.len(),
		CacheSize: e.cache.Len(), SeenSize: e.seen.Len(), Missing: len(e.missing)}
	for _, q := range e.lazyQ {
		s.LazyQueued += len(q.anns)
	}
	return s
}

// EagerPeers returns a copy of the eager set.
func (e *Engine[ID]) EagerPeers() []ID { return e.eager.snapshot() }

// LazyPeers returns a copy of the lazy set.
func (e *Engine[ID]) LazyPeers() []ID { return e.lazy.snapshot() }

// checkInvariants returns an error if the engine's sets break a rule: eager
// and lazy are disjoint, within their caps, and hold members only.
func (e *Engine[ID]) checkInvariants() error {
	for _, p := range e.eager.list {
		if e.lazy.has(p) {
			return fmt.Errorf("peer %v is both eager and lazy", p)
		}
		if !e.members.has(p) {
			return fmt.Errorf("eager peer %v is not a member", p)
		}
	}
	for _, p := range e.lazy.list {
		if !e.members.has(p) {
			return fmt.Errorf("lazy peer %v is not a member", p)
		}
	}
	if e.eager.len() > e.cfg.MaxEagerPeers || e.lazy.len() > e.cfg.MaxLazyPeers ||
		e.eager.len()+e.lazy.len() > e.cfg.MaxPeers {
		return fmt.Errorf("sets over their caps: eager %d (max %d), lazy %d (max %d), max peers %d",
			e.eager.len(), e.cfg.MaxEagerPeers, e.lazy.len(), e.cfg.MaxLazyPeers, e.cfg.MaxPeers)
	}
	return nil
}

type graftTimer struct {
	at      time.Time
	id      MessageID
	attempt int
}

type timerHeap []graftTimer

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return bytes.Compare(h[i].id[:], h[j].id[:]) < 0
}
func (h timerHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)   { *h = append(*h, x.(graftTimer)) }
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}

// tieFactor times GraftTimeout is how long a link a graft went over is kept
// from pruning. Measured on 50 nodes with 1-3 ms links, broadcasts from
// random origins at 50/s and 200/s: without it 3 of 5 runs (at 50/s) and
// every run (at 200/s) never settled, each broadcast grafting about 12
// times with RMR 0.5-0.7; with 5, every run settled to RMR 0 and no
// grafts; with 10 and more, redundant links outlived the window often
// enough to leave RMR above 2 in some runs (TestManySendersSettle).
const tieFactor = 5

// tie keeps the link to p from being pruned for a while: a graft went over
// it, so some node needed it to get a message. With many origins sending, a
// duplicate for one message would otherwise prune an edge another message
// just grafted, leaving a hole that the next message grafts again: the
// tree flaps.
func (e *Engine[ID]) tie(now time.Time, p ID) {
	e.ties[p] = now.Add(e.cfg.GraftTimeout * tieFactor)
}

// tied reports whether duplicates from p must not prune the link now.
func (e *Engine[ID]) tied(now time.Time, p ID) bool {
	until, ok := e.ties[p]
	if !ok {
		return false
	}
	if !now.Before(until) {
		delete(e.ties, p)
		return false
	}
	return true
}
