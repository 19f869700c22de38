package topic

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/plumtree-go/plumtree/gossip"
	"github.com/plumtree-go/plumtree/internal/watchdog"
	"github.com/plumtree-go/plumtree/transport/mem"
)

// Isolation: links of isoBandwidth bytes per second (transport/mem's
// StreamBandwidth, so that the run is deterministic in virtual time), two
// quiet topics carrying isoQuietSize-byte messages by stream, and in the
// flooded run a third topic whose publishers offer far more than the
// links carry.
const (
	isoNodes     = 10
	isoBandwidth = 2 << 20
	isoQuietSize = 4 << 10
	isoFloodSize = 16 << 10
	isoDuration  = 5 * time.Second
)

// isoResult is the quiet topics' last-delivery latencies, one per
// broadcast, and how much the flood topic moved.
type isoResult struct {
	last      []time.Duration
	floodSent int
	floodBusy int
}

func runIsolation(t *testing.T, flood bool) (res isoResult) {
	cfg := gossip.LANConfig()
	cfg.GossipDatagramMaxSize = 512 // the quiet topics' messages go by stream, where the flood is
	c := newCluster(t, isoNodes, 3, cfg, mem.Config{Latency: 2 * time.Millisecond, StreamBandwidth: isoBandwidth}, 22)
	for i := range isoNodes {
		for k := range 3 {
			c.subscribe(i, k)
		}
	}
	time.Sleep(time.Second)
	for range 3 { // warm-up: every origin's tree on the quiet topics
		for i := range isoNodes {
			for k := range 2 {
				c.broadcast(i, k, isoQuietSize)
				time.Sleep(5 * time.Millisecond)
			}
		}
	}
	time.Sleep(time.Second)
	start := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	if flood {
		// Three publishers on topic 2, each as fast as its node lets it:
		// 3 × 16 KiB per message, each copied to every tree edge, against
		// 2 MiB/s links.
		for _, i := range []int{0, 3, 6} {
			wg.Go(func() {
				tp := c.nodes[i].topics[2]
				payload := make([]byte, isoFloodSize)
				for ctx.Err() == nil {
					_, err := tp.Broadcast(ctx, payload)
					mu.Lock()
					if err == nil {
						res.floodSent++
					} else if errors.Is(err, gossip.ErrBusy) {
						res.floodBusy++
					}
					mu.Unlock()
				}
			})
		}
	}
	watchdog.Waiting(t, "quiet topics' broadcasts (flood %v)", flood)
	var quiet []sentMsg
	for time.Since(start) < isoDuration {
		k := c.rng.IntN(2)
		i := c.rng.IntN(isoNodes)
		id := c.broadcast(i, k, isoQuietSize)
		quiet = append(quiet, sentMsg{id: id, topic: k, origin: i, at: time.Now()})
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	time.Sleep(3 * time.Second)
	synctest.Wait()
	for _, m := range quiet {
		var last time.Duration
		for i := range isoNodes {
			if i == m.origin {
				continue
			}
			at, ok := c.deliveredAt(i, m.id)
			if !ok {
				t.Errorf("flood %v: %s never delivered a quiet broadcast on %s", flood, c.nodes[i].id, c.names[m.topic])
				continue
			}
			last = max(last, at.Sub(m.at))
		}
		res.last = append(res.last, last)
	}
	return res
}

// TestIsolation: one topic flooded beyond what the links carry does not
// slow the others: their last-delivery p99 stays within 2x of the run
// without the flood. Each topic's Plumtree has its own per-peer send queue
// and sender; the real transport's per-link turn is taken in arrival
// order, so a quiet topic's frame waits for at most one flood frame per
// link.
func TestIsolation(t *testing.T) {
	var base, flooded isoResult
	watchdog.Test(t, func(t *testing.T) { base = runIsolation(t, false) })
	watchdog.Test(t, func(t *testing.T) { flooded = runIsolation(t, true) })
	b50, b99 := percentile(base.last, 0.5), percentile(base.last, 0.99)
	f50, f99 := percentile(flooded.last, 0.5), percentile(flooded.last, 0.99)
	t.Logf("quiet topics' last delivery: unflooded p50 %v p99 %v; flooded p50 %v p99 %v (%.2fx); flood topic: 3 publishers calling Broadcast back to back had %d broadcasts of %d bytes taken in %v (%.1f MiB/s; the rest held back by flow control), %d refused busy",
		b50, b99, f50, f99, float64(f99)/float64(b99), flooded.floodSent, isoFloodSize, isoDuration,
		float64(flooded.floodSent*isoFloodSize)/isoDuration.Seconds()/(1<<20), flooded.floodBusy)
	if f99 > 2*b99 {
		t.Errorf("flooded p99 %v is over 2x the unflooded %v", f99, b99)
	}
	if flooded.floodSent == 0 {
		t.Errorf("the flood topic sent nothing: the run measured no flood")
	}
}
