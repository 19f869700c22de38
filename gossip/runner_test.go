package gossip

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"

	"github.com/plumtree-go/plumtree/codec"
	"github.com/plumtree-go/plumtree/internal/watchdog"
	"github.com/plumtree-go/plumtree/membership"
	"github.com/plumtree-go/plumtree/membership/static"
	"github.com/plumtree-go/plumtree/transport/mem"
)

// A peer that never reads costs bounded memory: its stream queue fills up to
// the publishers' share, and past it the node refuses its own broadcasts
// (TryBroadcast: ErrBusy) instead of queueing or dropping them.
func TestSendQueueBoundedByBytes(t *testing.T) {
	watchdog.Test(t, func(t *testing.T) {
		net := mem.NewNetwork(mem.Config{QueueSize: 1})
		a, _ := net.Listen("a")
		b, _ := net.Listen("b") // nobody reads b: its stream backs up
		defer a.Close()
		defer b.Close()
		members := static.New(membership.Member[string]{ID: "a", Addr: "a"}, membership.Member[string]{ID: "b", Addr: "b"})
		defer members.Close()
		cfg := DefaultConfig()
		cfg.MaxMessageSize = 1000
		cfg.SendQueueBytes = 3000     // publishers may fill half of it
		cfg.GossipDatagramMaxSize = 0 // every payload by stream
		node, err := New(cfg, Options[string, []byte]{ID: "a", Transport: a, Membership: members, Codec: codec.Bytes()})
		if err != nil {
			t.Fatal(err)
		}
		defer node.Close()
		busy := 0
		for range 20 {
			_, err := node.TryBroadcast(context.Background(), make([]byte, 900))
			if errors.Is(err, ErrBusy) {
				busy++
			} else if err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
		}
		st, err := node.Stats()
		if err != nil {
			t.Fatal(err)
		}
		// At most 1500 bytes (two frames of ~950 bytes) wait in the queue,
		// a few more are in the transport: most of the 20 must be refused,
		// and none dropped after it was taken.
		if busy < 10 || st.SendErrors != 0 {
			t.Fatalf("%d of 20 broadcasts refused busy, %d frames dropped; want at least 10 refused, none dropped", busy, st.SendErrors)
		}
		t.Logf("%d of 20 broadcasts towards a peer that does not read were refused busy", busy)
	})
}
