package topic

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plumtree-go/plumtree/codec"
	"github.com/plumtree-go/plumtree/gossip"
	"github.com/plumtree-go/plumtree/membership"
	"github.com/plumtree-go/plumtree/transport"
)

// HostOptions wire a Host to the world. ID, Transport and Membership are
// required.
type HostOptions[ID comparable] struct {
	// ID is this node's identity; Membership must list it under the same ID.
	ID ID
	// Transport implements transport.Datagram, transport.Stream or both;
	// every topic gets the same paths. The host reads its receive channels:
	// nothing else may. The host does not close it.
	Transport transport.Transport
	// Membership reports the cluster. The host reads its events: nothing
	// else may. The host does not close it.
	Membership membership.Membership[ID]
	// IDCodec encodes node identities on the wire. nil means codec.ForID.
	IDCodec codec.Codec[ID]
	// Clock defaults to the system clock. Every topic uses it too.
	Clock gossip.Clock
	// Logger defaults to a logger that discards everything. Each topic logs
	// through it with a "topic" attribute.
	Logger *slog.Logger
	// Seed, if not 0, makes the choice of anti-entropy peers reproducible
	// and seeds each topic's Plumtree (mixed with the topic's tag); 0 draws
	// one from crypto/rand.
	Seed uint64
	// AnnounceDelay coalesces changes of the subscription set: the set is
	// announced to every member this long after the first change (default
	// 10ms).
	AnnounceDelay time.Duration
	// AnnounceInterval is how often the host sends its set to
	// AnnounceFanout random members, so that a lost announcement heals
	// (default 1s).
	AnnounceInterval time.Duration
	// AnnounceFanout is how many members get the periodic announcement
	// (default 3).
	AnnounceFanout int
	// ReconcileInterval is how often the host compares the membership's
	// full view with its own, for events it missed (default 10s).
	ReconcileInterval time.Duration
}

// HostStats are a host's counters since it started.
type HostStats struct {
	// Topics is how many topics this host subscribes to now.
	Topics int
	// Members is how many other members the host knows; Subscriptions is
	// how many (member, topic) subscriptions it knows of them.
	Members, Subscriptions int
	// Refused counts frames refused at the host: a tag this host does not
	// subscribe to (RefusedUnknownTopic), or an unreadable host prefix or
	// control frame (RefusedMalformed), or an announcement from a node that
	// is not a member or that came from another address than the member's
	// (RefusedUnknownSender). RefusedBytes is their bytes.
	RefusedUnknownTopic, RefusedMalformed, RefusedUnknownSender uint64
	RefusedBytes                                                uint64
	// AnnouncementsSent and AnnouncementsReceived count control frames.
	AnnouncementsSent, AnnouncementsReceived uint64
	// AnnounceErrors counts announcements the transport refused.
	AnnounceErrors uint64
	// RepliesLimited counts members' requests for this host's set left
	// unanswered because the member asked again too soon (see
	// HostOptions.AnnounceInterval): a flood of forged requests draws at
	// most one answer per member per AnnounceDelay.
	RepliesLimited uint64
	// ViewEventsDropped counts membership events a topic's view could not
	// queue (its Plumtree reconciles with the view's members).
	ViewEventsDropped uint64
}

// ErrHostClosed is returned by Subscribe on a closed host.
var ErrHostClosed = errors.New("topic: host closed")

// Host runs any number of topics on one transport and one membership. Make
// one with NewHost, add topics with Subscribe, and stop it with Close.
type Host[ID comparable] struct {
	o           HostOptions[ID]
	dg          transport.Datagram
	st          transport.Stream
	auth        bool
	idc         codec.Codec[ID]
	clock       gossip.Clock
	log         *slog.Logger
	seed        uint64
	selfWire    []byte
	incarnation uint64
	bufs        sync.Pool

	mu       sync.Mutex
	closed   bool
	topics   map[uint64]*entry[ID] // local subscriptions by tag
	members  map[ID]membership.Member[ID]
	order    []ID // members, for picking at random
	orderIdx map[ID]int
	remote   map[ID]*remoteSet
	replied  map[ID]reply               // the last answer to a member's request for this host's set (loop only)
	byTag    map[uint64]map[ID]struct{} // tag → members that announced it
	version  uint64
	warned   map[uint64]bool // unknown tags already logged

	changed chan struct{} // the local set changed (cap 1)
	stop    chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	ctrl    chan control

	refusedTopic, refusedMalformed, refusedSender, refusedBytes atomic.Uint64
	annSent, annRecv, annErrs, viewDropped                      atomic.Uint64
	repliesLimited                                              atomic.Uint64
}

