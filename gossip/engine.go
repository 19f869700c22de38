package gossip

import (
	"bytes"
	"cmp"
	"container/heap"
	crand "crypto/rand"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/plumtree-go/plumtree/gossip/internal/cache"
	"github.com/plumtree-go/plumtree/gossip/internal/ratelimit"
)

// EngineOptions configure an Engine.
type EngineOptions[ID comparable] struct {
	Self   ID     // this node's ID
	Config Config // its engine fields validated by NewEngine
	// Seed drives peer sampling only. Two engines of one cluster should not
	// share a seed (New derives one from the node's ID).
	Seed uint64
	// Incarnation is the first half of every message ID this engine makes;
	// the second half counts broadcasts from 1. It must differ between two
	// runs of one node, so that IDs never repeat: 0 draws one from
	// crypto/rand. Simulators set it for reproducible IDs.
	Incarnation uint64
	// Deliver is called for each message the first time it arrives, before
	// it is cached or forwarded. Returning false rejects it: it is not
	// forwarded and a later copy is treated as a duplicate.
	Deliver func(RawDelivery[ID]) bool
	// Release, with Config.Ordered, hands accepted messages to the
	// application in their origins' order (see Release): Deliver then only
	// accepts or rejects a message, and Release says when the application
	// may have it, or that it never may (Release.Stale). Every message
	// Deliver accepts is released exactly once.
	Release func(Release[ID])
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

	// graftDelay is added to GraftTimeout before a message announced from
	// now on is first grafted (SetGraftDelay).
	graftDelay time.Duration

	members peerSet[ID]
	// eager and lazy split the neighbours. eager is the shared tree: what a
	// node pushes the messages of an origin it has no tree of to, and what
	// a new origin's tree starts from.
	eager peerSet[ID]
	lazy  peerSet[ID]
	// trees holds a tree per origin (see originTree).
	trees map[ID]*originTree[ID]
	treeN uint64 // trees made so far
	// sharedWindow is mayPrune's window for the shared tree.
	sharedWindow pruneWindow
	youngRate    rate // first copies of young origins' messages (see sampled)

	incarnation uint64
	seq         uint64 // sequence number of the last broadcast

	cache *cache.Store[cached[ID]]
	seen  *cache.Seen
	// runs holds, per origin incarnation, runs of sequence numbers this
	// node has all seen (see noteSeen): an exchange's ranges are checked
	// against them rather than ID by ID.
	runs    map[uint64]*seenRuns
	missing map[MessageID]*missingMsg[ID]
	// missingBy counts the missing entries each peer created, so that one
	// peer announcing made-up IDs fills at most its share of MaxMissing.
	missingBy map[ID]int
	timers    timerHeap

	lazyQ    map[ID]*lazyQueue
	lazyDue  []ID                     // peers whose queues became non-empty this window, in that order
	graftRL  map[ID]*ratelimit.Bucket // grafts a peer may have answered here
	graftOut map[ID]*ratelimit.Bucket // grafts this node may send a peer: the same rate, so that it is not refused
	nackRL   map[ID]*ratelimit.Bucket // "not now" answers a peer may get
	ihaveRL  map[ID]*ratelimit.Bucket
	quiet    map[ID]int       // neighbours picked by fill that have sent nothing since: greetings left
	asked    map[ID]time.Time // peers that grafted this node, and until when they hear of every message (see announceTargets)
	// early holds the greetings of senders that were not members yet (see
	// holdGreeting).
	early map[ID]earlyGreeting
	// refused holds the announcers that answered a graft of an origin's
	// message but had no room for this node in that origin's tree, and
	// until when a first graft of the origin's messages goes elsewhere
	// (see refusedBy).
	refused map[refusal[ID]]time.Time
	// grafting holds when this node last grafted a peer for a message of
	// an incarnation: a Prune for that origin from the peer within
	// GraftTimeout is a refusal, whether it comes before the answer or
	// after it (see refusedBy).
	grafting map[refusal[ID]]time.Time
	outbox   []Send[ID]
	targets  []ID // scratch for announceTargets, reused so that choosing allocates nothing

	// win orders the neighbours for the announcement window that ends at
	// winUntil: each of the window's messages is announced to the first
	// LazyFanout in that order that lack it, and the queues are sent when
	// the window ends (see window and announceTargets).
	win      []ID
	winAsked int // win[:winAsked] are asked (see ask)
	winUntil time.Time

	started  bool
	sweepAt  time.Time
	sweepGap time.Duration
	xchgAt   time.Time
	xchgN    int // exchanges sent: every fourth goes to a member outside the neighbours
	// heard is when each neighbour last sent this node a frame: half the
	// exchanges go to one heard from last (see exchange). Only neighbours
	// are entered; heardNeighbour drops the others.
	heard    map[ID]time.Time
	heardTop []stamp[ID] // scratch for heardNeighbour
	xchgOff  int         // where the next exchange's ranges start, when they are more than ExchangeMaxIDs
	shufAt   time.Time
	xchg     []xchgRun      // scratch for exchangeTo: the cached sequence numbers of each incarnation
	xchgIdx  map[uint64]int // scratch for exchangeTo: an incarnation's index in xchg
	// xchgAnswered is when this node last answered each peer's summary
	// with its own, for the peers it answered within the last
	// ExchangeInterval (see answerExchange). Entries are dropped at each
	// exchange tick.
	xchgAnswered map[ID]time.Time
	xchgReplyRL  ratelimit.Bucket // bounds the summaries sent as answers, over all peers
	xchgSorted   []seqRange       // scratch for answerExchange
	stats        counters
	order        *orderBuf[ID] // Config.Ordered; nil without
}

// counters are the engine's running totals (see EngineStats).
type counters struct {
	shuffles, originsEvicted, nacksSent, nacksReceived uint64
}

// originTree is one origin's tree as this node sees it: the neighbours it
// pushes that origin's payloads to. Prune and Graft name the origin, so one
// origin's duplicates never cut another's tree (riak_core's and partisan's
// per-root sets). A tree starts as a copy of the shared tree when the
// origin's first message arrives, and then changes on its own: a change of
// the shared tree (another origin's first message) never costs it a
// duplicate. What changes the topology for everyone reaches every tree: a
// newcomer's greeting, a pick that replaces a lost neighbour, a neighbour
// dropped. While the tree is young (its first message), what changes it
// changes the shared tree too, so that the shared tree settles for origins
// that send rarely.
type originTree[ID comparable] struct {
	eager  []ID
	pruned []stamp[ID] // when a Prune for this origin last went to a peer
	tried  []stamp[ID] // announcers the optimization grafted, and until when it leaves them be
	window pruneWindow // see mayPrune
	// answered holds the peers that answered a graft of one of the
	// origin's messages here, and when: a Prune from one of them right
	// after is its refusal to push to this node (see refusedBy).
	answered []stamp[ID]
	inc      uint64 // the origin's incarnation, from its last message here
	msgs     int    // messages of the origin seen here, up to youngMsgs+1
	used     time.Time
	n        uint64 // creation order
}

type stamp[ID comparable] struct {
	peer ID
	at   time.Time
}

// youngMsgs is how many of an origin's messages change the shared tree.
const youngMsgs = 1

func (t *originTree[ID]) young() bool { return t.msgs <= youngMsgs }

// inTree reports whether t pushes to p.
func (e *Engine[ID]) inTree(t *originTree[ID], p ID) bool { return slices.Contains(t.eager, p) }

// addToTrees makes p an eager peer of every origin's tree with room: a
// change of the topology (a newcomer, a replacement for a lost
// neighbour) that every tree needs, not a tree's own choice.
func (e *Engine[ID]) addToTrees(p ID) {
	for _, t := range e.trees { // each tree changes on its own: map order does not matter
		if !slices.Contains(t.eager, p) && len(t.eager) < e.cfg.MaxEagerPeers {
			t.eager = append(t.eager, p)
		}
	}
}

// forgetPeer drops p from t (p is no longer a neighbour).
func (t *originTree[ID]) forgetPeer(p ID) {
	t.eager = slices.DeleteFunc(t.eager, func(x ID) bool { return x == p })
	t.pruned = dropStamp(t.pruned, p)
	t.tried = dropStamp(t.tried, p)
	t.answered = dropStamp(t.answered, p)
}

// refusal names an announcer and the incarnation of an origin whose tree
// it had no room for this node in. An announcement carries no origin, but
// its message ID carries the origin's incarnation.
type refusal[ID comparable] struct {
	peer ID
	inc  uint64
}

// findStamp returns p's stamp in ss.
func findStamp[ID comparable](ss []stamp[ID], p ID) (time.Time, bool) {
	for _, s := range ss {
		if s.peer == p {
			return s.at, true
		}
	}
	return time.Time{}, false
}

func setStamp[ID comparable](ss []stamp[ID], p ID, at time.Time) []stamp[ID] {
	for i := range ss {
		if ss[i].peer == p {
			ss[i].at = at
			return ss
		}
	}
	return append(ss, stamp[ID]{peer: p, at: at})
}

func dropStamp[ID comparable](ss []stamp[ID], p ID) []stamp[ID] {
	return slices.DeleteFunc(ss, func(s stamp[ID]) bool { return s.peer == p })
}

type cached[ID comparable] struct {
	recovered bool // arrived through a graft somewhere on its path
	origin    ID
	parent    ID     // the neighbour it came from (the origin itself at the origin)
	round     uint32 // hops travelled on arrival; 0 at the origin
	ts        int64
	trace     []byte
	payload   Payload
}

type announcer[ID comparable] struct {
	peer      ID
	round     uint32
	exchanged bool      // from an exchange, not an IHave: no tree information
	notBefore time.Time // it refused a graft for now: not asked again before
}

