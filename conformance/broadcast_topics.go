package conformance

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/plumtree-go/plumtree/codec"
	"github.com/plumtree-go/plumtree/gossip"
	"github.com/plumtree-go/plumtree/membership"
	"github.com/plumtree-go/plumtree/topic"
	"github.com/plumtree-go/plumtree/transport"
)

// topicNode is one node of a topics cluster.
type topicNode struct {
	id    string
	tr    transport.Transport
	mem   BroadcastMembership
	host  *topic.Host[string]
	bytes *topic.Topic[string, []byte] // topic "bytes", nil if not subscribed
	strs  *topic.Topic[string, string] // topic "strings", nil if not subscribed
}

// topicCluster collects what its nodes deliver, per topic.
type topicCluster struct {
	c     *caseEnv
	nodes []*topicNode

	mu     sync.Mutex
	got    map[string]map[string]int // "topic/node" → payload → times delivered
	sent   map[string]string         // "topic/payload" → origin
	bad    []string
	change chan struct{}
}

// topicNodes is the size of the topic clusters; inBytes and inStrings say
// which nodes subscribe to which topic.
const topicNodes = 8

func inBytes(i int) bool   { return i <= 5 }
func inStrings(i int) bool { return i >= 3 }

// startTopics opens topicNodes transports and a topic host on each, subscribed to
// "bytes" (nodes 0-5) and "strings" (nodes 3-7).
func (b *benv) startTopics() *topicCluster {
	c, mk, newMembership := b.c, b.mk, b.newMembership
	c.t.Helper()
	listen := mk(c.t.std())
	if listen == nil {
		c.t.Fatalf("MakeNetwork returned a nil ListenFunc")
	}
	e := &tenv{caseEnv: c, listen: listen}
	tc := &topicCluster{c: c, got: map[string]map[string]int{}, sent: map[string]string{}, change: make(chan struct{})}
	var members []membership.Member[string]
	for i := range topicNodes {
		tr := e.open("")
		id := fmt.Sprintf("node-%d", i)
		tc.nodes = append(tc.nodes, &topicNode{id: id, tr: tr})
		members = append(members, membership.Member[string]{ID: id, Addr: tr.LocalAddr()})
	}
	seed := c.rng.Uint64()
	for i, tn := range tc.nodes {
		tn.mem = newMembership(members)
		c.defer_(tn.mem.Close)
		h, err := topic.NewHost(topic.HostOptions[string]{ID: tn.id, Transport: tn.tr, Membership: tn.mem, Seed: seed + uint64(i)})
		if err != nil {
			c.t.Fatalf("topic.NewHost over this transport: %v", err)
		}
		tn.host = h
		c.defer_(func() { h.Close() }) // after the transport's close is registered: runs first
		if inBytes(i) {
			tn.bytes, err = topic.Subscribe(h, "bytes", gossip.LANConfig(), topic.Options[string, []byte]{
				Codec: codec.Bytes(), OnDeliver: func(d gossip.Delivery[string, []byte]) { tc.deliver("bytes", tn.id, string(d.Value), d.Origin) }})
			if err != nil {
				c.t.Fatalf("topic.Subscribe over this transport: %v", err)
			}
		}
		if inStrings(i) {
			tn.strs, err = topic.Subscribe(h, "strings", gossip.LANConfig(), topic.Options[string, string]{
				Codec: codec.String(), OnDeliver: func(d gossip.Delivery[string, string]) { tc.deliver("strings", tn.id, d.Value, d.Origin) }})
			if err != nil {
				c.t.Fatalf("topic.Subscribe over this transport: %v", err)
			}
		}
	}
	tc.waitSubscribers("bytes", tc.subscribers(func(tn *topicNode) bool { return tn.bytes != nil }))
	tc.waitSubscribers("strings", tc.subscribers(func(tn *topicNode) bool { return tn.strs != nil }))
	return tc
}

func ruleTopicsSubscribersOnly(b *benv) {
	tc := b.startTopics()
	for round, size := range tc.sizes() {
		for _, tn := range tc.nodes {
			if tn.bytes != nil {
				tc.broadcastBytes(tn, round, size)
			}
			if tn.strs != nil {
				tc.broadcastString(tn, round, size)
			}
		}
		// The first round alone, so that connections open and trees form.
		if round == 0 {
			tc.waitAll()
		}
	}
	tc.waitAll()
	tc.checkRefused(nil)
}

func ruleTopicsUnsubscribe(b *benv) {
	c := b.c
	tc := b.startTopics()
	leaver := tc.nodes[4] // on both topics
	for _, tn := range tc.nodes {
		if tn.bytes != nil {
			tc.broadcastBytes(tn, 0, 100)
		}
	}
	tc.waitAll()
	if !c.within("unsubscribing", func() { leaver.bytes.Close() }) {
		return
	}
	leaver.bytes = nil
	tc.waitSubscribers("bytes", tc.subscribers(func(tn *topicNode) bool { return tn.bytes != nil }))
	// The hosts knew it; their topics' Plumtrees hear it from them at once.
	if !tc.sleep(50 * time.Millisecond) {
		c.t.Fatalf("watchdog expired")
	}
	before := leaver.host.Stats().RefusedUnknownTopic
	for round := 1; round <= 2; round++ {
		for _, tn := range tc.nodes {
			if tn.bytes != nil {
				tc.broadcastBytes(tn, round, 200)
			}
			if tn.strs != nil {
				tc.broadcastString(tn, round, 200)
			}
		}
	}
	tc.waitAll()
	if after := leaver.host.Stats().RefusedUnknownTopic; after != before {
		c.t.Errorf("%s was sent %d frames of the topic it left, after every other node knew it had left", leaver.id, after-before)
	}
}

func topicOf(key string) string {
	name, _, _ := strings.Cut(key, "/")
	return name
}