// entry is one local subscription.
type entry[ID comparable] struct {
	name  string
	vt    *vtransport
	view  *view[ID]
	close func() error // closes the topic's Plumtree
}

// reply is when a member's request for this host's set was last answered,
// and for which incarnation of the member.
type reply struct {
	incarnation uint64
	at          time.Time
}

// remoteSet is a member's subscription set as last announced.
type remoteSet struct {
	incarnation, version uint64
	tags                 map[uint64]struct{}
}

type control struct {
	a    *announcement
	from string // the transport address it came from
}

// NewHost starts a host.
func NewHost[ID comparable](o HostOptions[ID]) (*Host[ID], error) {
	if o.Transport == nil {
		return nil, errors.New("topic: HostOptions.Transport is nil")
	}
	if o.Membership == nil {
		return nil, errors.New("topic: HostOptions.Membership is nil")
	}
	h := &Host[ID]{o: o, idc: o.IDCodec, clock: o.Clock, log: o.Logger, seed: o.Seed}
	h.dg, _ = o.Transport.(transport.Datagram)
	h.st, _ = o.Transport.(transport.Stream)
	if h.dg == nil && h.st == nil {
		return nil, fmt.Errorf("topic: HostOptions.Transport (%T) implements neither transport.Datagram nor transport.Stream", o.Transport)
	}
	if h.dg != nil && h.dg.MaxDatagramSize() <= PrefixLen || h.st != nil && h.st.MaxFrameSize() <= PrefixLen {
		return nil, errors.New("topic: the transport's frames are too small for the host prefix")
	}
	h.auth = transport.Authenticates(o.Transport)
	if h.idc == nil {
		c, err := codec.ForID[ID]()
		if err != nil {
			return nil, fmt.Errorf("topic: HostOptions.IDCodec: %w", err)
		}
		h.idc = c
	}
	self, err := h.idc.Append(nil, o.ID)
	if err != nil {
		return nil, fmt.Errorf("topic: encoding HostOptions.ID: %w", err)
	}
	if len(self) == 0 || len(self) > maxIDLen {
		return nil, fmt.Errorf("topic: HostOptions.ID encodes to %d bytes, want 1 to %d", len(self), maxIDLen)
	}
	h.selfWire = self
	if h.clock == nil {
		h.clock = gossip.SystemClock{}
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	var b [16]byte
	if _, err := crand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("topic: drawing an incarnation: %w", err)
	}
	h.incarnation = binary.LittleEndian.Uint64(b[:8])
	if h.seed == 0 {
		h.seed = binary.LittleEndian.Uint64(b[8:])
	}
	if h.o.AnnounceDelay <= 0 {
		h.o.AnnounceDelay = 10 * time.Millisecond
	}
	if h.o.AnnounceInterval <= 0 {
		h.o.AnnounceInterval = time.Second
	}
	if h.o.AnnounceFanout <= 0 {
		h.o.AnnounceFanout = 3
	}
	if h.o.ReconcileInterval <= 0 {
		h.o.ReconcileInterval = 10 * time.Second
	}
	h.bufs.New = func() any { b := make([]byte, 0, 1500); return &b }
	h.topics = make(map[uint64]*entry[ID])
	h.members = make(map[ID]membership.Member[ID])
	h.orderIdx = make(map[ID]int)
	h.remote = make(map[ID]*remoteSet)
	h.replied = make(map[ID]reply)
	h.byTag = make(map[uint64]map[ID]struct{})
	h.warned = make(map[uint64]bool)
	h.changed = make(chan struct{}, 1)
	h.stop = make(chan struct{})
	h.ctrl = make(chan control, 256)
	h.ctx, h.cancel = context.WithCancel(context.Background())

	h.reconcile()
	if h.dg != nil {
		h.wg.Add(1)
		go h.route(h.dg.Datagrams())
	}
	if h.st != nil {
		h.wg.Add(1)
		go h.route(h.st.Frames())
	}
	h.wg.Add(1)
	go h.loop()
	return h, nil
}

