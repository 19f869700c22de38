package mem

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plumtree-go/plumtree/transport"
	"github.com/plumtree-go/plumtree/transport/internal/partition"
)

// Defaults used when a Config field is zero (or negative).
const (
	DefaultMaxDatagramSize = 1400
	DefaultMaxFrameSize    = 4 << 20
	DefaultQueueSize       = 1024
)

// reorderHold is the extra delay, beyond Latency+Jitter, given to a datagram
// chosen for reordering, so that a datagram sent right after it overtakes it.
const reorderHold = time.Millisecond

// Config sets the behaviour of a Network. The zero value is a perfect
// network: no faults, no delay, default sizes.
type Config struct {
	// Seed seeds the generator behind every random fault.
	Seed uint64
	// DropRate is the probability that a datagram is dropped (datagram path
	// only).
	DropRate float64
	// DuplicateRate is the probability that a datagram is delivered twice
	// (datagram path only).
	DuplicateRate float64
	// ReorderRate is the probability that a datagram is held back by
	// Latency+Jitter+1ms more than usual, so that the datagrams sent right
	// after it overtake it (datagram path only).
	ReorderRate float64
	// Latency is the one-way delay on both paths; 0 delivers immediately,
	// within the Send call.
	Latency time.Duration
	// Jitter adds a uniform random delay in [0, Jitter) to each datagram.
	// Streams get no jitter: they stay ordered per (sender, receiver) pair.
	Jitter time.Duration
	// MaxDatagramSize is the largest datagram accepted; default 1400.
	MaxDatagramSize int
	// MaxFrameSize is the largest stream frame accepted; default 4 MiB.
	MaxFrameSize int
	// StreamBandwidth, if positive, is the capacity in bytes per second of
	// each stream link (one direction of one pair of transports). SendFrame
	// then holds a frame for len/StreamBandwidth after the frames before it
	// on the same link, as a socket whose send buffer is full blocks a
	// writer, before it travels for Latency. 0 is unlimited. The datagram
	// path is never limited.
	StreamBandwidth int
	// QueueSize is each transport's receive buffer, per path; default 1024.
	// On the stream path it counts the frames in flight towards the
	// transport as well as those waiting to be read.
	QueueSize int
}

// counters are a set of traffic counters, safe for concurrent use.
type counters struct {
	datagramsSent, datagramsReceived, datagramsDropped atomic.Uint64
	framesSent, framesReceived, framesDropped          atomic.Uint64
	bytesSent, bytesReceived                           atomic.Uint64
}

func (c *counters) stats() transport.Stats {
	return transport.Stats{
		DatagramsSent:     c.datagramsSent.Load(),
		DatagramsReceived: c.datagramsReceived.Load(),
		DatagramsDropped:  c.datagramsDropped.Load(),
		FramesSent:        c.framesSent.Load(),
		FramesReceived:    c.framesReceived.Load(),
		FramesDropped:     c.framesDropped.Load(),
		BytesSent:         c.bytesSent.Load(),
		BytesReceived:     c.bytesReceived.Load(),
	}
}

// Network is an in-memory network of Transports. It is safe for concurrent
// use.
type Network struct {
	cfg Config // sizes and delays; DropRate is guarded by mu

	mu         sync.Mutex
	rng        *rand.Rand
	dropRate   float64
	transports map[string]*Transport
	group      partition.Groups // nil: no partition
	nextAuto   uint64

	c counters // totals over every transport ever created
}

// NewNetwork returns an empty network with the given configuration.
func NewNetwork(cfg Config) *Network {
	cfg = cfg.withDefaults()
	// The second PCG word is fixed so that a single uint64 is the whole seed.
	return &Network{
		cfg:        cfg,
		rng:        rand.New(rand.NewPCG(cfg.Seed, 0x9e3779b97f4a7c15)),
		dropRate:   cfg.DropRate,
		transports: make(map[string]*Transport),
	}
}

