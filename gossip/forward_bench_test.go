package gossip

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plumtree-go/plumtree/codec"
	"github.com/plumtree-go/plumtree/gossip/internal/wire"
	"github.com/plumtree-go/plumtree/membership"
	"github.com/plumtree-go/plumtree/membership/static"
	"github.com/plumtree-go/plumtree/transport"
	"github.com/plumtree-go/plumtree/transport/mem"
	"github.com/plumtree-go/plumtree/transport/tcp"
	"github.com/plumtree-go/plumtree/transport/udp"
	"github.com/plumtree-go/plumtree/transport/udptcp"
)

// Benchmarks of the runner's hot path, frame in to frame out, through a real
// node (New) on a real transport:
//
//	go test -run '^$' -bench 'Forward|Duplicate' -benchmem ./gossip/
//
// One node under test has fake neighbours: plain transports that count what
// they receive and never answer. A driver sends the node Gossip frames as if
// from one of its eager neighbours (the parent); each op is one frame the node
// reads, decodes, deduplicates, delivers (to the Deliveries channel, which
// the benchmark reads), caches, encodes and sends to its other eager
// neighbours (eager=3 of them) and announces to its lazy ones (lazy=0 or 6,
// in IHave batches of the LAN preset). At most window frames are in flight, so
// ns/op is throughput on this machine, not latency. The allocations are the
// whole process's: the fake neighbours' reads and the driver's sends are in
// them (see allocsBaseline in the report for their share).
//
// Reported metrics: cpu-ns/op is the CPU time of the whole process (every
// goroutine, the fake neighbours' included, and the kernel's work for its
// system calls) per op, steadier than ns/op on a busy machine; fwd/op is the Gossip frames the eager neighbours got per
// op (eager=3 expects 3); ihave/op the IHave frames the lazy ones got;
// wireB/op the bytes the node's transport sent (frames, without UDP, TCP or
// length headers) and wire/ideal that divided by payload × eager: the
// node's own wire amplification (frame headers and announcements).

const benchWindow = 64

// fakePeer is a neighbour that counts what it gets.
type fakePeer struct {
	tr                 transport.Transport
	gossip, ihave      atomic.Int64
	prune, other       atomic.Int64
	gossipB, controlsB atomic.Int64
	done               chan struct{}
	got                chan struct{} // shared by a bench's fakes: something arrived
}

func (f *fakePeer) count(m transport.Message) {
	defer func() {
		select {
		case f.got <- struct{}{}:
		default:
		}
	}()
	if len(m.Data) < 2 {
		f.other.Add(1)
		return
	}
	switch wire.Type(m.Data[1]) {
	case wire.TypeGossip:
		f.gossip.Add(1)
		f.gossipB.Add(int64(len(m.Data)))
		return
	case wire.TypeIHave:
		f.ihave.Add(1)
	case wire.TypePrune:
		f.prune.Add(1)
	default:
		f.other.Add(1)
	}
	f.controlsB.Add(int64(len(m.Data)))
}

func (f *fakePeer) run() {
	defer close(f.done)
	var dg, st <-chan transport.Message
	if d, ok := f.tr.(transport.Datagram); ok {
		dg = d.Datagrams()
	}
	if s, ok := f.tr.(transport.Stream); ok {
		st = s.Frames()
	}
	for dg != nil || st != nil {
		select {
		case m, ok := <-dg:
			if !ok {
				dg = nil
				continue
			}
			f.count(m)
		case m, ok := <-st:
			if !ok {
				st = nil
				continue
			}
			f.count(m)
		}
	}
}

// fwdBench is a node under test and its neighbours.
type fwdBench struct {
	node   *Plumtree[string, []byte]
	tr     transport.Transport
	mem    *static.Static[string]
	fakes  map[string]*fakePeer
	eager  []*fakePeer // the node's eager neighbours but the parent
	lazy   []*fakePeer
	parent string
	cfg    Config
	sem    chan struct{}
	got    chan struct{}
	dlv    atomic.Int64
	dups   atomic.Int64 // duplicates the node saw
	rdDone chan struct{}
}

