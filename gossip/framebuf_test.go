package gossip

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/plumtree-go/plumtree/codec"
	"github.com/plumtree-go/plumtree/internal/watchdog"
	"github.com/plumtree-go/plumtree/membership"
	"github.com/plumtree-go/plumtree/membership/static"
	"github.com/plumtree-go/plumtree/transport/mem"
)

// A frame buffer goes back to its pool only with its last reference, and
// comes out of the pool empty.
func TestFrameBufReferences(t *testing.T) {
	fb := getFrame(100)
	if len(fb.b) != 0 || cap(fb.b) < 100 {
		t.Fatalf("getFrame(100): len %d cap %d", len(fb.b), cap(fb.b))
	}
	fb.b = append(fb.b, "frame"...)
	fb.retain()
	fb.retain()
	fb.release()
	fb.release()
	if n := fb.refs.Load(); n != 1 {
		t.Fatalf("after two retains and two releases: %d references, want 1", n)
	}
	if string(fb.b) != "frame" {
		t.Fatalf("a held buffer changed: %q", fb.b)
	}
	fb.release()
	for _, size := range []int{0, 256, 257, 70 << 10} {
		fb := getFrame(size)
		if len(fb.b) != 0 || cap(fb.b) < size || fb.refs.Load() != 1 {
			t.Fatalf("getFrame(%d): len %d cap %d refs %d", size, len(fb.b), cap(fb.b), fb.refs.Load())
		}
		fb.release()
	}
}

func TestFrameBufOverRelease(t *testing.T) {
	fb := getFrame(10)
	fb.release()
	defer func() {
		if recover() == nil {
			t.Fatal("a release past the last reference did not panic")
		}
	}()
	fb.release()
}

// Encoded frames are pooled and shared by the sends of a push; a buffer
// reused too early would hand some node another message's bytes. Many
// origins broadcast payloads of every pool class (and larger) at once, on
// the datagram path and on the stream path, and every node must deliver
// exactly the bytes that were broadcast.
func TestPooledFramesKeepPayloads(t *testing.T) {
	for _, dgMax := range []int{0, 1 << 20} {
		t.Run(fmt.Sprintf("GossipDatagramMaxSize=%d", dgMax), func(t *testing.T) {
			watchdog.Test(t, func(t *testing.T) { checkPayloads(t, dgMax) })
		})
	}
}

func checkPayloads(t *testing.T, dgMax int) {
	const nodes, perNode = 6, 30
	net := mem.NewNetwork(mem.Config{MaxDatagramSize: 1 << 20, MaxFrameSize: 1 << 20, QueueSize: 4096})
	var members []membership.Member[string]
	for i := range nodes {
		id := fmt.Sprintf("n%d", i)
		members = append(members, membership.Member[string]{ID: id, Addr: id})
	}
	cfg := LANConfig()
	cfg.GossipDatagramMaxSize = dgMax
	cfg.MaxMessageSize = 100 << 10
	cfg.DeliveryBuffer = nodes * perNode
	cfg.SendQueueSize = nodes * perNode * 2
	cfg.SendQueueBytes = 64 << 20
	var mu sync.Mutex
	got := make([]map[MessageID][]byte, nodes)
	pts := make([]*Plumtree[string, []byte], nodes)
	for i := range nodes {
		tr, err := net.Listen(members[i].ID)
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		ms := static.New(members...)
		defer ms.Close()
		got[i] = map[MessageID][]byte{}
		pts[i], err = New(cfg, Options[string, []byte]{ID: members[i].ID, Transport: tr, Membership: ms,
			Codec: codec.Bytes(), Seed: uint64(i) + 1,
			OnDeliver: func(d Delivery[string, []byte]) {
				mu.Lock()
				defer mu.Unlock()
				if _, dup := got[i][d.ID]; dup {
					t.Errorf("node %d delivered %s twice", i, d.ID)
				}
				got[i][d.ID] = d.Value
			}})
		if err != nil {
			t.Fatal(err)
		}
		defer pts[i].Close()
	}
	synctest.Wait()
	sizes := []int{1, 100, 255, 256, 300, 1000, 2000, 5000, 16000, 20000, 65000, 70000}
	rng := rand.New(rand.NewPCG(1, 2))
	sent := map[MessageID][]byte{}
	origin := map[MessageID]int{}
	var wg sync.WaitGroup
	var smu sync.Mutex
	for i := range nodes {
		seed := rng.Uint64()
		wg.Go(func() {
			r := rand.New(rand.NewPCG(seed, 3))
			for k := range perNode {
				p := make([]byte, sizes[(i+k)%len(sizes)])
				for j := range p {
					p[j] = byte(r.Uint32())
				}
				id, err := pts[i].Broadcast(context.Background(), p)
				if err != nil {
					t.Error(err)
					return
				}
				smu.Lock()
				sent[id], origin[id] = p, i
				smu.Unlock()
			}
		})
	}
	wg.Wait()
	// Fake time: long enough for announcements and grafts to repair
	// whatever pruning cut while the tree settled.
	time.Sleep(10 * time.Second)
	synctest.Wait()
	mu.Lock()
	defer mu.Unlock()
	for id, p := range sent {
		for i := range nodes {
			if i == origin[id] {
				continue
			}
			d, ok := got[i][id]
			switch {
			case !ok:
				t.Errorf("node %d did not deliver %s (%d bytes from node %d)", i, id, len(p), origin[id])
			case !bytes.Equal(d, p):
				t.Errorf("node %d delivered other bytes for %s (%d bytes from node %d, got %d)", i, id, len(p), origin[id], len(d))
			}
		}
	}
}