// withDefaults fills in cfg's defaults, as every adapter's Config does
// (nothing in a mem Config is invalid: out-of-range values take the
// default).
func (cfg Config) withDefaults() Config {
	if cfg.MaxDatagramSize <= 0 {
		cfg.MaxDatagramSize = DefaultMaxDatagramSize
	}
	if cfg.MaxFrameSize <= 0 {
		cfg.MaxFrameSize = DefaultMaxFrameSize
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.Latency < 0 {
		cfg.Latency = 0
	}
	if cfg.Jitter < 0 {
		cfg.Jitter = 0
	}
	return cfg
}

// Listen creates a transport at addr. It fails if an open transport already
// has addr. An empty addr picks a fresh one of the form "mem-N".
func (n *Network) Listen(addr string) (*Transport, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if addr == "" {
		for {
			n.nextAuto++
			addr = "mem-" + strconv.FormatUint(n.nextAuto, 10)
			if _, used := n.transports[addr]; !used {
				break
			}
		}
	} else if _, used := n.transports[addr]; used {
		return nil, fmt.Errorf("mem: listen %s: address already in use", addr)
	}
	t := &Transport{
		net:     n,
		addr:    addr,
		dgrams:  make(chan transport.Message, n.cfg.QueueSize),
		frames:  make(chan transport.Message),
		done:    make(chan struct{}),
		fqReady: make(chan struct{}, 1),
		space:   make(chan struct{}),
		peers:   make(map[*Transport]struct{}),
		links:   make(map[string]*link),
	}
	n.transports[addr] = t
	t.wg.Add(1)
	go t.pump()
	return t, nil
}

// Partition splits the network: addresses in different groups cannot reach
// each other, on either path; addresses in no group reach everyone. It
// replaces any earlier partition. An address listed in several groups belongs
// to the last one. The partition is checked when a frame is sent: frames
// already in flight still arrive.
func (n *Network) Partition(groups ...[]string) {
	g := partition.New(groups...)
	n.mu.Lock()
	n.group = g
	n.mu.Unlock()
}

// Heal removes the partition.
func (n *Network) Heal() {
	n.mu.Lock()
	n.group = nil
	n.mu.Unlock()
}

// SetDropRate changes the probability that a datagram is dropped.
func (n *Network) SetDropRate(p float64) {
	n.mu.Lock()
	n.dropRate = p
	n.mu.Unlock()
}

// Stats returns the totals over the network: the counters of every transport
// created on it, open or closed, and the number of open stream connections
// (pairs of open transports that have exchanged stream frames).
func (n *Network) Stats() transport.Stats {
	s := n.c.stats()
	n.mu.Lock()
	open := make([]*Transport, 0, len(n.transports))
	for _, t := range n.transports {
		open = append(open, t)
	}
	n.mu.Unlock()
	ends := 0
	for _, t := range open {
		ends += t.connections()
	}
	s.Connections = ends / 2
	return s
}

// reachableLocked reports whether from may reach to under the partition.
func (n *Network) reachableLocked(from, to string) bool {
	return n.group.Reachable(from, to)
}

// datagramPlan is the fate of one datagram.
type datagramPlan struct {
	dst       *Transport // nil: dropped
	delay     time.Duration
	duplicate bool
	dupDelay  time.Duration
}

// planDatagram decides what happens to a datagram from → to. It always draws
// the same number of random values, so the fault sequence depends only on
// the sequence of calls.
func (n *Network) planDatagram(from, to string) datagramPlan {
	n.mu.Lock()
	defer n.mu.Unlock()
	uDrop := n.rng.Float64()
	uDup := n.rng.Float64()
	uReorder := n.rng.Float64()
	uJitter := n.rng.Float64()
	uDupJitter := n.rng.Float64()

	dst := n.transports[to]
	if dst == nil || !n.reachableLocked(from, to) || uDrop < n.dropRate {
		return datagramPlan{}
	}
	p := datagramPlan{
		dst:       dst,
		delay:     n.cfg.Latency + time.Duration(uJitter*float64(n.cfg.Jitter)),
		duplicate: uDup < n.cfg.DuplicateRate,
		dupDelay:  n.cfg.Latency + time.Duration(uDupJitter*float64(n.cfg.Jitter)),
	}
	if uReorder < n.cfg.ReorderRate {
		p.delay += n.cfg.Latency + n.cfg.Jitter + reorderHold
	}
	return p
}

// lookupStream finds the transport at to and whether from may reach it.
func (n *Network) lookupStream(from, to string) (*Transport, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.transports[to], n.reachableLocked(from, to)
}

func (n *Network) remove(t *Transport) {
	n.mu.Lock()
	if n.transports[t.addr] == t {
		delete(n.transports, t.addr)
	}
	n.mu.Unlock()
}

// Transport is one endpoint of a Network. It implements transport.Datagram,
// transport.Stream and transport.StatsReporter.
type Transport struct {
	net  *Network
	addr string

	dgrams chan transport.Message // buffered QueueSize; sent to under mu only, closed by Close
	frames chan transport.Message // unbuffered; sent to by pump only, closed by Close after pump stops
	done   chan struct{}          // closed by Close

	closeOnce sync.Once
	isClosed  atomic.Bool    // mirror of closed, readable without mu
	wg        sync.WaitGroup // pump and delivery timers not yet stopped
	c         counters

	mu       sync.Mutex
	closed   bool
	fq       []transport.Message     // frames arrived, not yet taken by the reader
	fqReady  chan struct{}           // tells pump that fq grew (cap 1)
	reserved int                     // frames in flight towards us + len(fq)
	space    chan struct{}           // closed and replaced when reserved drops
	inflight deliveries              // delayed deliveries, earliest first
	nextSeq  uint64                  // orders deliveries due at the same instant
	peers    map[*Transport]struct{} // stream peers, for Stats().Connections
	links    map[string]*link        // outgoing stream links by address, with StreamBandwidth
}

// link is one direction of a stream connection under StreamBandwidth: one
// frame at a time is on the wire.
type link struct {
	turn    chan struct{} // holds a token while a frame is being serialized
	lastEnd time.Time     // when the last frame finished leaving
}

var (
	_ transport.Datagram      = (*Transport)(nil)
	_ transport.Stream        = (*Transport)(nil)
	_ transport.StatsReporter = (*Transport)(nil)
)

// delivery is a message on its way to a transport.
type delivery struct {
	due   time.Time
	seq   uint64
	msg   transport.Message
	timer *time.Timer
}

func (d *delivery) before(o *delivery) bool {
	if !d.due.Equal(o.due) {
		return d.due.Before(o.due)
	}
	return d.seq < o.seq
}

// deliveries is a min-heap of deliveries by (due, seq).
type deliveries []*delivery

func (h deliveries) Len() int           { return len(h) }
func (h deliveries) Less(i, j int) bool { return h[i].before(h[j]) }
func (h deliveries) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *deliveries) Push(x any)        { *h = append(*h, x.(*delivery)) }
func (h *deliveries) Pop() any {
	old := *h
	d := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return d
}

