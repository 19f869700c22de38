package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"time"

	"github.com/plumtree-go/plumtree/gossip"
)

// node is one simulated node.
type node struct {
	eng      *gossip.Engine[int32]
	adj      []int32 // overlay neighbours (OverlayPaper; the flood graph)
	timerAt  int64   // the pending tick, 0 if none
	joinedAt int64
	failedAt int64   // math.MaxInt64 while up
	side     int8    // 0 side A, 1 side B (Partition, Backlog)
	lost     []int32 // overlay neighbours lost to the cut (OverlayPaper)
}

func (n *node) up() bool { return n.failedAt == math.MaxInt64 }

// bstate is a broadcast being measured.
type bstate struct {
	origin     int32
	at         int64
	delivered  bitset
	prompt     bitset // delivered within Interval
	deliveries int
	payloads   int64
	ldh        uint32
	last       int64
	control    [6]int64 // by gossip.Kind
	hops       []int32
	cut        bool // sent during the cut
}

type bitset []uint64

func (b *bitset) set(i int32) bool {
	w := int(i) >> 6
	for w >= len(*b) {
		*b = append(*b, 0)
	}
	m := uint64(1) << (uint(i) & 63)
	was := (*b)[w]&m != 0
	(*b)[w] |= m
	return was
}

func (b bitset) has(i int32) bool {
	w := int(i) >> 6
	return w < len(b) && b[w]&(uint64(1)<<(uint(i)&63)) != 0
}

type sim struct {
	cfg     Config
	ecfg    gossip.Config
	nodes   []node
	q       queue
	seq     uint64
	now     int64
	end     int64
	msgs    []gossip.Msg[int32]
	free    []int32
	acts    []func()
	ovRng   *rand.Rand // overlay construction and repair
	scRng   *rand.Rand // origins, failures, churn, detection delays
	engines uint64     // engines made so far
	netRng  *rand.Rand // loss and jitter
	byID    map[gossip.MessageID]int32
	bc      []*bstate
	cur     int32 // the node whose engine is running (for the observer)
	curB    int   // the broadcast whose window control messages count against
	payload []byte
	stream  map[uint64]int64 // per ordered pair: the last stream arrival (FIFO)
	tot     Totals
	dgMax   int
	target  int // overlay degree to maintain

	cutOn         bool  // the network drops messages between the sides
	viewCut       bool  // the membership reports the other side failed
	cutAt, healAt int64 // virtual times of the cut and the heal
	sideN         [2]int
	sideList      [2][]int32
	senders       []int32 // the origins (Senders)
	// stuck is the first engine that, ticked at a time, still asked to be
	// woken at or before it: an engine bug that would have the loop tick it
	// every nanosecond of virtual time to the end of the run. Run fails with it.
	stuck error
}

// observer attributes engine events to broadcasts.
type observer struct{ s *sim }

func (o observer) Observe(e gossip.Event) {
	switch e.Kind {
	case gossip.EventDelivered:
		if b, ok := o.s.byID[e.Message]; ok {
			o.s.delivery(b, o.s.cur, e.Hops)
		}
	case gossip.EventDuplicate:
		if b, ok := o.s.byID[e.Message]; ok && o.s.nodes[o.s.cur].joinedAt <= o.s.bc[b].at {
			o.s.bc[b].payloads++
			if h := o.s.cfg.payloadHook; h != nil {
				h(b, o.s.cur, e.Hops, o.s.now)
			}
		}
	}
}

// Run simulates one run of cfg and returns its measures. It is
// single-threaded and deterministic: the same cfg gives the same Result
// (Perf aside).
func Run(cfg Config) (*Result, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	start := time.Now()
	var m0 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)

	s := &sim{cfg: cfg, ecfg: cfg.engineConfig()}
	s.init()
	if err := s.build(); err != nil {
		return nil, err
	}
	s.schedule()

	var m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m1)
	s.loop()
	if s.stuck != nil {
		return nil, s.stuck
	}
	var m2 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m2)

	r := s.result()
	r.Perf.Wall = time.Since(start)
	if m1.HeapAlloc > m0.HeapAlloc {
		r.Perf.HeapPerNodeSetup = (m1.HeapAlloc - m0.HeapAlloc) / uint64(cfg.Nodes)
	}
	if m2.HeapAlloc > m0.HeapAlloc {
		r.Perf.HeapPerNodeEnd = (m2.HeapAlloc - m0.HeapAlloc) / uint64(len(s.nodes))
	}
	runtime.KeepAlive(s)
	return r, nil
}

