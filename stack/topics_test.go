package stack_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/plumtree-go/plumtree/codec"
	"github.com/plumtree-go/plumtree/gossip"
	"github.com/plumtree-go/plumtree/stack"
	"github.com/plumtree-go/plumtree/topic"
)

type price struct {
	Symbol string  `json:"symbol"`
	Value  float64 `json:"value"`
}

// Three stacks on loopback with Config.Topics: nodes 0 and 1 subscribe to
// "prices" (JSON structs), nodes 1 and 2 to "logs" (bytes, WAN preset's
// zstd through the stack's compressors). Each broadcast reaches the other
// subscriber of its topic only, decoded as its type.
func TestTopics(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a watchdog
	defer cancel()
	var nodes []*stack.Stack
	for i := range 3 {
		cfg := stack.Config{Name: fmt.Sprintf("n%d", i), Preset: "wan", Topics: true}
		if i > 0 {
			cfg.Join = []string{nodes[0].ClusterAddr()}
		}
		nodes = append(nodes, start(t, cfg))
	}
	for _, s := range nodes {
		if err := s.WaitMembers(ctx, 3); err != nil {
			t.Fatalf("members: %v", err)
		}
		if s.Node != nil || s.Host == nil {
			t.Fatalf("%s: Node %v, Host %v: want a host and no node", s.ID(), s.Node, s.Host)
		}
	}
	prices := make([]*topic.Topic[string, price], 3)
	logs := make([]*topic.Topic[string, []byte], 3)
	for i, s := range nodes {
		var err error
		if i <= 1 {
			if prices[i], err = stack.Subscribe(s, "prices", topic.Options[string, price]{Codec: codec.JSON[price]()}); err != nil {
				t.Fatal(err)
			}
		}
		if i >= 1 {
			if logs[i], err = stack.Subscribe(s, "logs", topic.Options[string, []byte]{Codec: codec.Bytes()}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Each host learns the others' subscriptions.
	for i, s := range nodes {
		for name, want := range map[string][]string{"prices": {"n0", "n1"}, "logs": {"n1", "n2"}} {
			want = slices.DeleteFunc(slices.Clone(want), func(id string) bool { return id == s.ID() })
			for {
				got := s.Host.Subscribers(name)
				slices.Sort(got)
				if slices.Equal(got, want) {
					break
				}
				select {
				case <-ctx.Done():
					t.Fatalf("node %d knows %v as subscribers of %s, want %v", i, got, name, want)
				case <-time.After(10 * time.Millisecond):
				}
			}
		}
	}
	if _, err := prices[0].Broadcast(ctx, price{"ACME", 12.5}); err != nil {
		t.Fatal(err)
	}
	doc := make([]byte, 0, 4096)
	for len(doc) < 4000 {
		doc = append(doc, "level=info msg=handled "...)
	}
	if _, err := logs[2].Broadcast(ctx, doc); err != nil {
		t.Fatal(err)
	}
	wait := func(what string, ch <-chan gossip.Delivery[string, price], ch2 <-chan gossip.Delivery[string, []byte]) {
		t.Helper()
		select {
		case d := <-ch:
			if d.Value != (price{"ACME", 12.5}) || d.Origin != "n0" {
				t.Errorf("%s: delivered %+v from %s", what, d.Value, d.Origin)
			}
		case d := <-ch2:
			if string(d.Value) != string(doc) || d.Origin != "n2" {
				t.Errorf("%s: delivered %d bytes from %s", what, len(d.Value), d.Origin)
			}
		case <-ctx.Done():
			t.Fatalf("%s: nothing delivered within a minute", what)
		}
	}
	wait("n1 on prices", prices[1].Deliveries(), nil)
	wait("n1 on logs", nil, logs[1].Deliveries())
	// The WAN preset names zstd: Subscribe gave the topics the stack's
	// compressors (without them the topics could not start), and the
	// compressed document read back.
	st, err := logs[1].Stats() // the receiver: where a compressor missing would show
	if err != nil {
		t.Fatal(err)
	}
	if st.DecodeErrors != 0 {
		t.Errorf("n1's logs topic: %d decode errors", st.DecodeErrors)
	}
	// The non-subscriber of each topic was sent nothing of it.
	for i, s := range nodes {
		if n := s.Host.Stats().RefusedUnknownTopic; n != 0 {
			t.Errorf("node %d was sent %d frames of a topic it does not subscribe to", i, n)
		}
	}
}

// Config.Topics refuses the one-node settings, and Subscribe needs a host.
func TestTopicsRefusesNodeSettings(t *testing.T) {
	refused(t, stack.Config{Listen: "127.0.0.1:0", Topics: true, OnDeliver: func(gossip.Delivery[string, []byte]) {}}, "Config.Topics", "topic.Options")
	s := start(t, stack.Config{Name: "solo"})
	if _, err := stack.Subscribe(s, "x", topic.Options[string, []byte]{Codec: codec.Bytes()}); err == nil {
		t.Error("Subscribe on a stack without Config.Topics was accepted")
	}
}