type missingMsg[ID comparable] struct {
	creator     ID              // the first announcer: the entry counts against its share
	announcers  []announcer[ID] // in arrival order
	next        int             // grafts go to announcers[next % len]: an announcer added later is next in turn
	attempt     int             // grafts sent so far that were not refused for now
	gen         int             // the graft timer that counts: earlier ones are stale
	grafted     bool
	lastGrafted ID
	awaiting    bool // a graft to lastGrafted is outstanding: its one Nack may move the entry on
	firstGraft  time.Time
	created     time.Time // given up MessageCacheTTL later: no one caches it longer
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

// earlyGreeting is a greeting from a sender that was not a member yet:
// eager for a graft with no message (an eager pick's), lazy for an empty
// IHave; it is taken up if the sender becomes a member before until.
type earlyGreeting struct {
	eager bool
	until time.Time
}

type lazyQueue struct {
	anns []Announcement
}

// NewEngine makes an engine. The fields of the configuration the engine
// reads are validated (Config.Validate without the node's settings, which
// only New reads).
func NewEngine[ID comparable](o EngineOptions[ID]) (*Engine[ID], error) {
	if err := o.Config.engineError(); err != nil {
		return nil, err
	}
	return newEngine(o)
}

// newEngine makes an engine from a configuration already validated.
func newEngine[ID comparable](o EngineOptions[ID]) (*Engine[ID], error) {
	cfg := o.Config
	inc := o.Incarnation
	for inc == 0 {
		var b [8]byte
		if _, err := crand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("gossip: drawing an incarnation: %w", err)
		}
		inc = binary.BigEndian.Uint64(b[:])
	}
	e := &Engine[ID]{
		self:         o.Self,
		cfg:          cfg,
		rng:          rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15)),
		deliver:      o.Deliver,
		retrace:      o.Retrace,
		obs:          o.Observer,
		members:      newPeerSet[ID](),
		eager:        newPeerSet[ID](),
		lazy:         newPeerSet[ID](),
		trees:        make(map[ID]*originTree[ID]),
		incarnation:  inc,
		cache:        cache.New[cached[ID]](cfg.MessageCacheTTL, cfg.MessageCacheMaxSize),
		seen:         cache.NewSeen(cfg.seenTTL(), cfg.seenMaxSize()),
		missing:      make(map[MessageID]*missingMsg[ID]),
		runs:         make(map[uint64]*seenRuns),
		xchgIdx:      make(map[uint64]int),
		xchgAnswered: make(map[ID]time.Time),
		missingBy:    make(map[ID]int),
		lazyQ:        make(map[ID]*lazyQueue),
		graftRL:      make(map[ID]*ratelimit.Bucket),
		graftOut:     make(map[ID]*ratelimit.Bucket),
		nackRL:       make(map[ID]*ratelimit.Bucket),
		ihaveRL:      make(map[ID]*ratelimit.Bucket),
		quiet:        make(map[ID]int),
		asked:        make(map[ID]time.Time),
		early:        make(map[ID]earlyGreeting),
		refused:      make(map[refusal[ID]]time.Time),
		grafting:     make(map[refusal[ID]]time.Time),
		heard:        make(map[ID]time.Time),
	}
	if e.deliver == nil {
		e.deliver = func(RawDelivery[ID]) bool { return true }
	}
	if cfg.Ordered {
		release := o.Release
		if release == nil {
			release = func(Release[ID]) {}
		}
		e.order = newOrderBuf(&e.cfg, release, e.emit)
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
	if e.cfg.ShuffleInterval > 0 {
		e.shufAt = now.Add(e.jitter(e.cfg.ShuffleInterval))
	}
}