// init sets up the generators and tables of a sim whose cfg is set.
func (s *sim) init() {
	cfg := &s.cfg
	s.ovRng = rand.New(rand.NewPCG(cfg.Seed, 1))
	s.scRng = rand.New(rand.NewPCG(cfg.Seed, 2))
	s.netRng = rand.New(rand.NewPCG(cfg.Seed, 3))
	s.byID = make(map[gossip.MessageID]int32)
	s.stream = make(map[uint64]int64)
	s.payload = make([]byte, cfg.PayloadSize)
	s.curB = -1
	s.dgMax = min(s0(cfg.Engine.GossipDatagramMaxSize), 1400)
	s.target = cfg.Degree
	if cfg.Overlay == OverlayFull {
		s.target = cfg.Engine.EagerFanout
	}
	// A node has at most Nodes-1 neighbours: a cluster smaller than the
	// fanout links everyone (building the flood graph would not end).
	s.target = min(s.target, cfg.Nodes-1)
}

func s0(n int) int { return max(n, 0) }

func (s *sim) engineSeed(i int) uint64 {
	if s.cfg.EngineSeed != nil {
		return s.cfg.EngineSeed(i)
	}
	return mix(s.cfg.Seed ^ mix(uint64(i)+0x51a7))
}

func (s *sim) newEngine(i int) error {
	// Every engine made, a restarted node's too, has an incarnation of its
	// own, as a real node draws from crypto/rand, but reproducibly.
	s.engines++
	inc := mix(s.cfg.Seed^mix(s.engines+0x1ca7)) | 1
	e, err := gossip.NewEngine(gossip.EngineOptions[int32]{Self: int32(i), Config: s.ecfg,
		Seed: s.engineSeed(i), Incarnation: inc, Observer: observer{s}})
	if err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	s.nodes[i].eng = e
	return nil
}

// build makes the nodes and the overlay.
func (s *sim) build() error {
	n := s.cfg.Nodes
	s.nodes = make([]node, n)
	for i := range s.nodes {
		s.nodes[i].failedAt = math.MaxInt64
	}
	if s.cfg.Overlay == OverlayPaper {
		// A union of Degree/2 random Hamiltonian cycles (plus a random
		// matching for an odd Degree): connected, every degree at most
		// Degree, and exactly Degree unless two cycles share an edge.
		for range s.cfg.Degree / 2 {
			p := s.ovRng.Perm(n)
			for k := range p {
				s.link(int32(p[k]), int32(p[(k+1)%n]))
			}
		}
		if s.cfg.Degree%2 == 1 {
			p := s.ovRng.Perm(n)
			for k := 0; k+1 < n; k += 2 {
				s.link(int32(p[k]), int32(p[k+1]))
			}
		}
	} else {
		// The flood graph: EagerFanout random members per node, symmetric.
		for i := range n {
			for len(s.nodes[i].adj) < s.target {
				j := int32(s.ovRng.IntN(n))
				if j != int32(i) {
					s.link(int32(i), j)
				}
			}
		}
	}
	if s.cfg.Protocol != Plumtree {
		return nil
	}
	var all []int32
	if s.cfg.Overlay == OverlayFull {
		all = make([]int32, n)
		for i := range all {
			all[i] = int32(i)
		}
	}
	now := base
	for i := range s.nodes {
		if err := s.newEngine(i); err != nil {
			return err
		}
		s.cur = int32(i)
		if s.cfg.Overlay == OverlayFull {
			s.nodes[i].eng.SetMembers(now, all)
		} else {
			s.nodes[i].eng.SetMembers(now, s.nodes[i].adj)
		}
		s.drain(int32(i))
	}
	return nil
}

// link adds the overlay edge a-b; it reports false if it existed.
func (s *sim) link(a, b int32) bool {
	if a == b || slices.Contains(s.nodes[a].adj, b) {
		return false
	}
	s.nodes[a].adj = append(s.nodes[a].adj, b)
	s.nodes[b].adj = append(s.nodes[b].adj, a)
	return true
}

func (s *sim) at(t int64, kind uint8, to, from, arg int32, hops uint32) {
	s.seq++
	s.q.push(event{at: t, seq: s.seq, kind: kind, to: to, from: from, arg: arg, hops: hops})
}

func (s *sim) action(t int64, f func()) {
	s.acts = append(s.acts, f)
	s.at(t, evAction, -1, -1, int32(len(s.acts)-1), 0)
}