// LocalAddr returns the address the transport listens on.
func (t *Transport) LocalAddr() string { return t.addr }

// MaxDatagramSize returns the largest datagram SendDatagram accepts.
func (t *Transport) MaxDatagramSize() int { return t.net.cfg.MaxDatagramSize }

// MaxFrameSize returns the largest frame SendFrame accepts.
func (t *Transport) MaxFrameSize() int { return t.net.cfg.MaxFrameSize }

// Datagrams delivers received datagrams. It is closed by Close; datagrams
// already buffered can still be read after that.
func (t *Transport) Datagrams() <-chan transport.Message { return t.dgrams }

// Frames delivers received stream frames. It is closed by Close; frames not
// yet read then are lost (they still count as received).
func (t *Transport) Frames() <-chan transport.Message { return t.frames }

// Stats returns this transport's counters.
//
// A message is received when it arrives at this transport (its receive
// queue), whether or not the reader takes it before Close; dropped means it
// never arrived. Drops decided when sending (no listener, partition, random
// drop) count on the sender; drops at the receiver (full datagram queue,
// deliveries still in flight when it closes) count on the receiver.
// Connections is the number of open transports this one has exchanged stream
// frames with.
func (t *Transport) Stats() transport.Stats {
	s := t.c.stats()
	s.Connections = t.connections()
	return s
}

