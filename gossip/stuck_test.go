package gossip

import (
	"context"
	"log/slog"
	"strings"
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

// A deadline in the past is handled once. An engine that, ticked at now,
// still asks to be woken at or before now (here: a sweep that reschedules
// itself at now, as a sweep that never runs or a graft timer that never
// fires would) would have the loop tick it again at once, forever: full CPU
// in production, and inside a synctest bubble a clock that never advances,
// so the test hangs. The runner reports it (log, Stats.StuckDeadlines,
// EventStuckDeadline) and ticks again only stuckBackoff later; the node
// keeps working.
func TestRunnerDoesNotSpinOnPastDeadline(t *testing.T) {
	watchdog.Test(t, func(t *testing.T) {
		net := mem.NewNetwork(mem.Config{Latency: time.Millisecond})
		members := static.New(membership.Member[string]{ID: "a", Addr: "a"}, membership.Member[string]{ID: "b", Addr: "b"})
		defer members.Close()
		var logs syncBuffer
		var mu sync.Mutex
		var events []Event
		obs := ObserverFunc(func(e Event) {
			if e.Kind == EventStuckDeadline {
				mu.Lock()
				events = append(events, e)
				mu.Unlock()
			}
		})
		nodes := map[string]*Plumtree[string, []byte]{}
		for _, id := range []string{"a", "b"} {
			tr, err := net.Listen(id)
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			o := Options[string, []byte]{ID: id, Transport: tr, Membership: members, Codec: codec.Bytes(), Seed: 1}
			if id == "a" {
				o.Observer = obs
				o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			}
			n, err := New(DefaultConfig(), o)
			if err != nil {
				t.Fatal(err)
			}
			defer n.Close()
			nodes[id] = n
		}
		// Break a's engine: its sweep now always reschedules at the time it
		// ran (a zero interval, which Config.Validate would refuse).
		if err := nodes["a"].query(func() {
			nodes["a"].eng.cfg.CleanupMinInterval, nodes["a"].eng.cfg.CleanupMaxInterval = 0, 0
			nodes["a"].eng.sweepGap, nodes["a"].eng.sweepAt = 0, time.Now()
		}); err != nil {
			t.Fatal(err)
		}
		watchdog.Waiting(t, "10 s of virtual time with node a's engine stuck on a past deadline (the runner must not spin)")
		time.Sleep(10 * time.Second)
		synctest.Wait()
		st, err := nodes["a"].Stats()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("after 10 s: %d stuck ticks reported", st.StuckDeadlines)
		// Ticks every stuckBackoff: about 100 in 10 s, not millions.
		if want := uint64(10 * time.Second / stuckBackoff); st.StuckDeadlines < want/2 || st.StuckDeadlines > want+1 {
			t.Errorf("Stats.StuckDeadlines = %d after 10 s, want about %d (one per stuckBackoff)", st.StuckDeadlines, want)
		}
		mu.Lock()
		if len(events) != int(st.StuckDeadlines) || len(events) == 0 || !strings.Contains(events[0].Err.Error(), "still due after Tick") {
			t.Errorf("%d EventStuckDeadline for %d stuck ticks; first %+v", len(events), st.StuckDeadlines, events[:min(1, len(events))])
		}
		mu.Unlock()
		if n := strings.Count(logs.String(), "keeps asking to be woken"); n != 1 {
			t.Errorf("the stuck deadline was logged %d times, want once:\n%s", n, logs.String())
		}
		// The node still works: a broadcast from a reaches b.
		if _, err := nodes["a"].Broadcast(context.Background(), []byte("still alive")); err != nil {
			t.Fatal(err)
		}
		watchdog.Waiting(t, "b to deliver a's broadcast")
		select {
		case d := <-nodes["b"].Deliveries():
			if string(d.Value) != "still alive" {
				t.Errorf("b delivered %q", d.Value)
			}
		case <-time.After(5 * time.Second):
			t.Error("b did not deliver a's broadcast within 5 s")
		}
	})
}