// schedule queues the scenario: broadcasts, failure, churn.
func (s *sim) schedule() {
	c := &s.cfg
	total := c.Warmup + c.Broadcasts
	iv := int64(c.Interval)
	if c.Scenario == Senders {
		k := len(s.nodes)
		if c.Senders > 0 {
			k = c.Senders
		}
		s.senders = make([]int32, k)
		for i, j := range s.scRng.Perm(len(s.nodes))[:k] {
			s.senders[i] = int32(j)
		}
		slices.Sort(s.senders)
	}
	cutFrom, healAt := -1, -1
	if c.cutScenario() {
		cutFrom, healAt = c.Warmup+c.CutAt, c.Warmup+c.CutAt+c.CutFor
		s.sides()
	}
	for k := range total {
		t := iv * int64(k+1)
		if c.Scenario == Failure && k == c.Warmup+c.FailAt {
			s.action(t, s.massFailure)
		}
		if k == cutFrom {
			s.action(t, s.cut)
		}
		if k == healAt {
			s.action(t, s.heal)
		}
		s.action(t, func() { s.broadcast(k) })
	}
	s.end = iv*int64(total) + int64(c.Settle)
	if healAt >= total {
		// No traffic after the heal: it comes one interval after the last
		// broadcast.
		s.action(iv*int64(total+1), s.heal)
	}
	if c.cutScenario() {
		s.end = max(s.end, iv*int64(min(healAt, total)+1)+int64(c.Watch))
	}
	if c.Scenario == Churn {
		step := int64(float64(time.Second) / c.ChurnRate)
		for t := iv*int64(c.Warmup) + iv/2; t < iv*int64(total); t += max(step, 1) {
			s.action(t, s.churn)
		}
	}
}

// loop runs events until the end of the run.
func (s *sim) loop() {
	for len(s.q) > 0 {
		e := s.q.pop()
		if e.at > s.end {
			break
		}
		s.now = e.at
		s.tot.Events++
		switch e.kind {
		case evMsg:
			m := &s.msgs[e.arg]
			if n := &s.nodes[e.to]; n.up() && n.eng != nil {
				s.cur = e.to
				n.eng.Receive(base.Add(time.Duration(s.now)), e.from, m)
				s.drain(e.to)
			}
			s.msgs[e.arg] = gossip.Msg[int32]{}
			s.free = append(s.free, e.arg)
		case evFlood:
			s.onFlood(e)
		case evTick:
			n := &s.nodes[e.to]
			if !n.up() || n.eng == nil || n.timerAt != e.at {
				continue
			}
			n.timerAt = 0
			s.cur = e.to
			now := base.Add(time.Duration(s.now))
			n.eng.Tick(now)
			if d := n.eng.NextDeadline(); !d.IsZero() && !d.After(now) {
				s.stuck = fmt.Errorf("sim: node %d's engine, ticked at %v, still wants a tick at %v (%+v): a deadline it does not handle", e.to, time.Duration(s.now), d.Sub(base), n.eng.Stats())
				return
			}
			s.drain(e.to)
		case evAction:
			f := s.acts[e.arg]
			s.acts[e.arg] = nil
			f()
		}
	}
}

// drain sends what node i's engine wants sent and re-arms its timer.
func (s *sim) drain(i int32) {
	n := &s.nodes[i]
	for _, snd := range n.eng.Outbox() {
		s.send(i, snd.To, &snd.Msg)
	}
	d := n.eng.NextDeadline()
	if d.IsZero() {
		return
	}
	t := int64(d.Sub(base))
	if t <= s.now {
		t = s.now + 1
	}
	if n.timerAt == 0 || t < n.timerAt {
		n.timerAt = t
		s.at(t, evTick, i, i, 0, 0)
	}
}

// datagram reports whether a message of kind k with a payload of size
// bytes goes by the datagram path (the runner's routing).
func (s *sim) datagram(k gossip.Kind, size int) bool {
	return k == gossip.KindIHave || (k == gossip.KindGossip && size <= s.dgMax)
}

// delay returns the arrival time of a message from a to b, or -1 if it is
// lost.
func (s *sim) delay(a, b int32, dgram bool) int64 {
	t := s.now + s.cfg.Latency.link(s.cfg.Seed, a, b)
	if dgram {
		if s.cfg.Loss > 0 && s.netRng.Float64() < s.cfg.Loss {
			s.tot.DatagramsLost++
			return -1
		}
		if s.cfg.Jitter > 0 {
			t += s.netRng.Int64N(int64(s.cfg.Jitter))
		}
		return t
	}
	key := uint64(uint32(a))<<32 | uint64(uint32(b))
	if last := s.stream[key]; t < last {
		t = last
	}
	s.stream[key] = t
	return t
}

