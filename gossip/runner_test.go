package gossip

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/plumtree-go/plumtree/codec"
	"github.com/plumtree-go/plumtree/internal/watchdog"
	"github.com/plumtree-go/plumtree/membership"
	"github.com/plumtree-go/plumtree/membership/static"
	"github.com/plumtree-go/plumtree/transport/mem"
)

// A peer that never reads costs at most SendQueueBytes of queued frames:
// past it, frames are dropped and counted, well before the frame-count cap.
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
		cfg.SendQueueBytes = 3000
		cfg.GossipDatagramMaxSize = 0 // every payload by stream
		node, err := New(cfg, Options[string, []byte]{ID: "a", Transport: a, Membership: members, Codec: codec.Bytes()})
		if err != nil {
			t.Fatal(err)
		}
		defer node.Close()
		for range 20 {
			if _, err := node.Broadcast(context.Background(), make([]byte, 900)); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		st, err := node.Stats()
		if err != nil {
			t.Fatal(err)
		}
		// At most 3000 bytes wait in the queue (three frames of ~950 bytes),
		// a few more are in the transport: most of the 20 must be refused.
		if st.SendErrors < 10 {
			t.Fatalf("%d of 20 frames refused; the byte bound did not hold", st.SendErrors)
		}
		t.Logf("%d of 20 frames to a peer that does not read were refused", st.SendErrors)
	})
}