// subscribers lists the IDs of the nodes for which in is true.
func (tc *topicCluster) subscribers(in func(*topicNode) bool) []string {
	var ids []string
	for _, tn := range tc.nodes {
		if in(tn) {
			ids = append(ids, tn.id)
		}
	}
	return ids
}

// waitSubscribers waits until every node knows exactly subs (itself
// excepted) as the subscribers of name.
func (tc *topicCluster) waitSubscribers(name string, subs []string) {
	c := tc.c
	c.t.Helper()
	for {
		done, example := true, ""
		for _, tn := range tc.nodes {
			want := slices.DeleteFunc(slices.Clone(subs), func(id string) bool { return id == tn.id })
			got := tn.host.Subscribers(name)
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				done, example = false, fmt.Sprintf("%s knows %v as subscribers of %s, want %v", tn.id, got, name, want)
				break
			}
		}
		if done {
			return
		}
		if !tc.sleep(10 * time.Millisecond) {
			c.t.Fatalf("watchdog: subscriptions did not spread: %s", example)
		}
	}
}

// sleep waits d; false if the watchdog fired first.
func (tc *topicCluster) sleep(d time.Duration) bool {
	select {
	case <-time.After(d):
		return true
	case <-tc.c.ctx.Done():
		return false
	}
}

func (tc *topicCluster) sizes() []int {
	sizes := []int{16, 300}
	if st, ok := tc.nodes[0].tr.(transport.Stream); ok {
		sizes = append(sizes, 3000, min(64<<10, st.MaxFrameSize()-512))
	} else if dg, ok := tc.nodes[0].tr.(transport.Datagram); ok {
		sizes = append(sizes, dg.MaxDatagramSize()-256)
	}
	return sizes
}

func (tc *topicCluster) deliver(name, id, value, origin string) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if o, ok := tc.sent[name+"/"+value]; !ok || o != origin {
		tc.bad = append(tc.bad, fmt.Sprintf("%s delivered on %s %d bytes from origin %s that were never broadcast there by it", id, name, len(value), origin))
	}
	k := name + "/" + id
	if tc.got[k] == nil {
		tc.got[k] = map[string]int{}
	}
	tc.got[k][value]++
	close(tc.change)
	tc.change = make(chan struct{})
}

func (tc *topicCluster) payload(tn *topicNode, name string, round, size int) string {
	// Printable, for the strings codec; unique per node, topic and round.
	p := []byte(fmt.Sprintf("%s/%s/%d/", name, tn.id, round))
	r := tc.c.payload(max(size, len(p)))
	for i := len(p); i < len(r); i++ {
		p = append(p, 'a'+r[i]%26)
	}
	tc.mu.Lock()
	tc.sent[name+"/"+string(p)] = tn.id
	tc.mu.Unlock()
	return string(p)
}

func (tc *topicCluster) broadcastBytes(tn *topicNode, round, size int) {
	tc.c.t.Helper()
	p := tc.payload(tn, "bytes", round, size)
	if _, err := tn.bytes.Broadcast(tc.c.ctx, []byte(p)); err != nil {
		tc.c.t.Fatalf("Broadcast of %d bytes on topic bytes from %s: %v", len(p), tn.id, err)
	}
}

func (tc *topicCluster) broadcastString(tn *topicNode, round, size int) {
	tc.c.t.Helper()
	p := tc.payload(tn, "strings", round, size)
	if _, err := tn.strs.Broadcast(tc.c.ctx, p); err != nil {
		tc.c.t.Fatalf("Broadcast of %d bytes on topic strings from %s: %v", len(p), tn.id, err)
	}
}

// waitAll waits until every current subscriber of each topic has
// delivered every broadcast of that topic from the others, then checks
// that nothing was delivered twice or to a node that never subscribed.
func (tc *topicCluster) waitAll() {
	c := tc.c
	c.t.Helper()
	subscribed := func(tn *topicNode, name string) bool {
		if name == "bytes" {
			return tn.bytes != nil
		}
		return tn.strs != nil
	}
	for {
		tc.mu.Lock()
		missing, example := 0, ""
		for key, origin := range tc.sent {
			name := topicOf(key)
			value := key[len(name)+1:]
			for _, tn := range tc.nodes {
				if tn.id != origin && subscribed(tn, name) && tc.got[name+"/"+tn.id][value] == 0 {
					missing++
					example = fmt.Sprintf("%s has not delivered a %d-byte broadcast on %s from %s", tn.id, len(value), name, origin)
				}
			}
		}
		change := tc.change
		tc.mu.Unlock()
		if missing == 0 {
			break
		}
		select {
		case <-change:
		case <-c.ctx.Done():
			c.t.Fatalf("watchdog: %d deliveries missing; for instance %s", missing, example)
		}
	}
	tc.mu.Lock()
	defer tc.mu.Unlock()
	for _, b := range tc.bad {
		c.t.Errorf("%s", b)
	}
	tc.bad = nil
	for k, vals := range tc.got {
		for v, times := range vals {
			if times > 1 {
				c.t.Errorf("%s delivered a %d-byte broadcast %d times", k, len(v), times)
			}
		}
	}
}

// checkRefused fails if a host was sent a frame of a topic it does not
// subscribe to.
func (tc *topicCluster) checkRefused(except *topicNode) {
	for _, tn := range tc.nodes {
		if tn == except {
			continue
		}
		if s := tn.host.Stats(); s.RefusedUnknownTopic != 0 || s.RefusedMalformed != 0 {
			tc.c.t.Errorf("%s refused %d frames of topics it does not subscribe to and %d malformed ones: the host or the transport sent them where they do not belong",
				tn.id, s.RefusedUnknownTopic, s.RefusedMalformed)
		}
	}
}
