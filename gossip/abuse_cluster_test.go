package gossip

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/plumtree-go/plumtree/codec"
	"github.com/plumtree-go/plumtree/gossip/internal/wire"
	"github.com/plumtree-go/plumtree/internal/watchdog"
	"github.com/plumtree-go/plumtree/membership"
	"github.com/plumtree-go/plumtree/membership/static"
	"github.com/plumtree-go/plumtree/transport"
	"github.com/plumtree-go/plumtree/transport/mem"
)

// A hostile member floods one node of a running cluster with Graft and IHave
// frames (and Prunes and greetings) while the honest nodes broadcast. The
// victim acts on at most burst + rate×elapsed of the flooder's grafts and
// announcements, counts the rest, sends the flooder exactly the payloads it
// answered, and every honest broadcast reaches every honest node at the
// same virtual time and over the same number of hops as in a run without
// the flood.
//
// The honest nodes know only their neighbours in a fixed tree (floodTree),
// with the victim at its centre relaying for the others, and EagerFanout
// covers every neighbour: each message has one path to each node, so its
// hops and arrival time are set by the tree alone and a run is exactly
// reproducible. (With a full mesh, which of two copies arriving at the same
// virtual instant a node takes first depends on goroutine scheduling, and
// so does the tree: two runs without any flood differ.)

// arrival is when, and over how many hops, a node delivered a message.
type arrival struct {
	hops uint32
	at   time.Duration // since the cluster started
}

// flooder is the hostile member: it speaks the wire format directly.
type flooder struct {
	tr   *mem.Transport
	self []byte // its ID on the wire

	mu       sync.Mutex
	known    []MessageID        // IDs the victim pushed or announced to it
	knownSet map[MessageID]bool //
	grafted  map[MessageID]bool // IDs it has sent a WantPayload graft for
	pushes   int                // payloads the victim sent it before it asked
	replies  int                // payloads the victim sent it after it asked
	got      map[wire.Type]int  // every frame from the victim, by type

	wantGrafts   int // WantPayload grafts sent
	announced    int // IHave announcements sent
	first, last  time.Time
	decodeErrors int
}

func newFlooder(tr *mem.Transport, id string) *flooder {
	return &flooder{tr: tr, self: []byte(id), knownSet: map[MessageID]bool{}, grafted: map[MessageID]bool{}, got: map[wire.Type]int{}}
}

// read records what the victim sends, until the transport closes.
func (f *flooder) read(wg *sync.WaitGroup) {
	defer wg.Done()
	handle := func(m transport.Message) {
		var fr wire.Frame
		f.mu.Lock()
		defer f.mu.Unlock()
		if err := wire.Decode(m.Data, &fr, wire.DefaultLimits); err != nil {
			f.decodeErrors++
			return
		}
		f.got[fr.Type]++
		learn := func(id MessageID) {
			if !f.knownSet[id] {
				f.knownSet[id] = true
				f.known = append(f.known, id)
			}
		}
		switch fr.Type {
		case wire.TypeGossip:
			if f.grafted[fr.ID] {
				f.replies++
			} else {
				f.pushes++
			}
			learn(fr.ID)
		case wire.TypeIHave, wire.TypeExchange:
			for _, a := range fr.Announcements {
				learn(a.ID)
			}
		}
	}
	dg, st := f.tr.Datagrams(), f.tr.Frames()
	for dg != nil || st != nil {
		select {
		case m, ok := <-dg:
			if !ok {
				dg = nil
				continue
			}
			handle(m)
		case m, ok := <-st:
			if !ok {
				st = nil
				continue
			}
			handle(m)
		}
	}
}

func (f *flooder) send(t *testing.T, to string, fr *wire.Frame) {
	fr.Sender = f.self
	b, err := wire.Append(nil, fr)
	if err != nil {
		t.Error(err)
		return
	}
	if err := f.tr.SendFrame(context.Background(), to, b); err != nil {
		t.Error(err)
	}
}