// benchTransport makes, for one benchmark, a function that opens
// transports that reach each other.
type benchTransport struct {
	name    string
	network func() func() (transport.Transport, error)
}

var benchTransports = []benchTransport{
	{"mem", func() func() (transport.Transport, error) {
		// A perfect network, datagrams up to the UDP default.
		n := mem.NewNetwork(mem.Config{MaxDatagramSize: udp.DefaultMaxDatagramSize, QueueSize: 4096})
		return func() (transport.Transport, error) { return n.Listen("") }
	}},
	{"udp+tcp", func() func() (transport.Transport, error) {
		return func() (transport.Transport, error) {
			return udptcp.Listen("127.0.0.1:0", udp.Config{ReadBufferSize: 4 << 20, WriteBufferSize: 4 << 20}, tcp.Config{})
		}
	}},
}

// newFwdBench starts a node with eager+1 eager neighbours (one is the
// parent the driver speaks for) and lazy lazy ones.
func newFwdBench(b *testing.B, bt benchTransport, cfg Config, eager, lazy int) *fwdBench {
	b.Helper()
	f := &fwdBench{fakes: map[string]*fakePeer{}, sem: make(chan struct{}, benchWindow),
		got: make(chan struct{}, 1), rdDone: make(chan struct{})}
	listen := bt.network()
	var err error
	if f.tr, err = listen(); err != nil {
		b.Fatal(err)
	}
	members := []membership.Member[string]{{ID: f.tr.LocalAddr(), Addr: f.tr.LocalAddr()}}
	for range eager + 1 + lazy {
		tr, err := listen()
		if err != nil {
			b.Fatal(err)
		}
		fp := &fakePeer{tr: tr, done: make(chan struct{}), got: f.got}
		go fp.run()
		f.fakes[tr.LocalAddr()] = fp
		members = append(members, membership.Member[string]{ID: tr.LocalAddr(), Addr: tr.LocalAddr()})
	}
	cfg.EagerFanout, cfg.MaxEagerPeers = eager+1, eager+1
	cfg.LazyFanout, cfg.MaxLazyPeers = lazy, max(lazy, 1)
	cfg.MaxPeers = eager + 1 + lazy
	cfg.DeliveryBuffer = 2 * benchWindow
	f.cfg = cfg
	f.mem = static.New(members...)
	f.node, err = New(cfg, Options[string, []byte]{ID: f.tr.LocalAddr(), Transport: f.tr, Membership: f.mem, Codec: codec.Bytes(), Seed: 1,
		Observer: ObserverFunc(func(e Event) {
			if e.Kind == EventDuplicate {
				f.dups.Add(1)
				select {
				case f.got <- struct{}{}:
				default:
				}
			}
		})})
	if err != nil {
		b.Fatal(err)
	}
	eagerIDs, lazyIDs, err := f.node.Peers()
	if err != nil {
		b.Fatal(err)
	}
	if len(eagerIDs) != eager+1 || len(lazyIDs) != lazy {
		b.Fatalf("node has %d eager and %d lazy neighbours, want %d and %d", len(eagerIDs), len(lazyIDs), eager+1, lazy)
	}
	f.parent = eagerIDs[0]
	for _, id := range eagerIDs[1:] {
		f.eager = append(f.eager, f.fakes[id])
	}
	for _, id := range lazyIDs {
		f.lazy = append(f.lazy, f.fakes[id])
	}
	go func() {
		defer close(f.rdDone)
		for range f.node.Deliveries() {
			f.dlv.Add(1)
			<-f.sem
		}
	}()
	b.Cleanup(f.close)
	return f
}

func (f *fwdBench) close() {
	f.node.Close()
	<-f.rdDone
	f.mem.Close()
	f.tr.Close()
	for _, fp := range f.fakes {
		fp.tr.Close()
		<-fp.done
	}
}