// ID is the host's node ID.
func (h *Host[ID]) ID() ID { return h.o.ID }

// Stats returns the host's counters.
func (h *Host[ID]) Stats() HostStats {
	h.mu.Lock()
	s := HostStats{Topics: len(h.topics), Members: len(h.members)}
	for _, set := range h.byTag {
		s.Subscriptions += len(set)
	}
	h.mu.Unlock()
	s.RefusedUnknownTopic, s.RefusedMalformed = h.refusedTopic.Load(), h.refusedMalformed.Load()
	s.RefusedUnknownSender, s.RefusedBytes = h.refusedSender.Load(), h.refusedBytes.Load()
	s.AnnouncementsSent, s.AnnouncementsReceived = h.annSent.Load(), h.annRecv.Load()
	s.AnnounceErrors, s.ViewEventsDropped = h.annErrs.Load(), h.viewDropped.Load()
	s.RepliesLimited = h.repliesLimited.Load()
	return s
}

// Subscribers returns the members this host knows to subscribe to the
// topic name (not the host itself), whether or not the host subscribes.
func (h *Host[ID]) Subscribers(name string) []ID {
	h.mu.Lock()
	defer h.mu.Unlock()
	var ids []ID
	for id := range h.byTag[Tag(name)] {
		ids = append(ids, id)
	}
	return ids
}

// Close closes every topic still open, then stops the host and waits for
// every goroutine it started. It does not close the Transport or the
// Membership.
func (h *Host[ID]) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	var closers []func() error
	for _, e := range h.topics {
		closers = append(closers, e.close)
	}
	h.mu.Unlock()
	for _, c := range closers {
		c()
	}
	close(h.stop)
	h.cancel()
	h.wg.Wait()
	return nil
}

// register adds a local subscription; the caller starts its Plumtree.
func (h *Host[ID]) register(name string) (*entry[ID], error) {
	tag := Tag(name)
	if tag == controlTag {
		return nil, errTagZero
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrHostClosed
	}
	if e := h.topics[tag]; e != nil {
		if e.name == name {
			return nil, fmt.Errorf("topic: already subscribed to %q", name)
		}
		return nil, fmt.Errorf("topic: %q has the same tag (%016x) as %q, which this host subscribes to; rename one", name, tag, e.name)
	}
	if len(h.topics) >= MaxTopics {
		return nil, fmt.Errorf("topic: a host subscribes to at most %d topics", MaxTopics)
	}
	e := &entry[ID]{name: name, vt: newVTransport(tag, name, h.dg, h.st, h.auth, &h.bufs)}
	e.view = &view[ID]{h: h, tag: tag, events: make(chan membership.Event[ID], viewEvents)}
	e.close = func() error { h.unregister(tag, e); return nil } // until the topic's Plumtree runs
	h.topics[tag] = e
	h.version++
	h.signalChange()
	return e, nil
}

// unregister removes a local subscription whose Plumtree has stopped.
func (h *Host[ID]) unregister(tag uint64, e *entry[ID]) {
	h.mu.Lock()
	if h.topics[tag] == e {
		delete(h.topics, tag)
		h.version++
		h.signalChange()
	}
	e.view.closeLocked()
	h.mu.Unlock()
	e.vt.Close()
}

func (h *Host[ID]) signalChange() {
	select {
	case h.changed <- struct{}{}:
	default:
	}
}

// route reads one path of the real transport and hands each frame to its
// topic, or to the loop for a control frame.
func (h *Host[ID]) route(ch <-chan transport.Message) {
	defer h.wg.Done()
	for {
		select {
		case <-h.stop:
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			h.routeOne(m)
		}
	}
}