func (s *sim) send(from, to int32, m *gossip.Msg[int32]) {
	if m.Kind == gossip.KindGossip {
		s.tot.PayloadsSent++
	} else {
		s.tot.ControlSent++
		if s.curB >= 0 && int(m.Kind) < len(s.bc[s.curB].control) && s.now < s.bc[s.curB].at+int64(s.cfg.Interval) {
			s.bc[s.curB].control[m.Kind]++
		}
	}
	if to < 0 || int(to) >= len(s.nodes) || !s.nodes[to].up() {
		s.tot.ToDeadNodes++
		return
	}
	if s.severed(from, to) {
		return
	}
	t := s.delay(from, to, s.datagram(m.Kind, len(m.Payload.Data)))
	if t < 0 {
		return
	}
	var slot int32
	if k := len(s.free); k > 0 {
		slot = s.free[k-1]
		s.free = s.free[:k-1]
	} else {
		s.msgs = append(s.msgs, gossip.Msg[int32]{})
		slot = int32(len(s.msgs) - 1)
	}
	s.msgs[slot] = *m
	s.at(t, evMsg, to, from, slot, 0)
}

// delivery records node i's first copy of broadcast b. Nodes that joined
// after the broadcast (and catch up through the exchange) are left out of
// its measures.
func (s *sim) delivery(b, i int32, hops uint32) {
	st := s.bc[b]
	if s.nodes[i].joinedAt > st.at {
		return
	}
	st.payloads++
	if h := s.cfg.payloadHook; h != nil {
		h(b, i, hops, s.now)
	}
	if st.delivered.set(i) {
		return
	}
	if s.now-st.at <= int64(s.cfg.Interval) {
		st.prompt.set(i)
	}
	st.deliveries++
	st.ldh = max(st.ldh, hops)
	st.last = max(st.last, s.now)
	if st.hops != nil && int(i) < len(st.hops) {
		st.hops[i] = int32(hops)
	}
}

// randomUp returns a random node that is up, by the scenario generator.
func (s *sim) randomUp(r *rand.Rand) int32 {
	for {
		i := int32(r.IntN(len(s.nodes)))
		if s.nodes[i].up() {
			return i
		}
	}
}

// randomUpOn returns a random node of side that is up.
func (s *sim) randomUpOn(r *rand.Rand, side int8) int32 {
	for {
		i := int32(r.IntN(len(s.nodes)))
		if s.nodes[i].up() && s.nodes[i].side == side {
			return i
		}
	}
}

func (s *sim) broadcast(k int) {
	s.curB = k
	var origin int32
	switch {
	case s.cutOn:
		// During the cut the origins alternate between the sides.
		origin = s.randomUpOn(s.scRng, int8(k%2))
	case len(s.senders) > 0:
		origin = s.senders[s.scRng.IntN(len(s.senders))]
		for !s.nodes[origin].up() {
			origin = s.senders[s.scRng.IntN(len(s.senders))]
		}
	default:
		origin = s.randomUp(s.scRng)
	}
	st := &bstate{origin: origin, at: s.now, cut: s.cutOn}
	if s.cfg.RecordHops {
		st.hops = make([]int32, len(s.nodes))
		for i := range st.hops {
			st.hops[i] = -1
		}
		st.hops[origin] = 0
	}
	st.delivered.set(origin)
	s.bc = append(s.bc, st)
	if p := s.cfg.Progress; p != nil {
		p(Progress{Protocol: s.cfg.Protocol, Sent: k + 1, Total: s.cfg.Warmup + s.cfg.Broadcasts,
			Virtual: time.Duration(s.now), Events: s.tot.Events})
	}
	copy(s.payload, fmt.Sprintf("broadcast %d", k))
	if s.cfg.Protocol == Flood {
		s.forward(origin, -1, int32(k), 1)
		return
	}
	n := &s.nodes[origin]
	s.cur = origin
	id, err := n.eng.Broadcast(base.Add(time.Duration(s.now)), gossip.Payload{Data: s.payload}, nil)
	if err != nil {
		panic(fmt.Sprintf("sim: broadcast: %v", err)) // the payload size was validated
	}
	s.byID[id] = int32(k)
	s.drain(origin)
}

// forward floods broadcast b from node i to its neighbours but from.
func (s *sim) forward(i, from, b int32, hops uint32) {
	dg := s.datagram(gossip.KindGossip, s.cfg.PayloadSize)
	for _, j := range s.nodes[i].adj {
		if j == from {
			continue
		}
		s.tot.PayloadsSent++
		if !s.nodes[j].up() {
			s.tot.ToDeadNodes++
			continue
		}
		if s.severed(i, j) {
			continue
		}
		if t := s.delay(i, j, dg); t >= 0 {
			s.at(t, evFlood, j, i, b, hops)
		}
	}
}

func (s *sim) onFlood(e event) {
	if !s.nodes[e.to].up() {
		return
	}
	st := s.bc[e.arg]
	if st.delivered.has(e.to) {
		st.payloads++
		return
	}
	s.delivery(e.arg, e.to, e.hops)
	s.forward(e.to, e.from, e.arg, e.hops+1)
}