// gossipFrame is a Gossip frame from sender (origin sender, round 1) with a
// payload of size bytes, and the offset of its message ID, which the
// driver rewrites for each op.
func gossipFrame(sender string, size int) (frame []byte, idAt int) {
	fr := wire.Frame{Type: wire.TypeGossip, Sender: []byte(sender), Round: 1, Origin: []byte(sender),
		Timestamp: time.Now().UnixNano(), Payload: make([]byte, size)}
	frame, err := wire.Append(nil, &fr)
	if err != nil {
		panic(err)
	}
	return frame, 2 + 1 + len(sender) // version, type, sender length (< 128), sender
}

func setID(frame []byte, at int, i int, tag byte) {
	// On the wire: the 8-byte prefix, then the sequence number as a
	// uvarint, one byte here (the frame was encoded with sequence 0).
	id := frame[at : at+wire.PrefixSize+1]
	clear(id)
	for j := range 8 {
		id[j] = byte(i >> (8 * j))
	}
	id[wire.PrefixSize] = tag & 0x7f
}

// send sends frame from the fake neighbour addr to the node, on the path the
// node itself would pick for it.
func (f *fwdBench) send(b *testing.B, from string, frame []byte) {
	ctx := context.Background()
	tr := f.fakes[from].tr
	if dg, ok := tr.(transport.Datagram); ok && len(frame) <= min(f.cfg.GossipDatagramMaxSize, dg.MaxDatagramSize()) {
		if err := dg.SendDatagram(ctx, f.tr.LocalAddr(), frame); err != nil {
			b.Fatal(err)
		}
		return
	}
	if err := tr.(transport.Stream).SendFrame(ctx, f.tr.LocalAddr(), frame); err != nil {
		b.Fatal(err)
	}
}

// acquire takes a window slot, failing the benchmark if none frees up for
// a minute: a frame was lost (UDP may drop on loopback) or the node hangs.
func (f *fwdBench) acquire(b *testing.B) {
	select {
	case f.sem <- struct{}{}:
		return
	default:
	}
	t := time.NewTimer(time.Minute)
	defer t.Stop()
	select {
	case f.sem <- struct{}{}:
	case <-t.C:
		b.Fatalf("no delivery for a minute (%d delivered): a frame was lost or the node hangs", f.dlv.Load())
	}
}

// drain waits for every frame in flight to be delivered.
func (f *fwdBench) drain(b *testing.B) {
	for range benchWindow {
		f.acquire(b)
	}
	for range benchWindow {
		<-f.sem
	}
}

// waitFor waits until cond holds, checking each time a fake neighbour gets
// a frame: the frames the node sent may still be travelling. It gives up
// after a few seconds of silence (a datagram lost on loopback), and the
// metrics then show the shortfall.
func (f *fwdBench) waitFor(cond func() bool) bool {
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	for !cond() {
		select {
		case <-f.got:
		case <-t.C:
			return false
		}
	}
	return true
}

func sentBytes(tr transport.Transport) int64 {
	if sr, ok := tr.(transport.StatsReporter); ok {
		return int64(sr.Stats().BytesSent)
	}
	return 0
}