func (h *Host[ID]) routeOne(m transport.Message) {
	n := len(m.Data)
	tag, rest, err := splitPrefix(m.Data)
	if err != nil {
		h.refuse(&h.refusedMalformed, n, "from", m.From, "err", err)
		return
	}
	if tag == controlTag {
		a, err := decodeControl(rest)
		if err != nil {
			h.refuse(&h.refusedMalformed, n, "from", m.From, "err", err)
			return
		}
		h.annRecv.Add(1)
		select {
		case h.ctrl <- control{a: a, from: m.From}:
		case <-h.stop:
		}
		return
	}
	h.mu.Lock()
	e := h.topics[tag]
	h.mu.Unlock()
	m.Data = rest
	if e == nil || !e.vt.deliver(m, n) {
		h.refusedTopic.Add(1)
		h.refusedBytes.Add(uint64(n))
		h.mu.Lock()
		first := !h.warned[tag] && len(h.warned) < 1024
		if first {
			h.warned[tag] = true
		}
		h.mu.Unlock()
		if first {
			h.log.Info("topic: refused a frame for a topic this host does not subscribe to (logged once per tag)", "tag", fmt.Sprintf("%016x", tag), "from", m.From, "path", m.Path)
		} else {
			h.log.Debug("topic: refused a frame for a topic this host does not subscribe to", "tag", fmt.Sprintf("%016x", tag), "from", m.From)
		}
	}
}

// refuse counts a frame refused as malformed and logs it: at Warn the
// 1st, 2nd, 4th, 8th... time (a peer sending garbage does not flood the
// log), at Debug otherwise.
func (h *Host[ID]) refuse(c *atomic.Uint64, n int, args ...any) {
	k := c.Add(1)
	h.refusedBytes.Add(uint64(n))
	if k&(k-1) == 0 {
		h.log.Warn("topic: refused a frame", append(args, "refused", k)...)
	} else {
		h.log.Debug("topic: refused a frame", args...)
	}
}

func (h *Host[ID]) loop() {
	defer h.wg.Done()
	memCh := h.o.Membership.Events()
	coalesce := h.clock.NewTimer(time.Hour)
	coalesce.Stop()
	var coalesceC <-chan time.Time
	rng := rand.New(rand.NewPCG(h.seed, h.incarnation))
	entropy := h.clock.NewTimer(h.o.AnnounceInterval)
	defer entropy.Stop()
	reconcile := h.clock.NewTimer(h.o.ReconcileInterval)
	defer reconcile.Stop()
	defer coalesce.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-h.changed:
			if coalesceC == nil {
				coalesce.Reset(h.o.AnnounceDelay)
				coalesceC = coalesce.C()
			}
		case <-coalesceC:
			coalesceC = nil
			h.announceTo(h.allMembers(), false)
		case <-entropy.C():
			h.announceTo(h.randomMembers(rng, h.o.AnnounceFanout), false)
			entropy.Reset(h.o.AnnounceInterval)
		case <-reconcile.C():
			h.reconcile()
			reconcile.Reset(h.o.ReconcileInterval)
		case ev, ok := <-memCh:
			if !ok {
				memCh = nil
				continue
			}
			h.onMembership(ev)
		case c := <-h.ctrl:
			h.onAnnouncement(c.a, c.from)
		}
	}
}

func (h *Host[ID]) allMembers() []membership.Member[ID] {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]membership.Member[ID], 0, len(h.order))
	for _, id := range h.order {
		out = append(out, h.members[id])
	}
	return out
}

func (h *Host[ID]) randomMembers(rng *rand.Rand, k int) []membership.Member[ID] {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := len(h.order)
	k = min(k, n)
	out := make([]membership.Member[ID], 0, k)
	picked := make(map[int]bool, k)
	for len(out) < k {
		i := rng.IntN(n)
		if picked[i] {
			continue
		}
		picked[i] = true
		out = append(out, h.members[h.order[i]])
	}
	return out
}

