package bench

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// due publishes what is due at each wake-up: at most what fell due while
// the pacer slept plus one tick's worth, and never less than two ticks'
// worth.
func TestPacerDue(t *testing.T) {
	p := newPacer(100) // a 10 ms tick, one per tick
	if p.tick != 10*time.Millisecond || p.perTick != 1 {
		t.Fatalf("pacer(100/s) tick %v, %v per tick; want 10ms, 1", p.tick, p.perTick)
	}
	const tick = 10 * time.Millisecond
	for _, c := range []struct {
		elapsed time.Duration
		sent    int
		slept   time.Duration
		want    int
	}{
		{0, 0, 0, 1},                        // the first is due at once
		{5 * time.Millisecond, 1, tick, 0},  // the second at 10 ms
		{10 * time.Millisecond, 1, tick, 1}, //
		{100 * time.Millisecond, 1, 0, 2},   // behind after a slow Publish: one tick's catch-up
		{100 * time.Millisecond, 1, tick, 2},
		{100 * time.Millisecond, 1, 5 * tick, 6}, // a late wake-up: what fell due while asleep, plus one
		{100 * time.Millisecond, 20, tick, 0},    // ahead (never happens): nothing
	} {
		if got := p.due(c.elapsed, c.sent, c.slept); got != c.want {
			t.Errorf("due(%v, %d, slept %v) = %d, want %d", c.elapsed, c.sent, c.slept, got, c.want)
		}
	}
	fast := newPacer(8000) // ticks of the 1 ms minimum, 8 per tick
	if fast.tick != minTick || fast.perTick != 8 {
		t.Fatalf("pacer(8000/s) tick %v, %v per tick; want 1ms, 8", fast.tick, fast.perTick)
	}
	if got := fast.due(time.Second, 0, minTick); got != 16 {
		t.Errorf("due(1s, 0, slept 1ms) at 8000/s = %d, want 16", got)
	}
}

// On time, the pacer reaches its rate exactly; after a slow Publish it
// catches up over the following ticks, never publishing more than two
// ticks' worth at once, and every publication is made in order.
func TestPacerRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPacer(100)
		var got []int
		first, last, err := p.run(context.Background(), 50, func(k int) error {
			got = append(got, k)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 50 || got[49] != 49 {
			t.Fatalf("published %v", got)
		}
		if span := last.Sub(first); span != 490*time.Millisecond {
			t.Errorf("50 at 100/s span %v, want 490ms", span)
		}
		if r := achievedRate(50, first, last, 100); r != 100 {
			t.Errorf("achieved %v/s, want 100", r)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		p := newPacer(100)
		var times []time.Duration
		start := time.Now()
		_, _, err := p.run(context.Background(), 40, func(k int) error {
			times = append(times, time.Since(start))
			if k == 10 {
				<-time.After(100 * time.Millisecond) // a slow Publish (virtual time)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(times) != 40 {
			t.Fatalf("published %d, want 40", len(times))
		}
		perInstant := map[time.Duration]int{}
		for _, d := range times {
			perInstant[d]++
		}
		for d, c := range perInstant {
			if c > 2 {
				t.Errorf("%d publications at %v: a burst beyond one tick's catch-up", c, d)
			}
		}
		// Caught up: the last one is due at 390 ms; the 10 missed during the
		// stall take 10 extra ticks to recover, not more.
		if end := times[39]; end > 400*time.Millisecond {
			t.Errorf("last publication at %v, want by 400ms (caught up)", end)
		}
	})
}
