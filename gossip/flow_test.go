package gossip

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/plumtree-go/plumtree/codec"
	"github.com/plumtree-go/plumtree/internal/watchdog"
	"github.com/plumtree-go/plumtree/membership"
	"github.com/plumtree-go/plumtree/membership/static"
	"github.com/plumtree-go/plumtree/transport/mem"
)

// flowPair is two nodes, a and b, on one in-memory network.
type flowPair struct {
	a, b     *Plumtree[string, []byte]
	tally    *tally
	received func() int // frames b's transport received
}

func newFlowPair(t *testing.T, cfg Config, netCfg mem.Config, bOpts func(*Options[string, []byte])) *flowPair {
	t.Helper()
	net := mem.NewNetwork(netCfg)
	members := []membership.Member[string]{{ID: "a", Addr: "a"}, {ID: "b", Addr: "b"}}
	p := &flowPair{tally: newTally()}
	var nodes [2]*Plumtree[string, []byte]
	for i, m := range members {
		tr, err := net.Listen(m.Addr)
		if err != nil {
			t.Fatal(err)
		}
		ms := static.New(members...)
		o := Options[string, []byte]{ID: m.ID, Transport: tr, Membership: ms, Codec: codec.Bytes(), Seed: uint64(i + 1)}
		if i == 0 {
			o.Observer = p.tally
		} else if bOpts != nil {
			bOpts(&o)
		}
		n, err := New(cfg, o)
		if err != nil {
			t.Fatal(err)
		}
		nodes[i] = n
		t.Cleanup(func() { n.Close(); tr.Close(); ms.Close() })
		if i == 1 {
			p.received = func() int { s := tr.Stats(); return int(s.FramesReceived + s.DatagramsReceived) }
		}
	}
	p.a, p.b = nodes[0], nodes[1]
	return p
}

func (p *flowPair) sent() int {
	p.tally.mu.Lock()
	defer p.tally.mu.Unlock()
	return p.tally.events[EventSent]
}

// A context that is done when Broadcast is called never sends: Broadcast
// returns its error, every time, and nothing leaves the node. (Before issue
// 17 both cases of a select were ready, and some such calls sent.)
func TestBroadcastDoneContextNeverSends(t *testing.T) {
	watchdog.Test(t, func(t *testing.T) {
		p := newFlowPair(t, DefaultConfig(), mem.Config{}, nil)
		synctest.Wait()
		before, beforeB := p.sent(), p.received()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		for i := range 1000 {
			for _, try := range []bool{false, true} {
				var err error
				if try {
					_, err = p.a.TryBroadcast(ctx, []byte("x"))
				} else {
					_, err = p.a.Broadcast(ctx, []byte("x"))
				}
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("call %d (try %v) with a cancelled context returned %v, want context.Canceled", i, try, err)
				}
			}
		}
		synctest.Wait()
		time.Sleep(time.Second) // past IHaveInterval: any announcement would have gone
		synctest.Wait()
		if s, r := p.sent()-before, p.received()-beforeB; s != 0 || r != 0 {
			t.Fatalf("2000 broadcasts with a cancelled context: %d frames sent, %d received, want none", s, r)
		}
	})
}

// slowFlowPair is a flowPair whose stream link carries 1000 bytes per second, with
// room for one 900-byte broadcast in the publishers' share.
func slowFlowPair(t *testing.T) *flowPair {
	cfg := DefaultConfig()
	cfg.GossipDatagramMaxSize = 0 // every payload by stream
	cfg.PublishQueueBytes = 500
	return newFlowPair(t, cfg, mem.Config{StreamBandwidth: 1000}, nil)
}

// A Broadcast waiting for room whose context ends returns the context's
// error and its message is never sent, even once room appears; TryBroadcast
// refuses at once with a *BusyError naming the full queue.
func TestBroadcastWaitsForRoom(t *testing.T) {
	watchdog.Test(t, func(t *testing.T) {
		p := slowFlowPair(t)
		synctest.Wait()
		if _, err := p.a.Broadcast(context.Background(), make([]byte, 900)); err != nil {
			t.Fatal(err)
		}
		_, err := p.a.TryBroadcast(context.Background(), make([]byte, 900))
		var be *BusyError
		if !errors.Is(err, ErrBusy) || !errors.As(err, &be) || be.Peer != "b" || be.Queued < 900 || be.Limit != 500 {
			t.Fatalf("TryBroadcast with ~950 bytes queued to b: %v (%+v), want a *BusyError for b's queue, limit 500", err, be)
		}
		t.Logf("TryBroadcast: %v", err)

		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		if _, err := p.a.Broadcast(ctx, []byte("late")); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Broadcast waiting for room past its context: %v, want DeadlineExceeded", err)
		}
		if d := time.Since(start); d != 100*time.Millisecond {
			t.Fatalf("Broadcast returned after %v, want 100ms (its context's deadline)", d)
		}
		// Room appears in about a second: a waiting Broadcast gets it.
		start = time.Now()
		if _, err := p.a.Broadcast(context.Background(), []byte("waited")); err != nil {
			t.Fatal(err)
		}
		t.Logf("a Broadcast waited %v for room", time.Since(start))
		if time.Since(start) < 500*time.Millisecond {
			t.Fatalf("Broadcast returned after %v: it did not wait for the queue to drain", time.Since(start))
		}
		var got []string
		timeout := time.After(10 * time.Second)
		for len(got) < 2 {
			select {
			case d := <-p.b.Deliveries():
				got = append(got, fmt.Sprintf("%d bytes", len(d.Value)))
				if string(d.Value) == "late" {
					t.Fatal("the Broadcast that gave up was sent")
				}
			case <-timeout:
				t.Fatalf("b delivered %v, want the first and the waited broadcast", got)
			}
		}
		time.Sleep(10 * time.Second)
		select {
		case d := <-p.b.Deliveries():
			t.Fatalf("b delivered %q too: the Broadcast that gave up was sent", d.Value)
		default:
		}
	})
}