func BenchmarkForward(b *testing.B) {
	// dgram raises GossipDatagramMaxSize to the datagram limit, so that a
	// 1 KiB payload's frame (about 1,090 bytes) goes by datagram: with the
	// preset's 1024 it goes by stream.
	type shape struct {
		eager, lazy, size int
		dgram             bool
	}
	shapes := []shape{{3, 0, 64, false}, {3, 0, 1024, false}, {3, 0, 16 << 10, false}, {3, 6, 1024, false}, {3, 0, 1024, true}}
	for _, bt := range benchTransports {
		for _, s := range shapes {
			name := fmt.Sprintf("%s/eager=%d/lazy=%d/payload=%d", bt.name, s.eager, s.lazy, s.size)
			cfg := LANConfig()
			if s.dgram {
				name += "/dgram"
				cfg.GossipDatagramMaxSize = udp.DefaultMaxDatagramSize
			}
			b.Run(name, func(b *testing.B) {
				f := newFwdBench(b, bt, cfg, s.eager, s.lazy)
				frame, idAt := gossipFrame(f.parent, s.size)
				// Warm up: connections dialed, buffers grown, tree settled.
				for i := range 256 {
					f.acquire(b)
					setID(frame, idAt, i, 0xff)
					f.send(b, f.parent, frame)
				}
				f.drain(b)
				want := int64(256 * s.eager)
				f.waitFor(func() bool { return f.eagerGot() >= want })
				g0, ih0, ihB0, wire0 := f.eagerGot(), f.ihaves(), f.ihaveBytes(), sentBytes(f.tr)
				b.ReportAllocs()
				b.SetBytes(int64(s.size))
				b.ResetTimer()
				cpu0 := processCPU()
				for i := range b.N {
					f.acquire(b)
					setID(frame, idAt, i, 1)
					f.send(b, f.parent, frame)
				}
				f.drain(b)
				cpu := processCPU() - cpu0
				b.StopTimer()
				want = g0 + int64(b.N*s.eager)
				f.waitFor(func() bool { return f.eagerGot() >= want })
				n := float64(b.N)
				wireB := float64(sentBytes(f.tr) - wire0)
				b.ReportMetric(float64(cpu.Nanoseconds())/n, "cpu-ns/op")
				b.ReportMetric(float64(f.eagerGot()-g0)/n, "fwd/op")
				b.ReportMetric(float64(f.ihaves()-ih0)/n, "ihave/op")
				b.ReportMetric(float64(f.ihaveBytes()-ihB0)/n, "ihaveB/op")
				b.ReportMetric(wireB/n, "wireB/op")
				b.ReportMetric(wireB/n/float64(s.size*s.eager), "wire/ideal")
			})
		}
	}
}

func (f *fwdBench) eagerGot() (n int64) {
	for _, fp := range f.eager {
		n += fp.gossip.Load()
	}
	return n
}

func (f *fwdBench) ihaves() (n int64) {
	for _, fp := range f.lazy {
		n += fp.ihave.Load()
	}
	return n
}

func (f *fwdBench) ihaveBytes() (n int64) {
	for _, fp := range f.lazy {
		n += fp.controlsB.Load()
	}
	return n
}

// BenchmarkDuplicate measures a payload arriving a second time, from a
// neighbour other than the parent: the node drops it and prunes that link (a
// Prune frame, at most one per GraftTimeout and peer). The first copies are
// sent, untimed, in chunks; each op is one duplicate, ending when the node
// has seen it. prune/op counts the Prune frames the neighbour got.
func BenchmarkDuplicate(b *testing.B) {
	const chunk = 64
	for _, bt := range benchTransports {
		b.Run(bt.name+"/payload=1024", func(b *testing.B) {
			cfg := LANConfig()
			// Only a duplicate within GraftTimeout of the first copy prunes:
			// a long one, so that a slow moment of the machine does not
			// turn the duplicates into old news.
			cfg.GraftTimeout, cfg.GraftMaxBackoff = time.Minute, time.Minute
			f := newFwdBench(b, bt, cfg, 1, 0)
			dupFrom := f.eager[0].tr.LocalAddr()
			first, idAt := gossipFrame(f.parent, 1024)
			dup, dupAt := gossipFrame(dupFrom, 1024)
			prunes := &f.eager[0].prune
			pr0 := prunes.Load()
			b.ReportAllocs()
			b.ResetTimer()
			for done := 0; done < b.N; done += chunk {
				n := min(chunk, b.N-done)
				b.StopTimer()
				for i := range n {
					f.acquire(b)
					setID(first, idAt, done+i, 2)
					f.send(b, f.parent, first)
				}
				f.drain(b)
				d0 := f.dups.Load()
				b.StartTimer()
				for i := range n {
					setID(dup, dupAt, done+i, 2)
					f.send(b, dupFrom, dup)
				}
				want := d0 + int64(n)
				if !f.waitFor(func() bool { return f.dups.Load() >= want }) {
					b.Fatalf("the node saw %d of %d duplicates", f.dups.Load()-d0, n)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(prunes.Load()-pr0)/float64(b.N), "prune/op")
		})
	}
}
