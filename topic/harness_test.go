package topic

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/plumtree-go/plumtree/codec"
	"github.com/plumtree-go/plumtree/gossip"
	"github.com/plumtree-go/plumtree/membership"
	"github.com/plumtree-go/plumtree/membership/static"
	"github.com/plumtree-go/plumtree/transport/mem"
)

// wireCount counts, at the transport, the bytes of topic frames sent to
// each address, by the tag in the host prefix (control frames apart).
type wireCount struct {
	mu    sync.Mutex
	bytes map[string]map[uint64]uint64 // to → tag → bytes
	ctl   uint64                       // control frame bytes
	last  map[string]map[uint64]time.Time
}

func (w *wireCount) add(to string, b []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(b) < PrefixLen {
		return
	}
	tag := binary.BigEndian.Uint64(b[1:9])
	if tag == controlTag {
		w.ctl += uint64(len(b))
		return
	}
	m := w.bytes[to]
	if m == nil {
		m = map[uint64]uint64{}
		w.bytes[to] = m
	}
	m[tag] += uint64(len(b))
	if w.last[to] == nil {
		w.last[to] = map[uint64]time.Time{}
	}
	w.last[to][tag] = time.Now()
}

// lastAt is when the last topic frame with tag was sent to to.
func (w *wireCount) lastAt(to string, tag uint64) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last[to][tag]
}

func (w *wireCount) get(to string, tag uint64) uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.bytes[to][tag]
}

// countingTransport is a mem transport whose sends are counted by tag.
type countingTransport struct {
	*mem.Transport
	w *wireCount
}

func (c countingTransport) SendDatagram(ctx context.Context, addr string, b []byte) error {
	err := c.Transport.SendDatagram(ctx, addr, b)
	if err == nil {
		c.w.add(addr, b)
	}
	return err
}

func (c countingTransport) SendFrame(ctx context.Context, addr string, b []byte) error {
	err := c.Transport.SendFrame(ctx, addr, b)
	if err == nil {
		c.w.add(addr, b)
	}
	return err
}

// tally counts, per topic and message, what the topic's nodes did.
type tally struct {
	mu        sync.Mutex
	delivered map[gossip.MessageID]int // deliveries (first copies)
	dups      map[gossip.MessageID]int // payloads received again
	events    map[gossip.EventKind]int
}

func newTally() *tally {
	return &tally{delivered: map[gossip.MessageID]int{}, dups: map[gossip.MessageID]int{}, events: map[gossip.EventKind]int{}}
}

func (t *tally) Observe(e gossip.Event) {
	t.mu.Lock()
	t.events[e.Kind]++
	t.mu.Unlock()
	switch e.Kind {
	case gossip.EventDelivered:
		t.mu.Lock()
		t.delivered[e.Message]++
		t.mu.Unlock()
	case gossip.EventDuplicate:
		t.mu.Lock()
		t.dups[e.Message]++
		t.mu.Unlock()
	}
}

// rmr is the relative message redundancy over ids: payloads received /
// deliveries - 1 (each delivery but the origin's counts as one needed
// payload).
func (t *tally) rmr(ids []gossip.MessageID) (rmr float64, delivered int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var d, dup int
	for _, id := range ids {
		d += t.delivered[id]
		dup += t.dups[id]
	}
	if d == 0 {
		return 0, 0
	}
	return float64(dup) / float64(d), d
}

type node struct {
	id   string
	tr   *mem.Transport
	mem  *static.Static[string]
	host *Host[string]

	mu     sync.Mutex
	topics map[int]*Topic[string, []byte]
	got    map[gossip.MessageID]int       // deliveries
	at     map[gossip.MessageID]time.Time // when delivered
}

type cluster struct {
	t       *testing.T
	net     *mem.Network
	w       *wireCount
	nodes   []*node
	names   []string
	tallies []*tally
	cfg     gossip.Config
	rng     *rand.Rand
	seed    uint64

	sentMu sync.Mutex
	sent   []sentMsg
}

type sentMsg struct {
	id     gossip.MessageID
	topic  int
	origin int
	at     time.Time
}

