package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/plumtree-go/plumtree/codec"
	"github.com/plumtree-go/plumtree/gossip"
	"github.com/plumtree-go/plumtree/internal/cli"
	"github.com/plumtree-go/plumtree/membership"
	"github.com/plumtree-go/plumtree/membership/static"
	"github.com/plumtree-go/plumtree/topic"
	"github.com/plumtree-go/plumtree/transport/mem"
)

// topicFlags adds the demo's topics setting.
func topicFlags(fs *flag.FlagSet, o *demoOptions) {
	fs.IntVar(&o.topics, "topics", 0, "run this many topics (package topic) instead of one stream; each broadcast goes to a random topic from one of its subscribers (mem transport only)")
	fs.IntVar(&o.subscribe, "subscribe", 3, "with -topics: topics each node subscribes to, at random")
}

func checkTopicFlags(o demoOptions) error {
	if o.topics == 0 {
		return nil
	}
	if o.topics < 0 || o.subscribe < 1 || o.subscribe > o.topics {
		return cli.Usagef("need -topics >= 1 and 1 <= -subscribe <= -topics")
	}
	if o.transport != "mem" {
		return cli.Usagef("-topics needs -transport mem")
	}
	return nil
}

// topicsNode is one node of the topics demo.
type topicsNode struct {
	host   *topic.Host[string]
	tr     *mem.Transport
	ms     *static.Static[string]
	topics map[int]*topic.Topic[string, []byte]
}