// jitter returns d scaled by a random factor in [0.75, 1.25), so that
// periodic work of many nodes does not fall in step.
func (e *Engine[ID]) jitter(d time.Duration) time.Duration {
	// Never 0: a timer re-armed at now inside Tick would be due again.
	return max(d*3/4+time.Duration(e.rng.Int64N(int64(d)/2+1)), time.Millisecond)
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
// its new ID: the engine's incarnation and the next sequence number. The
// payload is not delivered locally.
func (e *Engine[ID]) Broadcast(now time.Time, p Payload, trace []byte) (MessageID, error) {
	e.start(now)
	if len(p.Data) > e.cfg.MaxMessageSize {
		return MessageID{}, &MessageTooLargeError{Size: len(p.Data), Limit: e.cfg.MaxMessageSize}
	}
	e.seq++
	id := makeID(e.incarnation, e.seq)
	c := cached[ID]{origin: e.self, parent: e.self, ts: now.UnixNano(), trace: trace, payload: p}
	e.remember(now, id, c)
	t := e.tree(now, e.self)
	e.count(t, e.self)
	e.push(now, id, &c, t, e.self, nil)
	return id, nil
}

// count counts one more message of t's origin, that came from from. When
// the tree stops being young it is taken afresh from the shared tree,
// which the first messages of every origin have pruned since t was made,
// less from: an origin's tree is directed, and from is upstream of this
// node.
func (e *Engine[ID]) count(t *originTree[ID], from ID) {
	if t.msgs > youngMsgs {
		return
	}
	t.msgs++
	if !t.young() {
		t.eager = append(t.eager[:0], e.eager.list...)
		if i := slices.Index(t.eager, from); i >= 0 {
			t.eager = slices.Delete(t.eager, i, i+1)
		}
	}
}

func (e *Engine[ID]) remember(now time.Time, id MessageID, c cached[ID]) {
	e.markSeen(now, id)
	if n := e.cache.Put(id, c, now); n > 0 {
		e.emit(Event{Kind: EventCacheEvicted, Count: n})
	}
}

// tree returns origin's tree, making it from the shared tree if there is
// none (and forgetting the least recently used past MaxOrigins).
func (e *Engine[ID]) tree(now time.Time, origin ID) *originTree[ID] {
	t := e.trees[origin]
	if t == nil {
		if len(e.trees) >= e.cfg.MaxOrigins {
			e.evictOldestTree()
		}
		e.treeN++
		t = &originTree[ID]{eager: slices.Clone(e.eager.list), n: e.treeN}
		e.trees[origin] = t
	}
	t.used = now
	return t
}

func (e *Engine[ID]) evictOldestTree() {
	var oldest ID
	var at time.Time
	first := true
	var n uint64
	for o, t := range e.trees {
		// Ties broken by creation order, so that the output never
		// depends on map order.
		if first || t.used.Before(at) || (t.used.Equal(at) && t.n < n) {
			oldest, at, n, first = o, t.used, t.n, false
		}
	}
	if !first {
		delete(e.trees, oldest)
		e.stats.originsEvicted++
		e.emit(Event{Kind: EventOriginEvicted, Count: 1})
	}
}

// push sends the message to the eager peers of its origin's tree except
// the one it came from, and queues an announcement for at most LazyFanout
// other neighbours (see announceTargets). miss, if not nil, is the
// message's missing entry: its announcers have the message.
func (e *Engine[ID]) push(now time.Time, id MessageID, c *cached[ID], t *originTree[ID], from ID, miss *missingMsg[ID]) {
	m := Msg[ID]{Kind: KindGossip, ID: id, Round: c.round + 1, Origin: c.origin,
		Timestamp: c.ts, Trace: c.trace, Payload: c.payload, Recovered: c.recovered}
	for _, p := range t.eager {
		if p != from {
			e.send(p, m)
		}
	}
	ann := Announcement{ID: id, Round: c.round + 1}
	for _, p := range e.announceTargets(now, t, c.origin, from, miss) {
		e.announce(now, p, ann)
	}
}

// announceTargets returns the neighbours to announce a message to: those
// outside its origin's tree that do not have it (not its origin, not from,
// not one of miss's announcers), the first LazyFanout of them in the
// window's order (see window), in which a neighbour that grafted or
// greeted this node within MessageCacheTTL comes first. With LazyFanout
// 0, every neighbour outside the tree that does not have it.
//
// Links go both ways, so a node's neighbours include the nodes that picked
// it: about twice LazyFanout lazy neighbours, each of which would otherwise
// hear of every message (on 20 nodes with LANConfig, 12.5 announcements
// per node and message, most of them one datagram each). The paper
// announces to the lazy part of a small active view; a random LazyFanout of
// them keeps every lazy link in use (any one can repair the tree). What
// costs is the frames, not the announcements in them, so the order is
// drawn once per window, not per message: the messages of a window go to
// the same few and share their frames, which leave together when the
// window ends (chosen per message, 20 nodes at 100 broadcasts/s sent an
// IHave to nearly every lazy neighbour every window). Over windows every
// lazy neighbour takes its turn.
//
// But a node that no neighbour pushes to (its eager picks had no room for
// it) then missed a message whenever none of its neighbours chose it, and
// waited for the periodic exchange (TestChurn, caps bind: 6 runs in 60
// missed a delivery within the settle time); such a node grafts, and a
// graft marks the link. The result is valid until the next call.
func (e *Engine[ID]) announceTargets(now time.Time, t *originTree[ID], origin, from ID, miss *missingMsg[ID]) []ID {
	e.window(now)
	c := e.targets[:0]
	eligible := func(p ID) bool {
		return p != from && p != origin && !e.inTree(t, p) && !miss.announced(p)
	}
	if e.cfg.LazyFanout <= 0 {
		for _, list := range [2][]ID{e.eager.list, e.lazy.list} {
			for _, p := range list {
				if eligible(p) {
					c = append(c, p)
				}
			}
		}
		e.targets = c
		return c
	}
	k := max(e.cfg.LazyFanout, e.winAsked)
	for _, p := range e.win {
		if len(c) == k {
			break
		}
		if e.neighbour(p) && eligible(p) {
			c = append(c, p)
		}
	}
	e.targets = c
	return c
}

// ask marks p, which grafted or greeted this node, to hear of every
// message for MessageCacheTTL: it is first in the order of every window
// until then, from this one on.
func (e *Engine[ID]) ask(now time.Time, p ID) {
	e.asked[p] = now.Add(e.cfg.MessageCacheTTL)
	if !now.Before(e.winUntil) {
		return
	}
	if i := slices.Index(e.win, p); i >= 0 {
		if i < e.winAsked {
			return
		}
		e.win = slices.Delete(e.win, i, i+1)
	}
	e.win = slices.Insert(e.win, e.winAsked, p)
	e.winAsked++
}

// window starts a new announcement window if the last one is over: what
// the last one queued is sent (Tick has done so unless it is late), and
// the neighbours are put in the new window's order: the ones that grafted
// or greeted this node within MessageCacheTTL (see ask), then the others
// at random, lazy ones first (a neighbour in the shared eager set is more
// often in a message's tree, and then gets the payload rather than an
// announcement). Each message of the window goes to the first LazyFanout
// in that order that lack it.
func (e *Engine[ID]) window(now time.Time) {
	if now.Before(e.winUntil) {
		return
	}
	e.flushDue()
	e.winUntil = now.Add(e.cfg.IHaveInterval)
	e.win = e.win[:0]
	if len(e.asked) > 0 {
		for _, list := range [2][]ID{e.eager.list, e.lazy.list} {
			for _, p := range list {
				if until, ok := e.asked[p]; ok {
					if now.Before(until) {
						e.win = append(e.win, p)
					} else {
						delete(e.asked, p)
					}
				}
			}
		}
	}
	e.winAsked = len(e.win)
	for _, list := range [2][]ID{e.lazy.list, e.eager.list} {
		start := len(e.win)
		for _, p := range list {
			if _, asked := e.asked[p]; !asked { // the asked ones lead (expired ones were deleted above)
				e.win = append(e.win, p)
			}
		}
		rest := e.win[start:]
		for i := len(rest) - 1; i > 0; i-- {
			j := e.rng.IntN(i + 1)
			rest[i], rest[j] = rest[j], rest[i]
		}
	}
}

// flushDue sends every non-empty announcement queue, in the order the
// queues filled.
func (e *Engine[ID]) flushDue() {
	for _, p := range e.lazyDue {
		if q := e.lazyQ[p]; q != nil && len(q.anns) > 0 {
			e.flush(p, q)
		}
	}
	e.lazyDue = e.lazyDue[:0]
}

func (e *Engine[ID]) announce(now time.Time, p ID, a Announcement) {
	q := e.lazyQ[p]
	if q == nil {
		q = &lazyQueue{}
		e.lazyQ[p] = q
	}
	if len(q.anns) == 0 {
		e.lazyDue = append(e.lazyDue, p)
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

// neighbour reports whether p is in the eager or the lazy set.
func (e *Engine[ID]) neighbour(p ID) bool { return e.eager.has(p) || e.lazy.has(p) }

// neighbours is how many neighbours the node has.
func (e *Engine[ID]) neighbours() int { return e.eager.len() + e.lazy.len() }

// target is how many neighbours a node picks itself.
func (e *Engine[ID]) target() int { return min(e.cfg.EagerFanout+e.cfg.LazyFanout, e.cfg.MaxPeers) }

// softCap is how many neighbours a node takes in before it drops one for
// each newcomer: its own picks and about as many that picked it.
func (e *Engine[ID]) softCap() int {
	return min(2*(e.cfg.EagerFanout+max(e.cfg.LazyFanout, e.cfg.EagerFanout)), e.cfg.MaxPeers)
}

// addLazy makes p a lazy neighbour if there is room.
func (e *Engine[ID]) addLazy(p ID) bool {
	if e.neighbour(p) {
		return true
	}
	if !e.members.has(p) || e.lazy.len() >= e.cfg.MaxLazyPeers || e.neighbours() >= e.cfg.MaxPeers {
		return false
	}
	e.lazy.add(p)
	return true
}

// makeEager moves p to the shared eager set within the caps. Only members
// are neighbours, so a late message from a departed peer never re-inserts
// it.
func (e *Engine[ID]) makeEager(p ID) bool {
	if e.eager.has(p) {
		return true
	}
	if !e.members.has(p) || e.eager.len() >= e.cfg.MaxEagerPeers {
		return false
	}
	if !e.lazy.remove(p) && e.neighbours() >= e.cfg.MaxPeers {
		return false
	}
	e.eager.add(p)
	e.emit(Event{Kind: EventPromoted})
	return true
}

// makeLazy moves p out of the shared eager set and, room permitting, into
// the lazy set. A peer that is not in the eager set is left as it is: a
// prune never makes a neighbour.
func (e *Engine[ID]) makeLazy(p ID) {
	if e.lazy.has(p) || !e.members.has(p) {
		return
	}
	wasEager := e.eager.remove(p)
	if !wasEager {
		return // not a neighbour: a prune does not make one
	}
	if e.lazy.len() < e.cfg.MaxLazyPeers && e.neighbours() < e.cfg.MaxPeers {
		e.lazy.add(p)
	} else {
		e.dropNeighbour(p)
	}
	e.emit(Event{Kind: EventDemoted})
}

// link makes p an eager peer of origin's tree t (and of the shared tree
// while t is young), within MaxEagerPeers and the neighbour caps. It
// reports whether t took p.
func (e *Engine[ID]) link(t *originTree[ID], p ID) bool {
	if t.young() {
		e.makeEager(p)
	}
	if e.inTree(t, p) {
		return true
	}
	if !e.members.has(p) || len(t.eager) >= e.cfg.MaxEagerPeers {
		return false
	}
	if !e.neighbour(p) && !e.addLazy(p) {
		return false
	}
	t.eager = append(t.eager, p)
	e.emit(Event{Kind: EventPromoted})
	return true
}

// cut takes p out of t (and out of the shared tree while t is young).
func (e *Engine[ID]) cut(t *originTree[ID], p ID) {
	if t.young() {
		e.makeLazy(p)
	}
	i := slices.Index(t.eager, p)
	if i < 0 {
		return
	}
	t.eager = slices.Delete(t.eager, i, i+1)
	e.emit(Event{Kind: EventDemoted})
}

// mayPrune reports whether a duplicate of message id may prune t (the
// shared tree while t is young). Within GraftTimeout of a prune, only
// duplicates of the message that pruned may prune again: all of one
// message's duplicates come from one flood and agree on which edges are
// redundant, but two messages in flight at once (of one origin, or two
// young ones on the shared tree) each see the edges the other one is
// pruning as redundant, and together they cut the tree (riak_core#378):
// with one origin sending every 20 ms on 1,000 nodes, 55 grafts per
// broadcast.
func (e *Engine[ID]) mayPrune(now time.Time, t *originTree[ID], id MessageID) bool {
	w := &t.window
	if t.young() {
		w = &e.sharedWindow
		if !e.sampled(id) {
			return false
		}
	}
	if w.id != id && !w.at.IsZero() && now.Sub(w.at) < e.cfg.GraftTimeout {
		return false
	}
	w.id, w.at = id, now
	return true
}

// sampled reports whether id's duplicates may prune the shared tree. The
// prune window keeps one node from pruning for two messages at once, but
// with many origins sending once each, overlapping in flight, two nodes
// on one cycle each prune for a different message and cut it. So only a
// sample of the messages prunes the shared tree, the same sample at every
// node (a hash of the ID), sized from the rate of young messages this
// node sees so that about one is in flight per GraftTimeout.
func (e *Engine[ID]) sampled(id MessageID) bool {
	n := e.youngRate.last * e.cfg.GraftTimeout.Seconds()
	var mask uint64
	for float64(mask+1) < n {
		mask = mask<<1 | 1
	}
	h := binary.BigEndian.Uint64(id[:8]) ^ binary.BigEndian.Uint64(id[8:])*0x9e3779b97f4a7c15
	h ^= h >> 29
	return h&mask == 0
}

// rate counts events per second: last is the count of the last full second.
type rate struct {
	last, cur float64
	at        time.Time
}

func (r *rate) add(now time.Time) {
	if r.at.IsZero() {
		r.at = now
	}
	if el := now.Sub(r.at); el >= time.Second {
		if el < 2*time.Second {
			r.last = r.cur
		} else {
			r.last = 0
		}
		r.cur, r.at = 0, now
	}
	r.cur++
}

// pruneWindow is the message whose duplicates last pruned a tree, and when.
type pruneWindow struct {
	id MessageID
	at time.Time
}

// prune tells p to stop pushing origin's messages to this node, at most
// once per GraftTimeout and origin: the payloads p pushed before the first
// Prune reached it are duplicates that say nothing new, and a peer sending
// duplicates or grafts on purpose would otherwise get one Prune back for
// every frame. A Prune that was lost is sent again on the first duplicate
// after the interval.
//
// On an origin's own tree a prune is directed: the receiver of the
// duplicates decides for its side only, and this node keeps pushing to p
// until p's duplicates prune that side. Pruning both ways at once cut
// trees whose edges carry messages one way for some messages and the
// other way for others (jitter flips which copy comes first), leaving
// both ends without a parent. The shared tree (while the origin is young)
// is pruned both ways: every origin uses it, in either direction.
func (e *Engine[ID]) prune(now time.Time, t *originTree[ID], origin, p ID) {
	if t.young() {
		e.cut(t, p)
	}
	if at, ok := findStamp(t.pruned, p); ok && now.Sub(at) < e.cfg.GraftTimeout {
		return
	}
	t.pruned = setStamp(t.pruned, p, now)
	if len(t.pruned) > 2*e.cfg.MaxPeers {
		// Keep the list short: the oldest stamps have long expired.
		t.pruned = slices.DeleteFunc(t.pruned, func(s stamp[ID]) bool { return now.Sub(s.at) >= e.cfg.GraftTimeout })
	}
	e.send(p, Msg[ID]{Kind: KindPrune, Origin: origin})
	e.emit(Event{Kind: EventPruneSent})
}

// Receive processes a message from peer from.
func (e *Engine[ID]) Receive(now time.Time, from ID, m *Msg[ID]) {
	e.start(now)
	delete(e.quiet, from) // it knows this node: no need to greet it again
	if e.cfg.ExchangeInterval > 0 && e.neighbour(from) {
		e.heard[from] = now // for exchange, which also forgets old neighbours'
	}
	switch m.Kind {
	case KindGossip:
		e.onGossip(now, from, m)
	case KindIHave:
		e.onAnnouncements(now, from, m.Announcements)
	case KindExchange:
		e.onExchange(now, from, m.Ranges)
	case KindGraft:
		e.onGraft(now, from, m)
	case KindPrune:
		e.emit(Event{Kind: EventPruneReceived})
		if m.Shared {
			if e.eager.has(from) {
				e.makeLazy(from)
			}
			return
		}
		if t := e.trees[m.Origin]; t != nil {
			e.refusedBy(now, t, from)
			e.cut(t, from)
		}
	case KindNack:
		e.onNack(now, from, m)
	}
}

func (e *Engine[ID]) onGossip(now time.Time, from ID, m *Msg[ID]) {
	if e.seen.Has(m.ID, now) {
		e.emit(Event{Kind: EventDuplicate, Message: m.ID, Hops: m.Round})
		e.unannounce(from, m.ID)
		// Paper: a duplicate payload means a redundant tree edge: prune it.
		// Only a duplicate that races the first copy says so. One that comes
		// later than a graft would have been sent is an old message that
		// some node recovered and passed on over today's tree, and one
		// that passed through a graft took a path chosen to recover it:
		// pruning for either would cut the edges the tree needs now.
		if m.Recovered || m.GraftReply || !e.members.has(from) {
			return
		}
		// The tree is the cached origin's, not the one the duplicate claims.
		if c, at, ok := e.cache.Lookup(m.ID, now); ok && now.Sub(at) < e.cfg.GraftTimeout {
			if t := e.tree(now, c.origin); e.mayPrune(now, t, m.ID) {
				e.prune(now, t, c.origin, from)
			}
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
		e.markSeen(now, m.ID)
		e.forget(m.ID, miss)
		e.emit(Event{Kind: EventRejected, Message: m.ID})
		return
	}
	e.emit(Event{Kind: EventDelivered, Message: m.ID, Hops: m.Round, Latency: now.Sub(ts)})
	if e.order != nil {
		e.order.offer(now, m.Origin, m.ID)
	}
	trace := m.Trace
	if len(trace) > 0 && e.retrace != nil {
		trace = e.retrace(rd)
	}
	c := cached[ID]{origin: m.Origin, parent: from, round: m.Round, ts: m.Timestamp, trace: trace,
		payload: m.Payload, recovered: rd.Recovered}
	e.forget(m.ID, miss)
	if miss != nil && miss.grafted {
		e.emit(Event{Kind: EventRecovered, Message: m.ID, Latency: now.Sub(miss.firstGraft)})
	}
	e.remember(now, m.ID, c)
	t := e.tree(now, m.Origin)
	e.count(t, from)
	t.inc = m.ID.Incarnation()
	if miss != nil && miss.grafted && miss.lastGrafted == from && e.members.has(from) {
		// Most likely the answer to this node's graft (GraftReply is not on
		// the wire): see refusedBy. Stamps past GraftTimeout mean nothing.
		t.answered = slices.DeleteFunc(t.answered, func(s stamp[ID]) bool { return now.Sub(s.at) >= e.cfg.GraftTimeout })
		t.answered = setStamp(t.answered, from, now)
	}
	if t.young() {
		e.youngRate.add(now)
	}
	// Paper: the sender of a first payload becomes (or stays) eager: it is
	// this node's parent in the tree. Past the eager cap, refuse the edge.
	// Only in the shared tree (young origins), which serves every origin
	// in both directions. An origin's own tree is directed (see prune):
	// it never pushes back to the parent, which has the origin's messages
	// before this node does; pushing each message back would cost a
	// duplicate per edge until pruned (iroh-gossip and corrosion skip it
	// too).
	parent := true
	if t.young() {
		parent = e.makeEager(from) || !e.members.has(from)
		if i := slices.Index(t.eager, from); i >= 0 {
			t.eager = slices.Delete(t.eager, i, i+1)
		}
	}
	e.push(now, m.ID, &c, t, from, miss)
	if !parent && e.members.has(from) {
		e.prune(now, t, m.Origin, from)
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
			e.optimize(now, t, m.ID, from, a.peer, m.Round, a.round)
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

// optimize grafts announcer for the origin's messages when its path is at
// least OptimizationThreshold hops shorter than the one the payload took
// (paper, Algorithm 2): the announcer then pushes them here too. The paper
// also prunes the parent at once; here the duplicate rule does it, with
// the origin's next payload that reaches this node both ways, so that a
// guess never leaves the node without a parent. An origin's tree is
// directed (see prune): this node's own pushes do not change.
//
// Hop counts are not latencies: the new edge can turn out the slower, and
// then its duplicates prune it again. Each announcer is tried once per
// MessageCacheTTL and origin, so that such a pair cannot flap.
func (e *Engine[ID]) optimize(now time.Time, t *originTree[ID], id MessageID, parent, announcer ID, round, announced uint32) {
	if parent == announcer || announced >= round || int(round-announced) < e.cfg.OptimizationThreshold {
		return
	}
	// Not while the tree is young: its changes go to the shared tree,
	// which origins that send once share, and a path shorter from one
	// origin is a detour from another.
	if t.young() || !e.members.has(announcer) {
		return
	}
	if until, ok := findStamp(t.tried, announcer); ok && now.Before(until) {
		return
	}
	t.tried = slices.DeleteFunc(t.tried, func(s stamp[ID]) bool { return !now.Before(s.at) })
	t.tried = setStamp(t.tried, announcer, now.Add(e.cfg.MessageCacheTTL))
	e.send(announcer, Msg[ID]{Kind: KindGraft, ID: id, Round: announced})
	e.emit(Event{Kind: EventGraftSent, Message: id})
	e.emit(Event{Kind: EventOptimized, Message: id, Hops: round - announced})
}

// admit makes an announcer that is not a neighbour a lazy one, while the
// node has fewer than softCap neighbours. A new neighbour may have missed
// recent messages while no one sent it anything: it is told what they
// were, or, with nothing to tell, greeted back so that it stops greeting.
func (e *Engine[ID]) admit(now time.Time, from ID) {
	if e.neighbour(from) || e.neighbours() >= e.softCap() {
		return
	}
	if e.addLazy(from) && !e.exchangeTo(now, from) {
		e.send(from, Msg[ID]{Kind: KindIHave})
	}
}

func (e *Engine[ID]) onAnnouncements(now time.Time, from ID, anns []Announcement) {
	if !e.members.has(from) {
		if len(anns) == 0 {
			e.holdGreeting(now, from, false)
		}
		e.emit(Event{Kind: EventIHaveDropped, Count: len(anns)})
		return
	}
	if len(anns) == 0 && !e.neighbour(from) {
		// A greeting: a member picked this node as a neighbour (fill or
		// shuffle). Take it in, dropping a spare lazy neighbour past
		// softCap, so that links stay two-way and the sets stay a random
		// graph.
		if e.neighbours() >= e.softCap() {
			e.dropSpare()
		}
		e.admit(now, from)
		return
	}
	e.admit(now, from)
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
		if e.hasSeen(id, now) {
			e.unannounce(from, id)
			e.lateAnnouncement(now, from, id, a.Round)
			continue
		}
		e.missingFrom(now, from, id, a.Round, false)
	}
}

// lateAnnouncement runs the optimization for an announcement of a message
// this node already has: if from had it at least OptimizationThreshold hops
// sooner, its path is the shorter one for the origin's later messages.
// The paper looks only at announcements that come before the payload;
// with announcements batched, a shorter lazy path is usually announced
// after the payload came, and trees repaired by grafts stayed deep.
func (e *Engine[ID]) lateAnnouncement(now time.Time, from ID, id MessageID, round uint32) {
	if e.cfg.OptimizationThreshold <= 0 {
		return
	}
	c, ok := e.cache.Get(id, now)
	if !ok || c.recovered || c.origin == e.self {
		return
	}
	t := e.trees[c.origin]
	if t == nil {
		return
	}
	e.optimize(now, t, id, c.parent, from, c.round, round)
}

// missingFrom records that from has id. It reports false when the
// missing-message limits refused a new entry.
func (e *Engine[ID]) missingFrom(now time.Time, from ID, id MessageID, round uint32, exchanged bool) bool {
	mm := e.missing[id]
	if mm == nil {
		if len(e.missing) >= e.cfg.MaxMissing || e.missingBy[from] >= e.maxMissingPerPeer() {
			e.emit(Event{Kind: EventIHaveDropped, Count: 1})
			return false
		}
		mm = &missingMsg[ID]{creator: from, created: now}
		e.missing[id] = mm
		e.missingBy[from]++
		heap.Push(&e.timers, graftTimer{at: now.Add(e.cfg.GraftTimeout + e.graftDelay), id: id})
	}
	if !slices.ContainsFunc(mm.announcers, func(x announcer[ID]) bool { return x.peer == from }) &&
		len(mm.announcers) < e.cfg.MaxPeers {
		mm.announcers = append(mm.announcers, announcer[ID]{peer: from, round: round, exchanged: exchanged})
	}
	return true
}

// onExchange grafts, in time, every message in the ranges that this node
// has not seen. The missing-message limits bound how many are taken in
// at once; the next exchange brings the rest. Then it answers with its own
// summary if the peer's lacks a message this node caches (answerExchange).
func (e *Engine[ID]) onExchange(now time.Time, from ID, ranges []Range) {
	if !e.members.has(from) {
		e.emit(Event{Kind: EventIHaveDropped, Count: len(ranges)})
		return
	}
	e.admit(now, from)
	e.pullExchange(now, from, ranges)
	e.answerExchange(now, from, ranges)
}

// answerExchange makes the exchange push-pull: when the summary from a
// peer lacks a message this node caches, received at least IHaveInterval
// plus GraftTimeout ago (so not one still on its way there, nor one its
// announcements are still recovering) and within ExchangeWindow (less its
// far end, which the peer's clock may put outside), the node sends the
// peer its own summary, which the peer grafts from. Without it, a node
// that missed a message's push and every announcement of it (lost
// datagrams) depended on a neighbour that has it choosing it for an
// exchange: in a cut of 5 nodes on a lossy network, none did for 16
// seconds (TestExchangeIsAnswered; transport/chaos
// TestDeafNodeRecoversByItsOwnExchange). Within ExchangeInterval of an
// answer to a peer, only a message cached since that answer makes another,
// so that answers do not ping-pong (A's summary, B's answer, at most A's
// answer to that, and no more) and yet a message that came after an
// answer is not left out: a node that answered a peer, then broadcast,
// did not answer that peer's next summary, which lacked the broadcast, and
// it waited 14 s for another (transport/chaos, a 4-node side of an
// unnoticed partition with 20% of datagrams lost). Answers over all peers
// have a budget of 4 an ExchangeInterval (burst 8), which bounds the cache
// walks that a flood of exchanges can cost. The answer goes by stream
// (Msg.ExchangeReply), not by datagram as the periodic summary does: it
// is sent only for a gap this node knows of, and lost it cost the gap
// another ExchangeInterval or more (transport/chaos TestClusterUnderChaos,
// 10% of datagrams lost: 1 run in 3,000 had a node's only answer lost,
// and the message missed the 16 s the test allows).
func (e *Engine[ID]) answerExchange(now time.Time, from ID, ranges []Range) {
	if e.cfg.ExchangeInterval <= 0 || len(ranges) >= e.cfg.ExchangeMaxIDs {
		return // a summary cut at ExchangeMaxIDs names only part of what the peer holds
	}
	// Within ExchangeInterval of the last answer to this peer, only the
	// messages cached since then count: that answer named the others.
	last, recent := e.xchgAnswered[from]
	recent = recent && now.Sub(last) < e.cfg.ExchangeInterval
	rate := 4 / e.cfg.ExchangeInterval.Seconds()
	if e.xchgReplyRL.Wait(now, 1, rate) > 0 {
		return
	}
	sorted := sortRanges(e.xchgSorted[:0], ranges)
	e.xchgSorted = sorted
	// Not the messages at the window's far end either: the peer's clock
	// may put them just outside it.
	w := e.cfg.exchangeWindow()
	oldest := now.Add(-w + min(e.cfg.ExchangeInterval, w/4)).UnixNano()
	settled := now.Add(-e.cfg.IHaveInterval - e.cfg.GraftTimeout)
	lacks := false
	e.cache.Newest(now, func(k cache.Key, at time.Time, c *cached[ID]) bool {
		if at.After(settled) || c.ts < oldest {
			return true
		}
		if recent && !at.After(last) {
			return false // newest first: the rest were cached before the last answer
		}
		lacks = !covers(sorted, MessageID(k))
		return !lacks
	})
	if lacks && e.xchgReplyRL.Allow(now, 1, rate, 8) {
		e.sendExchange(now, from, true)
		e.xchgAnswered[from] = now
	}
}

// seqRange is a Range with its prefix read as the incarnation: compared
// as an integer, a summary's ranges are sorted and searched without
// comparing byte arrays (answerExchange looks up every message of its
// window in them, each summary it receives).
type seqRange struct{ inc, first, n uint64 }

// sortRanges appends ranges to dst as seqRanges, sorted by incarnation
// then first sequence number, for covers.
func sortRanges(dst []seqRange, ranges []Range) []seqRange {
	for _, r := range ranges {
		dst = append(dst, seqRange{binary.BigEndian.Uint64(r.Prefix[:]), r.First, r.N})
	}
	slices.SortFunc(dst, func(a, b seqRange) int {
		if c := cmp.Compare(a.inc, b.inc); c != 0 {
			return c
		}
		return cmp.Compare(a.first, b.first)
	})
	return dst
}

// covers reports whether one of the ranges, sorted by sortRanges, names id.
func covers(sorted []seqRange, id MessageID) bool {
	inc, seq := id.Incarnation(), id.Seq()
	// The last range of id's incarnation that starts at or before seq.
	i, _ := slices.BinarySearchFunc(sorted, seq, func(r seqRange, s uint64) int {
		if r.inc != inc {
			return cmp.Compare(r.inc, inc)
		}
		if r.first <= s {
			return -1
		}
		return 1
	})
	if i == 0 {
		return false
	}
	r := sorted[i-1]
	return r.inc == inc && seq-r.first < r.n
}

// pullExchange is onExchange's grafting part.
func (e *Engine[ID]) pullExchange(now time.Time, from ID, ranges []Range) {
	// Each ID looked at costs one announcement of the peer's IHave rate
	// limit: a tiny frame claiming a huge range costs the receiver no more
	// than announcements would. The next exchange brings the rest.
	rl := e.ihaveRL[from]
	if rl == nil {
		rl = &ratelimit.Bucket{}
		e.ihaveRL[from] = rl
	}
	for _, r := range ranges {
		inc := binary.BigEndian.Uint64(r.Prefix[:])
		lo, hi := r.First, r.First+r.N
		if hi < lo {
			hi = math.MaxUint64 // past the last sequence number: the rate limit ends the walk
		}
		// The parts of the range this node has all seen cost nothing: only
		// the IDs between its runs are looked at.
		cur := lo
		if rs := e.runs[inc]; rs != nil {
			for _, r := range rs.ivs {
				if r.next <= cur {
					continue
				}
				if r.first >= hi {
					break
				}
				if !e.exchangeRange(now, from, rl, inc, cur, r.first) {
					return
				}
				cur = r.next
				if cur >= hi {
					break
				}
			}
		}
		if !e.exchangeRange(now, from, rl, inc, cur, hi) {
			return
		}
	}
}

// exchangeRange takes the IDs of incarnation inc numbered lo up to hi
// (excluded) that this node has not seen as announced by from, each at
// the cost of one announcement of from's rate limit rl. It reports false
// when the rate limit or the missing-message limits end the exchange.
func (e *Engine[ID]) exchangeRange(now time.Time, from ID, rl *ratelimit.Bucket, inc, lo, hi uint64) bool {
	for s := lo; s < hi; s++ {
		if !rl.Allow(now, 1, e.cfg.IHaveRateLimitPerSecond, e.cfg.IHaveRateLimitBurst) {
			e.emit(Event{Kind: EventIHaveDropped, Count: 1})
			return false
		}
		id := makeID(inc, s)
		if e.seen.Has(id, now) {
			continue
		}
		if !e.missingFrom(now, from, id, 0, true) {
			return false
		}
	}
	return true
}

// xchgRun is the cached sequence numbers of one incarnation (exchangeTo's
// scratch).
type xchgRun struct {
	inc  uint64
	seqs []uint64
}

// seenRun is a run of one incarnation's sequence numbers, first up to
// next (excluded), that this node has all seen.
type seenRun struct{ first, next uint64 }

// seenRuns is an incarnation's runs in order, with a hole between each
// two (a run's next is below the next run's first), and when one last
// grew.
type seenRuns struct {
	ivs []seenRun
	at  time.Time
}

// after is the index of the first run that starts after seq (len(ivs)
// if none does).
func (rs *seenRuns) after(seq uint64) int {
	i, _ := slices.BinarySearchFunc(rs.ivs, seq+1, func(r seenRun, s uint64) int { return cmp.Compare(r.first, s) })
	return i
}

// has reports whether seq is in one of the runs.
func (rs *seenRuns) has(seq uint64) bool {
	i := rs.after(seq)
	return i > 0 && seq < rs.ivs[i-1].next
}

// maxSeenRuns bounds the runs of an incarnation: a message that is never
// seen (lost for good: every cache forgot it before a cut healed) ends a
// run, and the IDs after it start another. With a single run, every ID
// past such a hole was looked at one by one in each exchange, at a token
// of the sender's IHave rate limit each, so that the IDs really missing,
// at the far end of a range, were dropped with the rest for as long as
// the incarnation lived (TestExchangePastAPermanentHole).
const maxSeenRuns = 8

// markSeen adds id to the seen set (reporting what that evicted) and to
// its incarnation's run.
func (e *Engine[ID]) markSeen(now time.Time, id MessageID) {
	if n := e.seen.Add(id, now); n > 0 {
		e.emit(Event{Kind: EventSeenEvicted, Count: n})
	}
	e.noteSeen(now, id)
}

// noteSeen adds id to its incarnation's runs: it grows the run it ends
// or starts next to, over IDs seen before that were waiting for a hole to
// fill (each ID is passed over once), merging two runs when the hole
// between them fills; an ID next to no run starts one, up to maxSeenRuns.
// At most 2 x MaxOrigins incarnations have runs; sweep forgets the ones
// that have not grown for the seen set's TTL.
func (e *Engine[ID]) noteSeen(now time.Time, id MessageID) {
	inc, seq := id.Incarnation(), id.Seq()
	if seq == math.MaxUint64 {
		return // a run's end would wrap (no honest origin gets there)
	}
	rs := e.runs[inc]
	if rs == nil {
		if len(e.runs) >= 2*e.cfg.MaxOrigins {
			return
		}
		rs = &seenRuns{}
		e.runs[inc] = rs
	}
	i := rs.after(seq)
	switch {
	case i > 0 && seq < rs.ivs[i-1].next:
		return // in a run already
	case i > 0 && seq == rs.ivs[i-1].next:
		i-- // grows the run it ends
		rs.ivs[i].next++
	case i < len(rs.ivs) && seq+1 == rs.ivs[i].first:
		rs.ivs[i].first-- // grows the run it starts
	default:
		if len(rs.ivs) >= maxSeenRuns {
			return
		}
		rs.ivs = slices.Insert(rs.ivs, i, seenRun{first: seq, next: seq + 1})
	}
	r := &rs.ivs[i]
	// Up, over what was seen before, to the next run (merged when reached).
	upTo := uint64(math.MaxUint64)
	if i+1 < len(rs.ivs) {
		upTo = rs.ivs[i+1].first
	}
	for r.next < upTo && e.seen.Has(makeID(inc, r.next), now) {
		r.next++
	}
	if i+1 < len(rs.ivs) && r.next == upTo {
		r.next = rs.ivs[i+1].next
		rs.ivs = slices.Delete(rs.ivs, i+1, i+2)
		r = &rs.ivs[i]
	}
	// Down, likewise, short of the run before: its end was never seen (a
	// run's growth upwards takes in every seen ID up to the next run), or
	// seq would have grown that run.
	var downTo uint64
	if i > 0 {
		downTo = rs.ivs[i-1].next
	}
	for r.first > downTo && e.seen.Has(makeID(inc, r.first-1), now) {
		r.first--
	}
	rs.at = now
}

// hasSeen reports whether this node has seen id: in one of its
// incarnation's runs, or in the seen set.
func (e *Engine[ID]) hasSeen(id MessageID, now time.Time) bool {
	if rs := e.runs[id.Incarnation()]; rs != nil && rs.has(id.Seq()) {
		return true
	}
	return e.seen.Has(id, now)
}

func (e *Engine[ID]) onGraft(now time.Time, from ID, m *Msg[ID]) {
	if !e.members.has(from) {
		// Only members have an address to answer at and a rate limit.
		if m.ID == (MessageID{}) && !m.WantPayload {
			e.holdGreeting(now, from, true)
		}
		e.emit(Event{Kind: EventUnknownPeer, Type: KindGraft, Message: m.ID})
		return
	}
	if m.ID == (MessageID{}) && !m.WantPayload {
		// A greeting: the peer picked this node to push to it. Until it
		// is in a tree here it hears of every message (see ask): a
		// newcomer that no node had room for missed whole messages
		// until the exchange (TestChurn, caps bind: 5 runs in 40; 3 in
		// 100 with only the greeters left out of a tree marked).
		e.ask(now, from)
		e.onGreeting(now, from)
		return
	}
	// The rate limit comes before any look-up: a peer flooding grafts
	// costs a bucket check each, whatever the IDs.
	rl := e.graftRL[from]
	if rl == nil {
		rl = &ratelimit.Bucket{}
		e.graftRL[from] = rl
	}
	if !rl.Allow(now, 1, e.cfg.GraftRateLimitPerSecond, e.cfg.GraftRateLimitBurst) {
		if m.WantPayload {
			e.emit(Event{Kind: EventGraftRateLimited, Message: m.ID})
			// "Not now", so that the requester waits and does not wait
			// out its backoff; at most as many as grafts are answered, so
			// that a flood is not echoed.
			nb := e.nackRL[from]
			if nb == nil {
				nb = &ratelimit.Bucket{}
				e.nackRL[from] = nb
			}
			if nb.Allow(now, 1, e.cfg.GraftRateLimitPerSecond, e.cfg.GraftRateLimitBurst) {
				e.nack(from, m.ID, rl.Wait(now, 1, e.cfg.GraftRateLimitPerSecond))
			}
		}
		return
	}
	c, ok := e.cache.Get(m.ID, now)
	if !ok {
		if m.WantPayload {
			e.emit(Event{Kind: EventGraftMiss, Message: m.ID})
			e.nack(from, m.ID, 0) // not here: ask another holder at once
		}
		return
	}
	t := e.tree(now, c.origin)
	accepted := e.link(t, from)
	if m.WantPayload {
		// A peer that grafts missed a message: while it is not in a
		// message's tree it hears of every message (see ask).
		e.ask(now, from)
		// The reply carries this node's own hop count plus one: the hops
		// the payload has really travelled.
		e.send(from, Msg[ID]{Kind: KindGossip, ID: m.ID, Round: c.round + 1, Origin: c.origin,
			Timestamp: c.ts, Trace: c.trace, Payload: c.payload, GraftReply: true, Recovered: true})
		e.emit(Event{Kind: EventGraftAnswered, Message: m.ID})
	}
	if !accepted {
		e.prune(now, t, c.origin, from) // over the eager cap: answered, but not a tree edge
	}
}

// refusedBy notes a Prune for t's origin from p. When this node grafted p
// for one of the origin's messages, or p answered such a graft, within
// GraftTimeout, the Prune is p's refusal of the link (onGraft: its tree
// for the origin is at MaxEagerPeers; it answers, then prunes), not a
// duplicate's: p will not push the origin's messages to this node. The
// first graft of the origin's next missing messages then goes to another
// announcer, for MessageCacheTTL. Otherwise a node that the tree had lost
// grafted the announcer with the fewest hops, the origin itself, for
// every message: answered every time, refused every time, a hole in the
// tree for good, each message a GraftTimeout late (package topic's
// TestIsolation, 10 nodes: the origin's tree filled with the nodes that
// grafted its first message, and the one node that the first messages'
// prunes of the shared tree had orphaned was refused by it).
//
// The graft is what counts, not the answer: the answer, a payload, goes
// by datagram and the Prune by stream, and either may come first. Counted
// from the answer (t.answered) alone, a Prune that overtook it was taken
// for a duplicate's: on 50 nodes with 20 µs of datagram jitter, one node
// grafted every message of an origin from that origin for 8 s.
func (e *Engine[ID]) refusedBy(now time.Time, t *originTree[ID], p ID) {
	refused := false
	if at, ok := findStamp(t.answered, p); ok {
		t.answered = dropStamp(t.answered, p)
		refused = now.Sub(at) < e.cfg.GraftTimeout
	}
	r := refusal[ID]{p, t.inc}
	if at, ok := e.grafting[r]; ok {
		delete(e.grafting, r)
		refused = refused || now.Sub(at) < e.cfg.GraftTimeout
	}
	if !refused {
		return
	}
	if len(e.refused) >= e.cfg.MaxOrigins {
		e.expireRefusals(now)
		if len(e.refused) >= e.cfg.MaxOrigins {
			return // bounded: a refusal not kept costs a refused graft
		}
	}
	e.refused[r] = now.Add(e.cfg.MessageCacheTTL)
}

// noteGraft notes a graft to p for a message of incarnation inc (see
// refusedBy). At most MaxOrigins are kept; past that, after the ones
// older than GraftTimeout are forgotten, a new one is not noted (a
// refusal not noticed costs a refused graft).
func (e *Engine[ID]) noteGraft(now time.Time, p ID, inc uint64) {
	r := refusal[ID]{p, inc}
	if _, ok := e.grafting[r]; !ok && len(e.grafting) >= e.cfg.MaxOrigins {
		for k, at := range e.grafting {
			if now.Sub(at) >= e.cfg.GraftTimeout {
				delete(e.grafting, k)
			}
		}
		if len(e.grafting) >= e.cfg.MaxOrigins {
			return
		}
	}
	e.grafting[r] = now
}

// expireRefusals forgets the refusals that are over.
func (e *Engine[ID]) expireRefusals(now time.Time) {
	for r, until := range e.refused {
		if !now.Before(until) {
			delete(e.refused, r)
		}
	}
}

// onGreeting handles a graft that names no message: a member picked this
// node as an eager neighbour. Links go both ways: it joins the shared
// tree, and so every origin's tree, as a leaf (a leaf makes no cycle; if
// it greeted several nodes, its duplicates prune the extra edges per
// origin). A neighbour this node already has keeps its place.
func (e *Engine[ID]) onGreeting(now time.Time, from ID) {
	if e.neighbour(from) {
		return
	}
	if e.neighbours() >= e.softCap() {
		e.dropSpare()
	}
	if !e.makeEager(from) {
		// No room in the eager set: a lazy neighbour then, which hears of
		// every message while it is marked asked (see onGraft).
		e.addLazy(from)
		e.send(from, Msg[ID]{Kind: KindPrune, Shared: true})
		e.emit(Event{Kind: EventPruneSent})
		return
	}
	e.addToTrees(from)
}

// holdGreeting keeps a greeting from from, not a member here yet, for
// MessageCacheTTL: a node that joins learns the membership from one
// member at once, and picks and greets its neighbours before they have
// heard of it by gossip. Dropped, an eager pick's greeting left the
// newcomer pushing to its picks and none of them pushing to it (the
// retries are empty IHaves, taken as lazy links): it got each origin's
// first message of a cold start by a graft, GraftTimeout late, until the
// origin's tree linked it (20 nodes joining through memberlist, the
// bench's cold start: 6 such newcomers, 88 of 108 grafts). At most
// MaxPeers greetings are held; past that, new ones are dropped as before.
func (e *Engine[ID]) holdGreeting(now time.Time, from ID, eager bool) {
	until := now.Add(e.cfg.MessageCacheTTL)
	if g, ok := e.early[from]; ok {
		// An empty IHave is also how a dropped eager greeting is retried.
		e.early[from] = earlyGreeting{eager: g.eager || eager, until: until}
		return
	}
	if len(e.early) >= e.cfg.MaxPeers {
		e.expireEarly(now)
		if len(e.early) >= e.cfg.MaxPeers {
			return
		}
	}
	e.early[from] = earlyGreeting{eager: eager, until: until}
}

// expireEarly forgets the held greetings that are over.
func (e *Engine[ID]) expireEarly(now time.Time) {
	for p, g := range e.early {
		if !now.Before(g.until) {
			delete(e.early, p)
		}
	}
}

// takeGreeting takes up p's held greeting, now that p is a member, as if
// it had just arrived (see holdGreeting).
func (e *Engine[ID]) takeGreeting(now time.Time, p ID) {
	g, ok := e.early[p]
	if !ok {
		return
	}
	delete(e.early, p)
	if !now.Before(g.until) || e.neighbour(p) {
		return
	}
	if g.eager {
		e.ask(now, p) // as onGraft does for a greeting
		e.onGreeting(now, p)
		return
	}
	if e.neighbours() >= e.softCap() { // as onAnnouncements does for a greeting
		e.dropSpare()
	}
	e.admit(now, p)
}

func (e *Engine[ID]) nack(to ID, id MessageID, retry time.Duration) {
	e.send(to, Msg[ID]{Kind: KindNack, ID: id, Retry: retry})
	e.stats.nacksSent++
	ev := Event{Kind: EventNackSent, Message: id}
	if retry > 0 {
		ev.Count = 1
	}
	e.emit(ev)
}

// onNack moves a graft the peer could not answer on: to the next
// announcer at once if the peer does not have the message (it is dropped
// from the announcers), or after the wait the peer asked for.
func (e *Engine[ID]) onNack(now time.Time, from ID, m *Msg[ID]) {
	e.stats.nacksReceived++
	ev := Event{Kind: EventNackReceived, Message: m.ID}
	if m.Retry > 0 {
		ev.Count = 1
	}
	e.emit(ev)
	mm := e.missing[m.ID]
	if mm == nil || !mm.awaiting || mm.lastGrafted != from {
		return // not an answer to the graft outstanding: at most one Nack counts per graft
	}
	mm.awaiting = false
	if n := len(mm.announcers); n > 0 {
		mm.next %= n
	}
	i := slices.IndexFunc(mm.announcers, func(a announcer[ID]) bool { return a.peer == from })
	if m.Retry <= 0 {
		if i >= 0 {
			mm.announcers = slices.Delete(mm.announcers, i, i+1)
			if i < mm.next {
				mm.next--
			}
		}
		e.schedule(mm, m.ID, now)
		return
	}
	wait := min(m.Retry, e.cfg.GraftMaxBackoff)
	if i >= 0 {
		mm.announcers[i].notBefore = now.Add(wait)
	}
	if mm.attempt > 0 {
		mm.attempt-- // refused for now is not a failed attempt
	}
	e.schedule(mm, m.ID, now)
}

// schedule arms mm's graft timer at at; an earlier timer goes stale.
func (e *Engine[ID]) schedule(mm *missingMsg[ID], id MessageID, at time.Time) {
	mm.gen++
	heap.Push(&e.timers, graftTimer{at: at, id: id, gen: mm.gen})
}

// Tick runs what is due at now: announcement batches, graft timers, the
// exchange, the shuffle and the cache sweep.
func (e *Engine[ID]) Tick(now time.Time) {
	e.start(now)
	if len(e.lazyDue) > 0 && !now.Before(e.winUntil) {
		e.flushDue()
	}
	for len(e.timers) > 0 && !now.Before(e.timers[0].at) {
		t := heap.Pop(&e.timers).(graftTimer)
		e.onGraftTimer(now, t)
	}
	if !e.xchgAt.IsZero() && !now.Before(e.xchgAt) {
		for p, at := range e.xchgAnswered {
			if now.Sub(at) >= e.cfg.ExchangeInterval {
				delete(e.xchgAnswered, p)
			}
		}
		e.exchange(now)
		e.greet()
		e.xchgAt = now.Add(e.jitter(e.cfg.ExchangeInterval))
	}
	if !e.shufAt.IsZero() && !now.Before(e.shufAt) {
		e.shuffle()
		e.shufAt = now.Add(e.jitter(e.cfg.ShuffleInterval))
	}
	if !now.Before(e.sweepAt) {
		e.sweep(now)
	}
	if e.order != nil {
		e.order.tick(now)
	}
}

func (e *Engine[ID]) onGraftTimer(now time.Time, t graftTimer) {
	mm := e.missing[t.id]
	if mm == nil || mm.gen != t.gen {
		return // delivered, or superseded by a newer timer
	}
	if e.seen.Has(t.id, now) {
		e.forget(t.id, mm)
		return
	}
	// Announcers that left were removed by PeerDown, and those that do not
	// have it by their Nack.
	if mm.attempt > e.cfg.GraftMaxRetries || len(mm.announcers) == 0 || now.Sub(mm.created) > e.cfg.MessageCacheTTL {
		e.forget(t.id, mm)
		e.emit(Event{Kind: EventGraftFailed, Message: t.id, Count: mm.attempt})
		return
	}
	// The next announcer in turn that may be asked now: not one that
	// refused for now, and within the graft rate a peer answers, so that a
	// backlog is asked for at the pace it can be answered.
	if mm.attempt == 0 {
		// The first graft goes to the announcer closest to the origin
		// (fewest hops): an orphaned subtree then hangs on the tree where
		// it is shallow, not wherever an announcement came from first, so
		// that repairs after failures do not deepen the tree for good.
		// Not one that refused this origin's tree recently, if another
		// announced it: it answers, but this node stays without a parent
		// for the origin, and would graft it for every message.
		inc := t.id.Incarnation()
		best, bestRefused := -1, false
		for i, c := range mm.announcers {
			if c.exchanged {
				continue
			}
			until, refused := e.refused[refusal[ID]{c.peer, inc}]
			refused = refused && now.Before(until)
			if best < 0 || (bestRefused && !refused) || (refused == bestRefused && c.round < mm.announcers[best].round) {
				best, bestRefused = i, refused
			}
		}
		if best >= 0 {
			mm.next = best
		}
	}
	var a announcer[ID]
	var later time.Time
	found := false
	for range len(mm.announcers) {
		c := mm.announcers[mm.next%len(mm.announcers)]
		mm.next++
		at := c.notBefore
		if !now.Before(at) {
			b := e.graftOut[c.peer]
			if b == nil {
				b = &ratelimit.Bucket{}
				e.graftOut[c.peer] = b
			}
			if b.Allow(now, 1, e.cfg.GraftRateLimitPerSecond, e.cfg.GraftRateLimitBurst) {
				a, found = c, true
				break
			}
			at = now.Add(b.Wait(now, 1, e.cfg.GraftRateLimitPerSecond))
		}
		if later.IsZero() || at.Before(later) {
			later = at
		}
	}
	if !found {
		// Never at now: Tick would run this timer again in the same call.
		e.schedule(mm, t.id, later.Add(time.Millisecond))
		return
	}
	mm.attempt++
	if !mm.grafted {
		mm.grafted, mm.firstGraft = true, now
	}
	mm.lastGrafted, mm.awaiting = a.peer, true
	e.noteGraft(now, a.peer, t.id.Incarnation())
	e.send(a.peer, Msg[ID]{Kind: KindGraft, ID: t.id, Round: a.round, WantPayload: true})
	e.emit(Event{Kind: EventGraftSent, Message: t.id, Count: mm.attempt})
	wait := e.cfg.GraftTimeout << max(0, min(mm.attempt-1, 20))
	if wait > e.cfg.GraftMaxBackoff || wait <= 0 {
		wait = e.cfg.GraftMaxBackoff
	}
	e.schedule(mm, t.id, now.Add(wait))
}

// exchange sends a summary of the cache to a neighbour, and every fourth
// time to a random member that is not one (anti-entropy across the
// overlay's edges: a partition's two sides, when the membership never
// noticed it, or sets that froze). Of the exchanges to neighbours, every
// other one goes to one of the neighbours this node heard from last (see
// heardNeighbour; any neighbour if it heard from none), the rest to any
// neighbour. A partition that the membership does not notice leaves a
// node's neighbours across it silent, and on a small side most of them
// are: chosen from all alike, 8 of a node's 9 exchanges in 16 s went
// across a cut (transport/chaos TestClusterUnderChaos, a 5-node side),
// and the node, which had lost a message's push and every announcement of
// it to 10% datagram loss, waited for its side's neighbours to pick it.
// The exchanges to any neighbour and to outsiders are kept: they are what
// finds a silent neighbour again, and what merges the sides after a heal.
func (e *Engine[ID]) exchange(now time.Time) {
	e.xchgN++
	switch e.xchgN % 4 {
	case 0:
		if p, ok := e.randomOutsider(); ok {
			e.exchangeTo(now, p)
			return
		}
	case 1, 3:
		if p, ok := e.heardNeighbour(); ok {
			e.exchangeTo(now, p)
			return
		}
	}
	n := e.neighbours()
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

// heardNeighbour picks at random one of the EagerFanout neighbours this
// node heard from most lately (ties in the neighbour lists' order, so
// that the choice depends on the seed alone), and drops from heard the
// peers that are no longer neighbours. It reports false if it heard from
// none. Most lately, not within a fixed time: a cluster that falls quiet
// after a partition hears nothing for a while, and the neighbours on the
// node's own side are still the ones it heard from last. On 20 nodes cut
// 4 against 16 with 20% datagram loss, runs in which a broadcast missed
// part of its own side for 16 s: 68 in 200 choosing any neighbour, 8 a
// neighbour heard from within 2 ExchangeIntervals, 2 this way; with
// answerExchange's second answer too, 35 in 600 within 2 intervals of
// the last frame heard, 0 in 300 this way.
func (e *Engine[ID]) heardNeighbour() (ID, bool) {
	for p := range e.heard {
		if !e.neighbour(p) {
			delete(e.heard, p)
		}
	}
	top := e.heardTop[:0]
	for _, list := range [2][]ID{e.eager.list, e.lazy.list} {
		for _, p := range list {
			if at, ok := e.heard[p]; ok {
				top = append(top, stamp[ID]{peer: p, at: at})
			}
		}
	}
	// Newest first; stable, so that ties keep the lists' order.
	slices.SortStableFunc(top, func(a, b stamp[ID]) int { return b.at.Compare(a.at) })
	e.heardTop = top
	top = top[:min(len(top), max(1, e.cfg.EagerFanout))]
	if len(top) == 0 {
		var zero ID
		return zero, false
	}
	return top[e.rng.IntN(len(top))].peer, true
}

// exchangeTo sends to a summary of every message cached here and
// broadcast within ExchangeWindow: runs of sequence numbers per origin
// incarnation, so one entry covers any backlog of one origin. It reports
// whether there was anything to send.
func (e *Engine[ID]) exchangeTo(now time.Time, to ID) bool {
	return e.sendExchange(now, to, false)
}

// sendExchange is exchangeTo, for an answer (see answerExchange) if reply.
func (e *Engine[ID]) sendExchange(now time.Time, to ID, reply bool) bool {
	if e.cfg.ExchangeInterval <= 0 {
		return false
	}
	oldest := now.Add(-e.cfg.exchangeWindow()).UnixNano()
	// The IDs grouped by incarnation, each group's sequence numbers sorted
	// as integers (the cache gives them newest first, nearly sorted): a
	// sort of the 16-byte IDs was most of an exchange's cost, once a
	// second, with a full cache.
	clear(e.xchgIdx)
	groups := e.xchg[:0]
	e.cache.Newest(now, func(k cache.Key, _ time.Time, c *cached[ID]) bool {
		if c.ts < oldest {
			return true
		}
		id := MessageID(k)
		inc := id.Incarnation()
		i, ok := e.xchgIdx[inc]
		if !ok {
			i = len(groups)
			e.xchgIdx[inc] = i
			if i < cap(groups) {
				groups = groups[:i+1]
				groups[i].inc, groups[i].seqs = inc, groups[i].seqs[:0]
			} else {
				groups = append(groups, xchgRun{inc: inc})
			}
		}
		groups[i].seqs = append(groups[i].seqs, id.Seq())
		return true
	})
	e.xchg = groups
	if len(groups) == 0 {
		return false
	}
	slices.SortFunc(groups, func(a, b xchgRun) int { return cmp.Compare(a.inc, b.inc) })
	var ranges []Range
	for _, g := range groups {
		slices.Sort(g.seqs)
		var prefix [8]byte
		binary.BigEndian.PutUint64(prefix[:], g.inc)
		for i := 0; i < len(g.seqs); {
			j := i + 1
			for j < len(g.seqs) && g.seqs[j] == g.seqs[j-1]+1 {
				j++
			}
			ranges = append(ranges, Range{Prefix: prefix, First: g.seqs[i], N: uint64(j - i)})
			i = j
		}
	}
	if max := e.cfg.ExchangeMaxIDs; len(ranges) > max {
		// Take turns: this exchange from where the last one stopped.
		off := e.xchgOff % len(ranges)
		ranges = append(ranges[off:], ranges[:off]...)[:max]
		e.xchgOff = off + max
	}
	e.send(to, Msg[ID]{Kind: KindExchange, Ranges: ranges, ExchangeReply: reply})
	e.emit(Event{Kind: EventExchangeSent, Count: len(ranges)})
	return true
}

// randomOutsider samples a member that is not a neighbour, if it finds one
// in a few tries (a sample, not a scan: memberships reach 10,000 members).
func (e *Engine[ID]) randomOutsider() (ID, bool) {
	var zero ID
	if e.members.len() <= e.neighbours() {
		return zero, false
	}
	for range 8 {
		p := e.members.list[e.rng.IntN(e.members.len())]
		if !e.neighbour(p) {
			return p, true
		}
	}
	return zero, false
}

// shuffle is overlay maintenance: it takes a random member that is not a
// neighbour in as a lazy neighbour and greets it, dropping a spare lazy
// neighbour (one no origin's tree uses) once the node has its own picks'
// worth. Neighbour sets that were filled apart, the two sides of a
// partition that the membership reported failed, link again this way
// whatever their sizes: sets that were only topped up when below their
// target froze (HyParView's passive view and shuffle serve the same end).
func (e *Engine[ID]) shuffle() {
	p, ok := e.randomOutsider()
	if !ok {
		return
	}
	e.swapIn(p)
}

// swapIn makes p a lazy neighbour, dropping a spare one if the node
// already has its own picks' worth, and greets it.
func (e *Engine[ID]) swapIn(p ID) {
	dropped := 0
	if e.neighbours() >= e.target() && e.dropSpare() {
		dropped = 1
	}
	if !e.addLazy(p) {
		return
	}
	e.quiet[p] = greetings
	e.send(p, Msg[ID]{Kind: KindIHave})
	e.stats.shuffles++
	e.emit(Event{Kind: EventShuffled, Count: dropped})
}

// dropSpare drops a random lazy neighbour that no origin's tree pushes
// to, if it finds one in a few tries. It reports whether it dropped one.
func (e *Engine[ID]) dropSpare() bool {
	for range 4 {
		if e.lazy.len() == 0 {
			return false
		}
		p := e.lazy.list[e.rng.IntN(e.lazy.len())]
		if e.inTrees(p) {
			continue
		}
		e.dropNeighbour(p)
		return true
	}
	return false
}

// inTrees reports whether some origin's tree pushes to p.
func (e *Engine[ID]) inTrees(p ID) bool {
	for _, t := range e.trees {
		if e.inTree(t, p) {
			return true
		}
	}
	return false
}

// dropNeighbour takes p out of every set and tree; it stays a member.
func (e *Engine[ID]) dropNeighbour(p ID) {
	if e.eager.remove(p) {
		e.emit(Event{Kind: EventDemoted})
	}
	e.lazy.remove(p)
	for _, t := range e.trees {
		t.forgetPeer(p)
	}
	delete(e.lazyQ, p)
	delete(e.quiet, p)
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
	// Origins idle for MessageCacheTTL: their trees are forgotten.
	idle := 0
	for o, t := range e.trees {
		if o != e.self && now.Sub(t.used) >= e.cfg.MessageCacheTTL {
			delete(e.trees, o)
			idle++
		}
	}
	for inc, rs := range e.runs {
		if now.Sub(rs.at) >= e.cfg.seenTTL() {
			delete(e.runs, inc)
		}
	}
	e.expireRefusals(now)
	e.expireEarly(now)
	if e.order != nil {
		e.order.sweep(now)
	}
	if idle > 0 {
		e.stats.originsEvicted += uint64(idle)
		e.emit(Event{Kind: EventOriginEvicted, Count: idle})
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
		earlier(e.winUntil)
	}
	if len(e.timers) > 0 {
		earlier(e.timers[0].at)
	}
	earlier(e.xchgAt)
	earlier(e.shufAt)
	earlier(e.sweepAt)
	if e.order != nil {
		earlier(e.order.nextDeadline())
	}
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
	var added []ID
	for _, id := range ids {
		if id != e.self && e.members.add(id) {
			added = append(added, id)
		}
	}
	if len(added) == 0 {
		return
	}
	// Greetings that came before their senders were members first: the
	// picks below then count them.
	for _, id := range added {
		e.takeGreeting(now, id)
	}
	// Picks are a random sample of the whole view, not the first members
	// listed: fill once, then take the rest in as PeerUp would.
	e.fill()
	for _, id := range added {
		if !e.neighbour(id) {
			e.takeIn(id)
		}
	}
}

// takeIn makes a new member a neighbour with probability
// LazyFanout/members, in place of a spare lazy neighbour, when the node
// already has its picks' worth (see PeerUp).
func (e *Engine[ID]) takeIn(id ID) {
	if e.cfg.ShuffleInterval > 0 && e.rng.IntN(e.members.len()) < max(e.cfg.LazyFanout, 1) {
		e.swapIn(id)
	}
}

// PeerUp adds a member. Paper: a new neighbour starts eager; here, while
// the eager set is below EagerFanout, then lazy while the node has fewer
// than EagerFanout+LazyFanout neighbours. Past that the member is taken in
// anyway with probability LazyFanout/members, in place of a spare lazy
// neighbour, so that members coming back from a partition are linked at
// once, as many as a random choice of lazy neighbours would hold.
func (e *Engine[ID]) PeerUp(now time.Time, id ID) {
	e.start(now)
	if id == e.self || !e.members.add(id) {
		return
	}
	e.takeGreeting(now, id)
	if e.neighbour(id) {
		e.fill()
		return
	}
	if e.neighbours() < e.target() {
		e.fill()
		return
	}
	e.takeIn(id)
}

// PeerDown removes a member from every set and tree, from the announcers
// of missing messages, and moves a graft in flight to it on to the next
// announcer. Spare members replace it.
func (e *Engine[ID]) PeerDown(now time.Time, id ID) {
	e.start(now)
	if !e.members.remove(id) {
		return
	}
	wasEager := e.eager.remove(id)
	if wasEager {
		e.emit(Event{Kind: EventDemoted})
	}
	e.lazy.remove(id)
	for _, t := range e.trees {
		t.forgetPeer(id)
	}
	delete(e.lazyQ, id)
	delete(e.missingBy, id)
	delete(e.graftRL, id)
	delete(e.graftOut, id)
	delete(e.nackRL, id)
	delete(e.ihaveRL, id)
	delete(e.quiet, id)
	delete(e.asked, id)
	for r := range e.refused {
		if r.peer == id {
			delete(e.refused, r)
		}
	}
	for r := range e.grafting {
		if r.peer == id {
			delete(e.grafting, r)
		}
	}
	var retry []MessageID
	for mid, mm := range e.missing {
		i := slices.IndexFunc(mm.announcers, func(a announcer[ID]) bool { return a.peer == id })
		if i < 0 {
			continue
		}
		mm.next %= len(mm.announcers)
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
		e.schedule(e.missing[mid], mid, now)
	}
	e.fill()
	if wasEager {
		e.promote()
	}
}

// promote makes up to EagerFanout random lazy neighbours eager again, and
// greets them so that they push back: a tree edge was lost to a failure.
// The next message reaches this part of the tree over all of them, and its
// duplicates prune all but the fastest, so the tree re-forms along short
// paths. Left to grafts alone, an orphaned subtree hung wherever an
// announcement came from, and after a 20% failure of 10,000 nodes the
// last delivery stayed 30 hops away instead of 18.
func (e *Engine[ID]) promote() {
	k := min(e.cfg.EagerFanout, e.cfg.MaxEagerPeers-e.eager.len(), e.lazy.len())
	for range k {
		p := e.lazy.list[e.rng.IntN(e.lazy.len())]
		e.lazy.remove(p)
		e.eager.add(p)
		e.addToTrees(p)
		e.emit(Event{Kind: EventPromoted})
		e.send(p, Msg[ID]{Kind: KindGraft}) // no message: "push to me"
	}
}

// fill tops the neighbour count up to EagerFanout+LazyFanout from the spare
// members, chosen at random; a newcomer is eager while the eager set is below
// EagerFanout (paper: a new neighbour starts eager), else lazy. It counts
// neighbours, not eager ones: a pruned link stays a (lazy) neighbour, and
// topping the eager set up again would undo the tree.
func (e *Engine[ID]) fill() {
	need := e.target() - e.neighbours()
	if need <= 0 || e.members.len() == e.neighbours() {
		return
	}
	spare := make([]ID, 0, e.members.len())
	for _, id := range e.members.list {
		if !e.neighbour(id) {
			spare = append(spare, id)
		}
	}
	e.rng.Shuffle(len(spare), func(i, j int) { spare[i], spare[j] = spare[j], spare[i] })
	for _, id := range spare[:min(need, len(spare))] {
		switch {
		case e.eager.len() < e.cfg.EagerFanout && e.eager.len() < e.cfg.MaxEagerPeers:
			// Every origin's tree takes it too: a tree that lost a
			// neighbour is whole again without a graft per origin.
			e.eager.add(id)
			e.addToTrees(id)
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
		// node is a member (it is held then, see holdGreeting, but only so
		// many are), or be lost.
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

// EngineStats is a snapshot of the engine's sizes and running totals.
type EngineStats struct {
	Members, Eager, Lazy int // known members, and the shared tree's eager and lazy sets
	CacheSize, SeenSize  int // messages cached for grafts, IDs in the seen set
	Missing              int // announced messages not yet received
	LazyQueued           int // announcements waiting to be sent
	// Origins is how many origins have a tree of their own here (at most
	// MaxOrigins); OriginsEvicted counts the trees forgotten so far.
	Origins        int
	OriginsEvicted uint64
	// Shuffles counts the neighbours overlay maintenance took in.
	Shuffles uint64
	// NacksSent and NacksReceived count grafts that could not be answered
	// (the message was not cached, or the graft rate limit refused it).
	NacksSent, NacksReceived uint64
	// Order is the per-origin ordering buffer's (Config.Ordered; zero
	// without).
	Order OrderStats
}

// Stats returns the engine's current sizes.
func (e *Engine[ID]) Stats() EngineStats {
	s := EngineStats{Members: e.members.len(), Eager: e.eager.len(), Lazy: e.lazy.len(),
		CacheSize: e.cache.Len(), SeenSize: e.seen.Len(), Missing: len(e.missing),
		Origins: len(e.trees), OriginsEvicted: e.stats.originsEvicted, Shuffles: e.stats.shuffles,
		NacksSent: e.stats.nacksSent, NacksReceived: e.stats.nacksReceived}
	for _, q := range e.lazyQ {
		s.LazyQueued += len(q.anns)
	}
	if e.order != nil {
		s.Order = e.order.stats()
	}
	return s
}

// SetGraftDelay makes the first graft of a message announced from now on
// wait GraftTimeout plus d, d at most a quarter of MessageCacheTTL (the
// announcer must still have the message): the runner sets it to how late
// payloads arrive because of queueing, so that a message that is only late
// is not grafted (issue 17). d <= 0 is none.
func (e *Engine[ID]) SetGraftDelay(d time.Duration) {
	e.graftDelay = min(max(d, 0), e.cfg.MessageCacheTTL/4)
}

// EagerPeers returns a copy of the shared tree's eager set.
func (e *Engine[ID]) EagerPeers() []ID { return e.eager.snapshot() }

// OriginEagerPeers returns a copy of origin's tree (the peers this node
// pushes origin's messages to), and false if origin has no tree here.
func (e *Engine[ID]) OriginEagerPeers(origin ID) ([]ID, bool) {
	t := e.trees[origin]
	if t == nil {
		return nil, false
	}
	return slices.Clone(t.eager), true
}

// LazyPeers returns a copy of the lazy set.
func (e *Engine[ID]) LazyPeers() []ID { return e.lazy.snapshot() }

// checkInvariants returns an error if the engine's sets break a rule: eager
// and lazy are disjoint, within their caps, and hold members only; every
// origin's tree holds neighbours only, within MaxEagerPeers.
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
		e.neighbours() > e.cfg.MaxPeers {
		return fmt.Errorf("sets over their caps: eager %d (max %d), lazy %d (max %d), max peers %d",
			e.eager.len(), e.cfg.MaxEagerPeers, e.lazy.len(), e.cfg.MaxLazyPeers, e.cfg.MaxPeers)
	}
	if len(e.trees) > e.cfg.MaxOrigins {
		return fmt.Errorf("%d origin trees, MaxOrigins %d", len(e.trees), e.cfg.MaxOrigins)
	}
	for o, t := range e.trees {
		if len(t.eager) > e.cfg.MaxEagerPeers {
			return fmt.Errorf("origin %v's tree has %d eager peers (max %d)", o, len(t.eager), e.cfg.MaxEagerPeers)
		}
		for _, p := range t.eager {
			if !e.neighbour(p) {
				return fmt.Errorf("origin %v's tree adds %v, not a neighbour", o, p)
			}
		}
	}
	return nil
}

type graftTimer struct {
	at  time.Time
	id  MessageID
	gen int
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