// newCluster starts n hosts on one in-memory network, each with a static
// membership of all. Call it inside a synctest bubble.
func newCluster(t *testing.T, n, topics int, cfg gossip.Config, netCfg mem.Config, seed uint64) *cluster {
	t.Helper()
	t.Logf("seed %d", seed)
	netCfg.Seed = seed
	c := &cluster{t: t, net: mem.NewNetwork(netCfg), w: &wireCount{bytes: map[string]map[uint64]uint64{}, last: map[string]map[uint64]time.Time{}},
		cfg: cfg, rng: rand.New(rand.NewPCG(seed, 7)), seed: seed}
	for i := range topics {
		c.names = append(c.names, fmt.Sprintf("topic-%03d", i))
		c.tallies = append(c.tallies, newTally())
	}
	var members []membership.Member[string]
	for i := range n {
		id := fmt.Sprintf("n%03d", i)
		members = append(members, membership.Member[string]{ID: id, Addr: id})
	}
	for i := range n {
		nd := &node{id: members[i].ID, topics: map[int]*Topic[string, []byte]{},
			got: map[gossip.MessageID]int{}, at: map[gossip.MessageID]time.Time{}}
		tr, err := c.net.Listen(nd.id)
		if err != nil {
			t.Fatal(err)
		}
		nd.tr = tr
		nd.mem = static.New(members...)
		nd.host, err = NewHost(HostOptions[string]{ID: nd.id, Transport: countingTransport{tr, c.w},
			Membership: nd.mem, Seed: seed + uint64(i) + 1})
		if err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, nd)
	}
	t.Cleanup(c.close)
	return c
}

func (c *cluster) close() {
	for _, nd := range c.nodes {
		nd.host.Close()
		nd.tr.Close()
		nd.mem.Close()
	}
}

// subscribe subscribes node i to topic k.
func (c *cluster) subscribe(i, k int) *Topic[string, []byte] {
	c.t.Helper()
	return c.subscribeWith(i, k, false)
}

// subscribeWith subscribes node i to topic k, with Options.Backfill.
func (c *cluster) subscribeWith(i, k int, backfill bool) *Topic[string, []byte] {
	c.t.Helper()
	nd := c.nodes[i]
	tp, err := Subscribe(nd.host, c.names[k], c.cfg, Options[string, []byte]{
		Codec: codec.Bytes(), Observer: c.tallies[k], Backfill: backfill,
		OnDeliver: func(d gossip.Delivery[string, []byte]) {
			nd.mu.Lock()
			nd.got[d.ID]++
			nd.at[d.ID] = time.Now()
			nd.mu.Unlock()
		},
	})
	if err != nil {
		c.t.Fatalf("%s subscribe %s: %v", nd.id, c.names[k], err)
	}
	nd.mu.Lock()
	nd.topics[k] = tp
	nd.mu.Unlock()
	return tp
}

func (c *cluster) unsubscribe(i, k int) {
	nd := c.nodes[i]
	nd.mu.Lock()
	tp := nd.topics[k]
	delete(nd.topics, k)
	nd.mu.Unlock()
	tp.Close()
}

func (c *cluster) subscribed(i, k int) bool {
	nd := c.nodes[i]
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return nd.topics[k] != nil
}

// subscribers lists the nodes subscribed to topic k now.
func (c *cluster) subscribers(k int) []int {
	var out []int
	for i := range c.nodes {
		if c.subscribed(i, k) {
			out = append(out, i)
		}
	}
	return out
}

// broadcast sends one message on topic k from node i.
func (c *cluster) broadcast(i, k int, size int) gossip.MessageID {
	c.t.Helper()
	nd := c.nodes[i]
	nd.mu.Lock()
	tp := nd.topics[k]
	nd.mu.Unlock()
	c.sentMu.Lock()
	n := len(c.sent)
	c.sentMu.Unlock()
	payload := fmt.Appendf(nil, "message %d on %s from %s ", n, c.names[k], nd.id)
	for len(payload) < size {
		payload = append(payload, '.')
	}
	id, err := tp.Broadcast(context.Background(), payload)
	if err != nil {
		c.t.Fatalf("broadcast on %s from %s: %v", c.names[k], nd.id, err)
	}
	c.sentMu.Lock()
	c.sent = append(c.sent, sentMsg{id: id, topic: k, origin: i, at: time.Now()})
	c.sentMu.Unlock()
	return id
}

func (c *cluster) delivered(i int, id gossip.MessageID) int {
	nd := c.nodes[i]
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return nd.got[id]
}

func (c *cluster) deliveredAt(i int, id gossip.MessageID) (time.Time, bool) {
	nd := c.nodes[i]
	nd.mu.Lock()
	defer nd.mu.Unlock()
	at, ok := nd.at[id]
	return at, ok
}

// percentile is the p-th percentile (0..1) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(p*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}