// runTopicsDemo is the demo with -topics: o.nodes hosts on an in-memory
// network, each subscribed to o.subscribe of o.topics topics at random;
// after a warm-up (one broadcast from each subscriber of each topic), o.count
// broadcasts on random topics from random subscribers.
func runTopicsDemo(ctx context.Context, o demoOptions, progress io.Writer) (report, error) {
	cfg, compression, err := demoConfig(o)
	if err != nil {
		return report{}, err
	}
	var current atomic.Pointer[tally]
	current.Store(newTally())
	// One tally per topic as well, for the worst topic's RMR.
	perTopic := make([]*tally, o.topics)
	for k := range perTopic {
		perTopic[k] = newTally()
	}
	rng := rand.New(rand.NewPCG(o.seed, 3))
	net := mem.NewNetwork(mem.Config{Seed: o.seed, Latency: time.Millisecond, DropRate: o.loss})
	var members []membership.Member[string]
	for i := range o.nodes {
		id := fmt.Sprintf("node-%02d", i)
		members = append(members, membership.Member[string]{ID: id, Addr: id})
	}
	var nodes []*topicsNode
	defer func() {
		for _, n := range nodes {
			n.host.Close()
			n.ms.Close()
			n.tr.Close()
		}
	}()
	subs := make([][]int, o.topics)
	for i := range o.nodes {
		tr, err := net.Listen(members[i].ID)
		if err != nil {
			return report{}, err
		}
		ms := static.New(members...)
		h, err := topic.NewHost(topic.HostOptions[string]{ID: members[i].ID, Transport: tr, Membership: ms, Seed: o.seed + uint64(i)})
		if err != nil {
			tr.Close()
			ms.Close()
			return report{}, err
		}
		n := &topicsNode{host: h, tr: tr, ms: ms, topics: map[int]*topic.Topic[string, []byte]{}}
		nodes = append(nodes, n)
		for _, k := range rng.Perm(o.topics)[:o.subscribe] {
			obs := gossip.ObserverFunc(func(e gossip.Event) {
				current.Load().Observe(e)
				perTopic[k].Observe(e)
			})
			tp, err := topic.Subscribe(h, fmt.Sprintf("topic-%03d", k), cfg, topic.Options[string, []byte]{
				Codec: codec.Bytes(), Observer: obs, OnDeliver: func(gossip.Delivery[string, []byte]) {}})
			if err != nil {
				return report{}, err
			}
			n.topics[k] = tp
			subs[k] = append(subs[k], i)
		}
	}
	// Wait until every host knows every subscription.
	want := 0
	for _, s := range subs {
		want += len(s)
	}
	for _, n := range nodes {
		for {
			known := n.host.Stats().Subscriptions + len(n.topics)
			if known >= want {
				break
			}
			select {
			case <-time.After(10 * time.Millisecond):
			case <-ctx.Done():
				return report{}, ctx.Err()
			}
		}
	}
	fmt.Fprintf(progress, "warming up: one broadcast from each subscriber of each topic...\n")
	warm := 0
	for k, s := range subs {
		for _, i := range s {
			if _, err := nodes[i].topics[k].Broadcast(ctx, fmt.Appendf(nil, "warm-up %d", k)); err != nil {
				return report{}, err
			}
			warm += len(s) - 1
			if err := waitDeliveries(ctx, current.Load(), warm, 30*time.Second); err != nil {
				return report{}, fmt.Errorf("warm-up: %w", err)
			}
		}
	}
	select {
	case <-time.After(cfg.IHaveInterval + cfg.GraftTimeout):
	case <-ctx.Done():
		return report{}, ctx.Err()
	}
	var wireBefore uint64
	for _, n := range nodes {
		wireBefore += n.tr.Stats().BytesSent
	}
	t := newTally()
	current.Store(t)
	var live []int // topics with at least two subscribers
	for k, s := range subs {
		if len(s) >= 2 {
			live = append(live, k)
		}
	}
	if len(live) == 0 {
		return report{}, fmt.Errorf("no topic has two subscribers: raise -subscribe or lower -topics")
	}
	payload := make([]byte, o.size)
	for i := range payload {
		payload[i] = "plumtree epidemic broadcast "[i%28]
	}
	gap := time.Duration(float64(time.Second) / o.rate)
	start := time.Now()
	var sent []gossip.MessageID
	sentTopic := map[gossip.MessageID]int{}
	expected := 0
	for i := range o.count {
		k := live[rng.IntN(len(live))]
		from := subs[k][rng.IntN(len(subs[k]))]
		copy(payload, fmt.Sprintf("message %d ", i))
		id, err := nodes[from].topics[k].Broadcast(ctx, payload)
		if err != nil {
			return report{}, err
		}
		sent = append(sent, id)
		sentTopic[id] = k
		expected += len(subs[k]) - 1
		select {
		case <-time.After(time.Until(start.Add(time.Duration(i+1) * gap))):
		case <-ctx.Done():
			return report{}, ctx.Err()
		}
	}
	horizon := cfg.IHaveInterval + cfg.GraftTimeout*time.Duration(2+cfg.GraftMaxRetries)
	_ = waitDeliveries(ctx, t, expected, horizon)
	elapsed := time.Since(start)
	if ctx.Err() != nil {
		return report{}, ctx.Err()
	}
	var wire, refused uint64
	for _, n := range nodes {
		wire += n.tr.Stats().BytesSent
		refused += n.host.Stats().RefusedUnknownTopic
	}
	wire -= wireBefore
	t.mu.Lock()
	defer t.mu.Unlock()
	received, delivered := 0, 0
	var ldh uint32
	recvBy, delivBy := map[int]int{}, map[int]int{}
	for _, id := range sent {
		received += t.payloads[id]
		delivered += t.firsts[id]
		recvBy[sentTopic[id]] += t.payloads[id]
		delivBy[sentTopic[id]] += t.firsts[id]
		ldh = max(ldh, t.hops[id])
	}
	var maxRMR float64
	for k, d := range delivBy {
		if d > 0 {
			maxRMR = max(maxRMR, float64(recvBy[k])/float64(d)-1)
		}
	}
	pct := percentiles(t.lat)
	ideal := int64(expected) * int64(o.size)
	return report{
		Nodes: o.nodes, Transport: "mem", Membership: "static", Preset: o.preset, Compressor: compression,
		Broadcasts: len(sent), Size: o.size, Deliveries: delivered, Expected: expected,
		Reliability: float64(delivered) / float64(max(expected, 1)),
		RMR:         float64(received)/float64(max(delivered, 1)) - 1,
		LDH:         ldh,
		LatencyP50:  pct(0.50), LatencyP99: pct(0.99), LatencyMax: pct(1),
		PayloadBytes: int64(delivered) * int64(o.size), WireBytes: wire,
		WirePerPayload: float64(wire) / float64(max(ideal, 1)),
		PerSecond:      float64(len(sent)) / elapsed.Seconds(),
		Grafts:         t.grafts, Prunes: t.prunes, Seconds: elapsed.Seconds(),
		Topics: o.topics, TopicsPerNode: o.subscribe, MaxTopicRMR: maxRMR, RefusedFrames: refused,
	}, nil
}

func printTopicsReport(w io.Writer, r report) {
	fmt.Fprintf(w, "\n%d nodes, %d topics, %d per node at random, %s, preset %s, compression %s: %d broadcasts of %d bytes on random topics from random subscribers, after a warm-up\n",
		r.Nodes, r.Topics, r.TopicsPerNode, r.Transport, r.Preset, r.Compressor, r.Broadcasts, r.Size)
	fmt.Fprintf(w, "reliability       %.4f  (%d of %d deliveries to subscribers)\n", r.Reliability, r.Deliveries, r.Expected)
	fmt.Fprintf(w, "RMR               %.4f  overall, %.4f on the worst topic\n", r.RMR, r.MaxTopicRMR)
	fmt.Fprintf(w, "last delivery hop %d\n", r.LDH)
	fmt.Fprintf(w, "latency           p50 %.2fms  p99 %.2fms  max %.2fms\n", r.LatencyP50, r.LatencyP99, r.LatencyMax)
	fmt.Fprintf(w, "bytes             %d payload delivered, %d on the wire (%.2f per ideal payload byte, announcements included)\n", r.PayloadBytes, r.WireBytes, r.WirePerPayload)
	fmt.Fprintf(w, "refused           %d frames for topics a host does not subscribe to\n", r.RefusedFrames)
	fmt.Fprintf(w, "repairs           %d grafts, %d prunes\n", r.Grafts, r.Prunes)
}