func (t *Transport) connections() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return 0
	}
	for p := range t.peers {
		if p.isClosed.Load() {
			delete(t.peers, p)
		}
	}
	return len(t.peers)
}

func (t *Transport) closedErr(op, addr string) error {
	return fmt.Errorf("mem: %s %s→%s: %w", op, t.addr, addr, transport.ErrClosed)
}

// SendDatagram sends a copy of b to addr, best effort. It never blocks: a
// datagram that is dropped for any reason (no listener, partition, random
// drop, full receive queue) is counted and SendDatagram returns nil.
func (t *Transport) SendDatagram(_ context.Context, addr string, b []byte) error {
	if t.isClosed.Load() {
		return t.closedErr("send datagram", addr)
	}
	if len(b) > t.net.cfg.MaxDatagramSize {
		return &transport.TooLargeError{Path: transport.PathDatagram, Size: len(b), Limit: t.net.cfg.MaxDatagramSize}
	}
	t.c.datagramsSent.Add(1)
	t.net.c.datagramsSent.Add(1)
	t.c.bytesSent.Add(uint64(len(b)))
	t.net.c.bytesSent.Add(uint64(len(b)))

	p := t.net.planDatagram(t.addr, addr)
	if p.dst == nil {
		t.dropDatagram()
		return nil
	}
	p.dst.deliverDatagram(transport.Message{From: t.addr, Data: clone(b), Path: transport.PathDatagram}, p.delay)
	if p.duplicate {
		p.dst.deliverDatagram(transport.Message{From: t.addr, Data: clone(b), Path: transport.PathDatagram}, p.dupDelay)
	}
	return nil
}

func clone(b []byte) []byte {
	c := make([]byte, len(b))
	copy(c, b)
	return c
}

func (t *Transport) dropDatagram() {
	t.c.datagramsDropped.Add(1)
	t.net.c.datagramsDropped.Add(1)
}

func (t *Transport) dropFrames(k int) {
	t.c.framesDropped.Add(uint64(k))
	t.net.c.framesDropped.Add(uint64(k))
}

// deliverDatagram queues m now or after delay.
func (t *Transport) deliverDatagram(m transport.Message, delay time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		t.dropDatagram()
		return
	}
	if delay <= 0 {
		t.pushDatagramLocked(m)
		return
	}
	t.scheduleLocked(time.Now().Add(delay), m)
}

func (t *Transport) pushDatagramLocked(m transport.Message) {
	// Only pushes change the channel's length, and they hold mu: the
	// datagram fits exactly when there is room now. It is counted before it
	// is pushed, so a reader that has it also sees it in Stats.
	if len(t.dgrams) == cap(t.dgrams) {
		t.dropDatagram()
		return
	}
	t.c.datagramsReceived.Add(1)
	t.net.c.datagramsReceived.Add(1)
	t.c.bytesReceived.Add(uint64(len(m.Data)))
	t.net.c.bytesReceived.Add(uint64(len(m.Data)))
	t.dgrams <- m
}

// scheduleLocked arranges for m to arrive at due. t.mu must be held and t
// must be open.
//
// Every delivery has its own timer, but timers due at the same instant fire
// in no particular order, so a firing timer delivers every delivery up to
// and including its own in (due, seq) order. That makes the order of arrival
// depend only on the order of the calls, never on the scheduler, and keeps
// the frames of one sender in order.
func (t *Transport) scheduleLocked(due time.Time, m transport.Message) {
	d := &delivery{due: due, seq: t.nextSeq, msg: m}
	t.nextSeq++
	heap.Push(&t.inflight, d)
	t.wg.Add(1)
	d.timer = time.AfterFunc(time.Until(due), func() {
		defer t.wg.Done()
		t.mu.Lock()
		defer t.mu.Unlock()
		t.releaseLocked(d)
	})
}

