package gossip

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/plumtree-go/plumtree/internal/watchdog"
	"github.com/plumtree-go/plumtree/transport/mem"
)

// A cut that outlasts the caches leaves holes no node can fill: here the
// origin, cut off, sends 70 messages and its cache (60 messages) forgets
// the first 10 of them before the cut heals. Later a receiver misses one
// message altogether (it is cut off alone while the message goes round,
// so its announcements are lost too): only an exchange can bring it, and
// the exchanges' ranges name the whole cache, which this node has seen
// but for that one message. With one run of seen IDs per incarnation, the
// run ended at the holes, and each exchange looked at the cached IDs one
// by one, a token of the IHave rate limit each (a burst of 30 here), so
// that it never reached the last one: the message was never recovered.
// With runs on both sides of the holes, only the missing one is looked at.
func TestExchangeRecoversPastPermanentHoles(t *testing.T) {
	watchdog.Test(t, func(t *testing.T) {
		const n = 6
		cfg := DefaultConfig()
		cfg.MessageCacheMaxSize = 60
		cfg.IHaveRateLimitPerSecond, cfg.IHaveRateLimitBurst = 10, 30
		cfg.ExchangeInterval = 200 * time.Millisecond
		c := newOrderCluster(t, n, cfg, mem.Config{Latency: time.Millisecond}, 21)
		origin, late := c.nodes[0], c.nodes[n-1]
		k := 0
		send := func(count int) MessageID {
			var id MessageID
			for range count {
				id = c.send(origin, k)
				k++
				time.Sleep(10 * time.Millisecond)
			}
			return id
		}
		send(5)
		time.Sleep(time.Second)
		c.net.Partition([]string{origin.id}, c.addrsBut(origin.id))
		send(40) // the first 10 are lost for good: the origin's cache keeps 60
		send(30)
		c.net.Heal()
		time.Sleep(graftHorizon(cfg)) // the other 30 of the cut are recovered
		send(40)
		time.Sleep(time.Second)
		c.net.Partition([]string{late.id}, c.addrsBut(late.id))
		missed := send(1)
		time.Sleep(time.Second) // its announcements went out, and were lost
		c.net.Heal()
		healed := time.Now()
		time.Sleep(20 * cfg.ExchangeInterval)
		synctest.Wait()
		var got bool
		for _, d := range late.deliveries() {
			if d.seq == missed.Seq() {
				got = true
			}
		}
		if !got {
			st, _ := late.pt.Stats()
			t.Fatalf("%s never recovered message %d, missed while it was cut off, in %v of exchanges after the cut healed (stats %+v)",
				late.id, missed.Seq(), time.Since(healed), st)
		}
	})
}