// ownAnnouncement encodes the host's set now.
func (h *Host[ID]) ownAnnouncement(want bool) []byte {
	h.mu.Lock()
	a := &announcement{want: want, sender: h.selfWire, incarnation: h.incarnation, version: h.version,
		tags: make([]uint64, 0, len(h.topics))}
	for tag := range h.topics {
		a.tags = append(a.tags, tag)
	}
	h.mu.Unlock()
	slices.Sort(a.tags)
	return appendAnnouncement(make([]byte, 0, announcementSize(len(a.sender), len(a.tags), a.version)), a)
}

// announceTo sends the host's set to each of to: by datagram when it fits
// (it never blocks), by stream otherwise, from a goroutine of its own.
func (h *Host[ID]) announceTo(to []membership.Member[ID], want bool) {
	if len(to) == 0 {
		return
	}
	b := h.ownAnnouncement(want)
	if h.dg != nil && len(b) <= h.dg.MaxDatagramSize() {
		for _, m := range to {
			if err := h.dg.SendDatagram(h.ctx, m.Addr, b); err != nil {
				h.annErrs.Add(1)
				h.log.Debug("topic: announcement not sent", "to", m.Addr, "err", err)
				continue
			}
			h.annSent.Add(1)
		}
		return
	}
	if h.st == nil || len(b) > h.st.MaxFrameSize() {
		h.annErrs.Add(uint64(len(to)))
		h.log.Error("topic: the subscription set does not fit the transport", "bytes", len(b))
		return
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		for _, m := range to {
			ctx, cancel := context.WithTimeout(h.ctx, h.o.AnnounceInterval)
			err := h.st.SendFrame(ctx, m.Addr, b)
			cancel()
			if err != nil {
				h.annErrs.Add(1)
				h.log.Debug("topic: announcement not sent", "to", m.Addr, "err", err)
				continue
			}
			h.annSent.Add(1)
		}
	}()
}

// reconcile compares the membership's full view with the host's.
func (h *Host[ID]) reconcile() {
	members := h.o.Membership.Members()
	seen := make(map[ID]bool, len(members))
	var joined []membership.Member[ID]
	for _, m := range members {
		if m.ID == h.o.ID {
			continue
		}
		seen[m.ID] = true
		h.mu.Lock()
		old, ok := h.members[m.ID]
		h.mu.Unlock()
		if !ok {
			joined = append(joined, m)
		} else if old.Addr != m.Addr {
			h.onMembership(membership.Event[ID]{Kind: membership.Update, Member: m})
		}
	}
	h.mu.Lock()
	var gone []membership.Member[ID]
	for id, m := range h.members {
		if !seen[id] {
			gone = append(gone, m)
		}
	}
	h.mu.Unlock()
	for _, m := range gone {
		h.onMembership(membership.Event[ID]{Kind: membership.Fail, Member: m})
	}
	for _, m := range joined {
		h.onMembership(membership.Event[ID]{Kind: membership.Join, Member: m})
	}
}

func (h *Host[ID]) onMembership(ev membership.Event[ID]) {
	id := ev.Member.ID
	if id == h.o.ID {
		return
	}
	switch ev.Kind {
	case membership.Join, membership.Update:
		h.mu.Lock()
		_, known := h.members[id]
		h.members[id] = ev.Member
		if !known {
			h.orderIdx[id] = len(h.order)
			h.order = append(h.order, id)
		} else if rs := h.remote[id]; rs != nil {
			for tag := range rs.tags {
				h.viewEventLocked(tag, membership.Event[ID]{Kind: membership.Update, Member: ev.Member})
			}
		}
		h.mu.Unlock()
		if !known {
			// Tell the newcomer what this host subscribes to, and ask for its set.
			h.announceTo([]membership.Member[ID]{ev.Member}, true)
		}
	case membership.Leave, membership.Fail:
		h.mu.Lock()
		m, known := h.members[id]
		if known {
			delete(h.members, id)
			i := h.orderIdx[id]
			last := h.order[len(h.order)-1]
			h.order[i] = last
			h.orderIdx[last] = i
			h.order = h.order[:len(h.order)-1]
			delete(h.orderIdx, id)
			h.setRemoteLocked(id, m, nil, ev.Kind)
			delete(h.remote, id)
			delete(h.replied, id)
		}
		h.mu.Unlock()
	}
}