// releaseLocked delivers the deliveries in flight up to and including last.
func (t *Transport) releaseLocked(last *delivery) {
	for len(t.inflight) > 0 && !last.before(t.inflight[0]) {
		d := heap.Pop(&t.inflight).(*delivery)
		if d != last && d.timer.Stop() {
			t.wg.Done() // its callback will never run
		}
		if d.msg.Path == transport.PathDatagram {
			t.pushDatagramLocked(d.msg)
		} else {
			t.pushFrameLocked(d.msg)
		}
	}
}

// SendFrame sends a copy of b to addr, whole and in order with the other
// frames from t to addr. It blocks while addr's frame queue is full, until
// there is room, ctx is done, or either transport closes. A frame towards an
// address cut off by a partition is lost and counted, and SendFrame returns
// nil, like a write to a connection whose peer has vanished.
func (t *Transport) SendFrame(ctx context.Context, addr string, b []byte) error {
	if t.isClosed.Load() {
		return t.closedErr("send frame", addr)
	}
	if len(b) > t.net.cfg.MaxFrameSize {
		return &transport.TooLargeError{Path: transport.PathStream, Size: len(b), Limit: t.net.cfg.MaxFrameSize}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mem: send frame %s→%s: %w", t.addr, addr, err)
	}
	if bw := t.net.cfg.StreamBandwidth; bw > 0 {
		l := t.link(addr)
		select {
		case l.turn <- struct{}{}:
		case <-ctx.Done():
			return fmt.Errorf("mem: send frame %s→%s: %w", t.addr, addr, ctx.Err())
		case <-t.done:
			return t.closedErr("send frame", addr)
		}
		defer func() { <-l.turn }()
		if err := l.serialize(ctx, t.done, len(b), bw); err != nil {
			if errors.Is(err, transport.ErrClosed) {
				return t.closedErr("send frame", addr)
			}
			return fmt.Errorf("mem: send frame %s→%s: %w", t.addr, addr, err)
		}
	}
	var data []byte // copied once, outside any lock
	for {
		dst, reachable := t.net.lookupStream(t.addr, addr)
		if dst == nil {
			return fmt.Errorf("mem: send frame %s→%s: %w", t.addr, addr, transport.ErrUnreachable)
		}
		if !reachable {
			t.countFrameSent(len(b))
			t.dropFrames(1)
			return nil
		}
		if data == nil {
			data = clone(b)
		}
		wait, err := dst.offerFrame(t, transport.Message{From: t.addr, Data: data, Path: transport.PathStream})
		if err != nil {
			return fmt.Errorf("mem: send frame %s→%s: %w", t.addr, addr, err)
		}
		if wait == nil {
			t.countFrameSent(len(b))
			if dst != t {
				t.mu.Lock()
				if !t.closed {
					t.peers[dst] = struct{}{}
				}
				t.mu.Unlock()
			}
			return nil
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return fmt.Errorf("mem: send frame %s→%s: %w", t.addr, addr, ctx.Err())
		case <-t.done:
			return t.closedErr("send frame", addr)
		case <-dst.done:
			return fmt.Errorf("mem: send frame %s→%s: peer closed: %w", t.addr, addr, transport.ErrUnreachable)
		}
	}
}

// link returns the outgoing stream link to addr.
func (t *Transport) link(addr string) *link {
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.links[addr]
	if l == nil {
		l = &link{turn: make(chan struct{}, 1)}
		if t.links != nil { // nil once closed: the caller fails on its next check
			t.links[addr] = l
		}
	}
	return l
}

