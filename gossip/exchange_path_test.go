package gossip

import (
	"context"
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

// The answer to a summary that lacks a message goes by stream, the
// periodic summary by datagram. The answer is sent only for a gap the peer
// is known to have, so losing it costs that gap another ExchangeInterval
// at least: in transport/chaos TestClusterUnderChaos (10% of datagrams
// lost, the cluster cut in two), 1 run in 3,000 had a node's only answer
// lost, and the message missed the 16 s the test allows. Catches: the
// answer sent as a datagram like the periodic summary.
func TestExchangeAnswerGoesByStream(t *testing.T) {
	watchdog.Test(t, func(t *testing.T) {
		net := mem.NewNetwork(mem.Config{Latency: time.Millisecond})
		members := []membership.Member[string]{{ID: "a", Addr: "a"}, {ID: "peer", Addr: "peer"}}
		cfg := DefaultConfig()
		var mu sync.Mutex
		paths := map[transport.Path]int{} // a's exchanges to the peer, by path
		tr, err := net.Listen("a")
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		ms := static.New(members...)
		defer ms.Close()
		a, err := New(cfg, Options[string, []byte]{ID: "a", Transport: tr, Membership: ms, Codec: codec.Bytes(), Seed: 1,
			Observer: ObserverFunc(func(e Event) {
				if e.Kind == EventSent && e.Type == KindExchange {
					mu.Lock()
					paths[e.Path]++
					mu.Unlock()
				}
			})})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		// The peer is a bare transport: it sends what the test says, and
		// what a sends it waits unread (its queues are far larger).
		peer, err := net.Listen("peer")
		if err != nil {
			t.Fatal(err)
		}
		defer peer.Close()

		if _, err := a.Broadcast(context.Background(), []byte("m")); err != nil {
			t.Fatal(err)
		}
		// Past IHaveInterval + GraftTimeout, and past a's first periodic
		// summaries, which go by datagram.
		time.Sleep(3 * cfg.ExchangeInterval)
		synctest.Wait()
		mu.Lock()
		before := paths[transport.PathStream]
		periodic := paths[transport.PathDatagram]
		mu.Unlock()
		if before != 0 || periodic == 0 {
			t.Fatalf("before any summary from the peer, a sent %d exchanges by stream and %d by datagram: want 0 and the periodic ones", before, periodic)
		}

		// The peer's summary names a message of some other origin, not a's.
		f := wire.Frame{Type: wire.TypeExchange, Sender: []byte("peer"),
			Ranges: []wire.Range{{Prefix: [wire.PrefixSize]byte{0x77}, First: 1, N: 1}}}
		b, err := wire.Append(nil, &f)
		if err != nil {
			t.Fatal(err)
		}
		if err := peer.SendDatagram(context.Background(), "a", b); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if paths[transport.PathStream] != 1 {
			t.Fatalf("a answered the summary that lacks its message with %d exchanges by stream (%d by datagram in all, %d before): want 1 by stream",
				paths[transport.PathStream], paths[transport.PathDatagram], periodic)
		}
	})
}