// onAnnouncement takes a member's set. It must come from the member's own
// address (transport.Message.From), so that a node cannot announce, or
// withdraw, subscriptions in another member's name.
func (h *Host[ID]) onAnnouncement(a *announcement, from string) {
	id, err := h.idc.Decode(a.sender)
	if err != nil {
		h.refuse(&h.refusedMalformed, len(a.sender), "err", fmt.Errorf("announcement sender: %w", err))
		return
	}
	if id == h.o.ID {
		return
	}
	h.mu.Lock()
	m, known := h.members[id]
	if !known || m.Addr != from {
		h.mu.Unlock()
		h.refusedSender.Add(1)
		h.log.Debug("topic: announcement from a node that is not a member, or not from its address", "id", id, "from", from)
		return
	}
	rs := h.remote[id]
	if rs == nil || rs.incarnation != a.incarnation || a.version > rs.version {
		tags := make(map[uint64]struct{}, len(a.tags))
		for _, t := range a.tags {
			if t != controlTag {
				tags[t] = struct{}{}
			}
		}
		h.setRemoteLocked(id, m, tags, membership.Join)
		h.remote[id] = &remoteSet{incarnation: a.incarnation, version: a.version, tags: tags}
	}
	h.mu.Unlock()
	if a.want && h.mayReply(id, a.incarnation) {
		h.announceTo([]membership.Member[ID]{m}, false)
	}
}

// mayReply reports whether to answer a member's request for this host's
// set: a request of a new incarnation of the member (a start or a
// restart) at once, at most once per AnnounceDelay, and another at most
// once per AnnounceInterval. A datagram's source address can be forged: the
// answers a flood of requests draws, each larger than the request, stay
// bounded per member, and so do the goroutines a set sent by stream takes.
func (h *Host[ID]) mayReply(id ID, incarnation uint64) bool {
	now := h.clock.Now()
	last, ok := h.replied[id]
	since := now.Sub(last.at)
	if ok && since < h.o.AnnounceInterval && (last.incarnation == incarnation || since < h.o.AnnounceDelay) {
		h.repliesLimited.Add(1)
		return false
	}
	h.replied[id] = reply{incarnation: incarnation, at: now}
	return true
}

// setRemoteLocked moves member id from the topics it announced before to
// tags (nil: none), telling the local topics' views: Join for a topic it
// entered, leave (the kind given for a member that went, Leave otherwise)
// for one it left.
func (h *Host[ID]) setRemoteLocked(id ID, m membership.Member[ID], tags map[uint64]struct{}, gone membership.EventKind) {
	var old map[uint64]struct{}
	if rs := h.remote[id]; rs != nil {
		old = rs.tags
	}
	leave := membership.Leave
	if tags == nil && gone == membership.Fail {
		leave = membership.Fail
	}
	for tag := range old {
		if _, still := tags[tag]; still {
			continue
		}
		if set := h.byTag[tag]; set != nil {
			delete(set, id)
			if len(set) == 0 {
				delete(h.byTag, tag)
			}
		}
		h.viewEventLocked(tag, membership.Event[ID]{Kind: leave, Member: m})
	}
	for tag := range tags {
		if _, was := old[tag]; was {
			continue
		}
		set := h.byTag[tag]
		if set == nil {
			set = make(map[ID]struct{})
			h.byTag[tag] = set
		}
		set[id] = struct{}{}
		h.viewEventLocked(tag, membership.Event[ID]{Kind: membership.Join, Member: m})
	}
}

func (h *Host[ID]) viewEventLocked(tag uint64, ev membership.Event[ID]) {
	e := h.topics[tag]
	if e == nil {
		return
	}
	if !e.view.sendLocked(ev) {
		h.viewDropped.Add(1)
	}
}