// serialize waits until a frame of n bytes has left the link at bw bytes per
// second, after the frames before it. The caller holds the link's turn.
func (l *link) serialize(ctx context.Context, closed <-chan struct{}, n, bw int) error {
	now := time.Now()
	start := l.lastEnd
	if start.Before(now) {
		start = now
	}
	end := start.Add(time.Duration(float64(n) / float64(bw) * float64(time.Second)))
	if wait := end.Sub(now); wait > 0 {
		tm := time.NewTimer(wait)
		defer tm.Stop()
		select {
		case <-tm.C:
		case <-ctx.Done():
			return ctx.Err()
		case <-closed:
			return transport.ErrClosed
		}
	}
	l.lastEnd = end
	return nil
}

func (t *Transport) countFrameSent(n int) {
	t.c.framesSent.Add(1)
	t.net.c.framesSent.Add(1)
	t.c.bytesSent.Add(uint64(n))
	t.net.c.bytesSent.Add(uint64(n))
}

// offerFrame tries to take m from sender into t's frame queue. If the queue
// is full it returns a channel that is closed when room may have appeared;
// if m was taken it returns nil, nil.
func (t *Transport) offerFrame(sender *Transport, m transport.Message) (wait <-chan struct{}, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, fmt.Errorf("peer closed: %w", transport.ErrUnreachable)
	}
	if sender.isClosed.Load() {
		return nil, transport.ErrClosed
	}
	if t.reserved >= t.net.cfg.QueueSize {
		return t.space, nil
	}
	t.reserved++
	if sender != t {
		t.peers[sender] = struct{}{}
	}
	if t.net.cfg.Latency <= 0 {
		t.pushFrameLocked(m)
	} else {
		// Latency is the same for every frame and time only moves forward,
		// so (due, seq) order keeps each sender's frames in sending order.
		t.scheduleLocked(time.Now().Add(t.net.cfg.Latency), m)
	}
	return nil, nil
}

func (t *Transport) pushFrameLocked(m transport.Message) {
	t.fq = append(t.fq, m)
	t.c.framesReceived.Add(1)
	t.net.c.framesReceived.Add(1)
	t.c.bytesReceived.Add(uint64(len(m.Data)))
	t.net.c.bytesReceived.Add(uint64(len(m.Data)))
	select {
	case t.fqReady <- struct{}{}:
	default:
	}
}

// pump hands queued frames to the reader of Frames, one at a time. A frame
// keeps its place in the queue (and its slot in reserved) until the reader
// has taken it.
func (t *Transport) pump() {
	defer t.wg.Done()
	for {
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			return
		}
		if len(t.fq) == 0 {
			t.mu.Unlock()
			select {
			case <-t.fqReady:
				continue
			case <-t.done:
				return
			}
		}
		m := t.fq[0]
		t.mu.Unlock()

		select {
		case t.frames <- m:
		case <-t.done:
			return
		}

		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			return
		}
		t.fq[0] = transport.Message{}
		t.fq = t.fq[1:]
		t.reserved--
		close(t.space)
		t.space = make(chan struct{})
		t.mu.Unlock()
	}
}

// Close stops the transport: it frees the address, drops deliveries still in
// flight towards it, stops its timers and goroutine, unblocks SendFrame calls
// from it and towards it, and closes Datagrams and Frames. It is idempotent
// and always returns nil.
func (t *Transport) Close() error {
	t.closeOnce.Do(func() {
		t.mu.Lock()
		t.closed = true
		t.isClosed.Store(true)
		close(t.done)
		close(t.dgrams) // every send to dgrams holds mu and checks closed
		inflight := t.inflight
		t.inflight, t.fq, t.peers, t.links = nil, nil, nil, nil
		t.mu.Unlock()

		for _, d := range inflight {
			if d.timer.Stop() {
				t.wg.Done() // its callback will never run
			}
			if d.msg.Path == transport.PathDatagram {
				t.dropDatagram()
			} else {
				t.dropFrames(1)
			}
		}
		t.net.remove(t)
		t.wg.Wait() // pump and timer callbacks already running
		close(t.frames)
	})
	return nil
}