// flood sends, every millisecond for rounds milliseconds: three WantPayload
// grafts for messages the victim has, three for made-up ones, a graft
// without payload, an IHave of 40 made-up IDs, an IHave of the known IDs,
// an empty IHave and a Prune.
func (f *flooder) flood(t *testing.T, to string, rounds int) {
	made := 0
	fresh := func() MessageID {
		made++
		return MessageID{0xba, 0xd0, byte(made >> 16), byte(made >> 8), byte(made)}
	}
	for r := range rounds {
		now := time.Now()
		f.mu.Lock()
		if r == 0 {
			f.first = now
		}
		f.last = now
		var graftIDs []MessageID
		for i := range 3 {
			if len(f.known) > 0 {
				graftIDs = append(graftIDs, f.known[(3*r+i)%len(f.known)])
			}
			graftIDs = append(graftIDs, fresh())
		}
		for _, id := range graftIDs {
			f.grafted[id] = true
		}
		f.wantGrafts += len(graftIDs)
		var knownAnns []Announcement
		for _, id := range f.known[max(0, len(f.known)-20):] {
			knownAnns = append(knownAnns, Announcement{ID: id, Round: 1})
		}
		f.mu.Unlock()
		for _, id := range graftIDs {
			f.send(t, to, &wire.Frame{Type: wire.TypeGraft, ID: id, Round: 1, WantPayload: true})
		}
		f.send(t, to, &wire.Frame{Type: wire.TypeGraft, ID: fresh()})
		anns := make([]Announcement, 40)
		for i := range anns {
			anns[i] = Announcement{ID: fresh(), Round: 1}
		}
		f.send(t, to, &wire.Frame{Type: wire.TypeIHave, Announcements: anns})
		f.send(t, to, &wire.Frame{Type: wire.TypeIHave, Announcements: knownAnns})
		f.send(t, to, &wire.Frame{Type: wire.TypeIHave})
		f.send(t, to, &wire.Frame{Type: wire.TypePrune})
		f.mu.Lock()
		f.announced += len(anns) + len(knownAnns)
		f.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
}

// floodResult is what one run of the cluster measured.
type floodResult struct {
	arrivals map[string]map[MessageID]arrival // honest node -> message -> arrival
	victim   map[EventKind]int                // events at the victim, by kind
	counts   map[EventKind]int                // the Count they carried
	f        *flooder
	sent     []MessageID
	bcastAt  map[MessageID]time.Duration // when each was broadcast
}

// floodTree is the honest nodes' topology: the victim, n000, in the middle.
var floodTree = [][2]int{{0, 1}, {0, 2}, {0, 3}, {1, 4}, {2, 5}, {3, 6}, {4, 7}}

// floodDist[i][j] is the hop count from node i to node j in floodTree.
var floodDist = func() [8][8]int {
	var d [8][8]int
	for i := range d {
		for j := range d[i] {
			if i != j {
				d[i][j] = 99
			}
		}
	}
	for _, e := range floodTree {
		d[e[0]][e[1]], d[e[1]][e[0]] = 1, 1
	}
	for k := range d {
		for i := range d {
			for j := range d {
				d[i][j] = min(d[i][j], d[i][k]+d[k][j])
			}
		}
	}
	return d
}()

// floodLatency is the one-way delay of every link.
const floodLatency = time.Millisecond

// floodClusterConfig is the default configuration with every neighbour of
// the tree eager (the victim has three honest neighbours and the flooder).
func floodClusterConfig() Config {
	cfg := DefaultConfig()
	cfg.EagerFanout = 4
	return cfg
}

// runFloodCluster runs eight honest nodes and a flooder that only the victim
// (n000) knows as a member; the honest nodes broadcast 40 messages, 50 ms
// apart. With flood, the flooder floods the victim meanwhile. Call it inside
// a synctest bubble.
func runFloodCluster(t *testing.T, flood bool) (res floodResult) {
	const honest, victim, evil = 8, "n000", "evil"
	cfg := floodClusterConfig()
	start := time.Now()
	net := mem.NewNetwork(mem.Config{Latency: floodLatency, Seed: 1})
	var members []membership.Member[string]
	for i := range honest {
		id := fmt.Sprintf("n%03d", i)
		members = append(members, membership.Member[string]{ID: id, Addr: id})
	}
	res = floodResult{arrivals: map[string]map[MessageID]arrival{}, victim: map[EventKind]int{}, counts: map[EventKind]int{},
		bcastAt: map[MessageID]time.Duration{}}
	var mu sync.Mutex
	var nodes []*Plumtree[string, []byte]
	for i := range honest {
		id := members[i].ID
		tr, err := net.Listen(id)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		view := []membership.Member[string]{members[i]}
		for _, e := range floodTree {
			if e[0] == i {
				view = append(view, members[e[1]])
			} else if e[1] == i {
				view = append(view, members[e[0]])
			}
		}
		var obs Observer
		if id == victim {
			view = append(view, membership.Member[string]{ID: evil, Addr: evil})
			obs = ObserverFunc(func(e Event) {
				mu.Lock()
				res.victim[e.Kind]++
				res.counts[e.Kind] += e.Count
				mu.Unlock()
			})
		}
		ms := static.New(view...)
		t.Cleanup(func() { ms.Close() })
		res.arrivals[id] = map[MessageID]arrival{}
		node, err := New(cfg, Options[string, []byte]{ID: id, Transport: tr, Membership: ms, Codec: codec.Bytes(),
			Seed: uint64(i) + 1, Observer: obs,
			OnDeliver: func(d Delivery[string, []byte]) {
				mu.Lock()
				defer mu.Unlock()
				if _, dup := res.arrivals[id][d.ID]; dup {
					t.Errorf("%s delivered %s twice", id, d.ID)
				}
				res.arrivals[id][d.ID] = arrival{hops: d.Hops, at: time.Since(start)}
			}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { node.Close() })
		nodes = append(nodes, node)
	}
	etr, err := net.Listen(evil)
	if err != nil {
		t.Fatal(err)
	}
	res.f = newFlooder(etr, evil)
	var wg sync.WaitGroup
	wg.Add(1)
	go res.f.read(&wg)
	t.Cleanup(func() { etr.Close(); wg.Wait() })

	time.Sleep(time.Second) // greetings settle
	if flood {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res.f.flood(t, victim, 2500)
		}()
	}
	for i := range 40 {
		id, err := nodes[i%honest].Broadcast(context.Background(), fmt.Appendf(nil, "honest %d", i))
		if err != nil {
			t.Fatal(err)
		}
		res.sent = append(res.sent, id)
		res.bcastAt[id] = time.Since(start)
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(graftHorizon(cfg) + 2*time.Second) // the flood's end and every retry
	synctest.Wait()
	mu.Lock()
	defer mu.Unlock()
	// Each message reaches each node over its one path in the tree, with
	// no delay but the links': hops = distance, time = distance×latency.
	for i, id := range res.sent {
		o := i % honest
		for j, m := range members {
			a, ok := res.arrivals[m.ID][id]
			switch {
			case j == o && ok:
				t.Errorf("flood %v: the origin %s delivered its own message %d", flood, m.ID, i)
			case j == o:
			case !ok:
				t.Errorf("flood %v: %s never delivered message %d", flood, m.ID, i)
			case int(a.hops) != floodDist[o][j] || a.at != res.bcastAt[id]+time.Duration(floodDist[o][j])*floodLatency:
				t.Errorf("flood %v: %s delivered message %d from %s after %d hops at %v, want %d hops at %v",
					flood, m.ID, i, members[o].ID, a.hops, a.at, floodDist[o][j], res.bcastAt[id]+time.Duration(floodDist[o][j])*floodLatency)
			}
		}
	}
	// Copy out what the callbacks may still touch after return.
	out := res
	out.arrivals = map[string]map[MessageID]arrival{}
	for k, v := range res.arrivals {
		out.arrivals[k] = map[MessageID]arrival{}
		for id, a := range v {
			out.arrivals[k][id] = a
		}
	}
	return out
}

func TestAbuseFloodClusterUnaffected(t *testing.T) {
	cfg := floodClusterConfig()
	var base, flooded floodResult
	watchdog.Test(t, func(t *testing.T) { base = runFloodCluster(t, false) })
	watchdog.Test(t, func(t *testing.T) { flooded = runFloodCluster(t, true) })
	f := flooded.f
	f.mu.Lock()
	defer f.mu.Unlock()
	elapsed := f.last.Sub(f.first)
	t.Logf("flood over %v: %d WantPayload grafts, %d announcements; victim sent back %v (%d pushes, %d graft replies)",
		elapsed, f.wantGrafts, f.announced, f.got, f.pushes, f.replies)
	t.Logf("victim events: answered %d, missed %d, rate limited %d, ihave dropped %d; baseline answered %d, missed %d, limited %d",
		flooded.victim[EventGraftAnswered], flooded.victim[EventGraftMiss], flooded.victim[EventGraftRateLimited],
		flooded.counts[EventIHaveDropped], base.victim[EventGraftAnswered], base.victim[EventGraftMiss], base.victim[EventGraftRateLimited])

	// Honest nodes graft nothing on a perfect network: every graft the
	// victim saw in the flooded run was the flooder's.
	if n := base.victim[EventGraftAnswered] + base.victim[EventGraftMiss] + base.victim[EventGraftRateLimited]; n != 0 {
		t.Fatalf("the baseline victim handled %d grafts; the accounting below assumes none", n)
	}
	answered, miss, limited := flooded.victim[EventGraftAnswered], flooded.victim[EventGraftMiss], flooded.victim[EventGraftRateLimited]
	if answered+miss+limited != f.wantGrafts {
		t.Errorf("answered %d + missed %d + rate limited %d != %d grafts sent", answered, miss, limited, f.wantGrafts)
	}
	allow := allowance(cfg.GraftRateLimitBurst, cfg.GraftRateLimitPerSecond, elapsed)
	if answered+miss > allow {
		t.Errorf("%d grafts looked up, allowance %d", answered+miss, allow)
	}
	if f.replies != answered {
		t.Errorf("the flooder got %d graft replies, the victim answered %d", f.replies, answered)
	}
	if f.pushes > len(flooded.sent) {
		t.Errorf("%d payloads pushed to the flooder for %d messages", f.pushes, len(flooded.sent))
	}
	// EventIHaveDropped also counts announcements past the peer's share of
	// MaxMissing, so this is a necessary condition here;
	// TestAbuseIHaveFloodRateLimited checks the rate limit's count exactly.
	ihaveAllow := allowance(cfg.IHaveRateLimitBurst, cfg.IHaveRateLimitPerSecond, elapsed)
	if dropped := flooded.counts[EventIHaveDropped]; f.announced-dropped > ihaveAllow {
		t.Errorf("%d of %d announcements processed, allowance %d", f.announced-dropped, f.announced, ihaveAllow)
	}
	if n := f.got[wire.TypePrune]; n > 1+int(elapsed/cfg.GraftTimeout) {
		t.Errorf("%d Prunes to the flooder over %v", n, elapsed)
	}
	processed := f.announced - flooded.counts[EventIHaveDropped]
	if n := f.got[wire.TypeGraft]; n > processed*(1+cfg.GraftMaxRetries) {
		t.Errorf("%d grafts to the flooder for %d announcements processed", n, processed)
	}
	if f.decodeErrors != 0 {
		t.Errorf("the victim sent %d unreadable frames", f.decodeErrors)
	}

	// The honest broadcasts: same hops, same virtual time, at every node.
	same := 0
	for node, arr := range base.arrivals {
		for i, id := range base.sent {
			b, ok1 := arr[id]
			fl, ok2 := flooded.arrivals[node][flooded.sent[i]]
			if ok1 != ok2 || b != fl {
				t.Errorf("%s, message %d: baseline %+v (%v), flooded %+v (%v)", node, i, b, ok1, fl, ok2)
				continue
			}
			if ok1 {
				same++
			}
		}
	}
	t.Logf("%d honest deliveries, each at the same time and hop count as without the flood", same)
}