// A slow application hears of what it missed: the delivery after a gap
// says how many were dropped before it, as Stats and the Observer count.
func TestDeliveryLagged(t *testing.T) {
	watchdog.Test(t, func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.DeliveryBuffer = 4
		bt := newTally()
		p := newFlowPair(t, cfg, mem.Config{}, func(o *Options[string, []byte]) { o.Observer = bt })
		synctest.Wait()
		for i := range 10 {
			if _, err := p.a.Broadcast(context.Background(), []byte{byte(i)}); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
		}
		for i := range 4 { // what fitted in the buffer, told of no gap
			if d := <-p.b.Deliveries(); d.Lagged != 0 || d.Value[0] != byte(i) {
				t.Fatalf("delivery %d: message %d, Lagged %d; want message %d, Lagged 0", i, d.Value[0], d.Lagged, i)
			}
		}
		if _, err := p.a.Broadcast(context.Background(), []byte{10}); err != nil {
			t.Fatal(err)
		}
		d := <-p.b.Deliveries()
		st, _ := p.b.Stats()
		bt.mu.Lock()
		observed := bt.events[EventDeliveryDropped]
		bt.mu.Unlock()
		if d.Value[0] != 10 || d.Lagged != 6 || st.DeliveriesDropped != 6 || observed != 6 {
			t.Fatalf("after a gap of 6: message %d with Lagged %d, Stats.DeliveriesDropped %d, %d EventDeliveryDropped; want message 10, 6, 6, 6",
				d.Value[0], d.Lagged, st.DeliveriesDropped, observed)
		}
		if _, err := p.a.Broadcast(context.Background(), []byte{11}); err != nil {
			t.Fatal(err)
		}
		if d := <-p.b.Deliveries(); d.Lagged != 0 {
			t.Fatalf("the delivery after the one that reported the gap has Lagged %d, want 0", d.Lagged)
		}
	})
}

// The first graft waits GraftTimeout plus the delay the runner measured
// (payloads arriving late because of queueing), the delay at most a quarter
// of MessageCacheTTL.
func TestGraftDelayFollowsLateness(t *testing.T) {
	cfg := testConfig()
	for _, tc := range []struct{ set, want time.Duration }{
		{0, 0},
		{300 * time.Millisecond, 300 * time.Millisecond},
		{time.Hour, cfg.MessageCacheTTL / 4},
		{-time.Second, 0},
	} {
		pe := newPaperEngine(t, cfg, 1, 2, 3, 4)
		pe.e.SetGraftDelay(tc.set)
		lazy := pe.e.LazyPeers()
		id := MessageID{4}
		pe.e.Receive(t0, lazy[0], &Msg[int]{Kind: KindIHave, Announcements: []Announcement{{ID: id, Round: 2}}})
		at := t0.Add(cfg.GraftTimeout + tc.want)
		// (Past ExchangeInterval another timer comes first.)
		if d := pe.e.NextDeadline(); at.Sub(t0) < cfg.ExchangeInterval && !d.Equal(at) {
			t.Fatalf("SetGraftDelay(%v): graft timer at %v, want %v", tc.set, d.Sub(t0), at.Sub(t0))
		}
		pe.e.Tick(at.Add(-time.Nanosecond))
		if len(only(pe.out(), KindGraft)) != 0 {
			t.Fatalf("SetGraftDelay(%v): grafted before GraftTimeout plus the delay", tc.set)
		}
		pe.e.Tick(at)
		if g := only(pe.out(), KindGraft); len(g) != 1 {
			t.Fatalf("SetGraftDelay(%v): %d grafts at GraftTimeout plus the delay, want 1", tc.set, len(g))
		}
	}
}
