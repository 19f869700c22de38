package bench

import (
	"context"
	"math"
	"time"
)

// pacer spreads count publications at rate per second over ticks of a
// ticker. At each wake-up it publishes what the schedule says is due by
// then, within a limit: what falls due over the time it slept, plus one
// tick's worth. So a late wake-up (a loaded machine delays timers) does not
// lower the rate, while a backlog left by a slow Publish (the system
// pushing back) is caught up over the following ticks, at most one tick's
// worth per tick, instead of in one burst. The achieved rate says whether
// it kept up.
type pacer struct {
	rate    float64       // publications per second
	tick    time.Duration // ticker period
	perTick float64       // publications per tick
}

// minTick is the shortest tick: timers finer than a millisecond cost more
// than they are worth and are not kept on a loaded machine anyway.
const minTick = time.Millisecond

func newPacer(rate float64) pacer {
	tick := max(time.Duration(float64(time.Second)/rate), minTick)
	return pacer{rate: rate, tick: tick, perTick: rate * tick.Seconds()}
}

// due returns how many publications to make at elapsed time since the
// schedule's start, when sent have been made so far and the pacer slept
// for slept since its last publication. The k-th publication (from 0) is
// due at k/rate.
func (p pacer) due(elapsed time.Duration, sent int, slept time.Duration) int {
	want := int(elapsed.Seconds()*p.rate) + 1
	limit := int(math.Ceil(p.perTick)) + int(math.Ceil(slept.Seconds()*p.rate))
	limit = max(limit, int(2*p.perTick), 2)
	return min(max(want-sent, 0), limit)
}

// run calls publish(k) for k = 0..count-1 on schedule and returns the times
// of the first and last calls. It stops at the first error of publish.
func (p pacer) run(ctx context.Context, count int, publish func(k int) error) (first, last time.Time, err error) {
	t := time.NewTicker(p.tick)
	defer t.Stop()
	start := time.Now()
	first = start
	sent := 0
	var slept time.Duration
	for {
		n := p.due(time.Since(start), sent, slept)
		for range min(n, count-sent) {
			if err := publish(sent); err != nil {
				return first, last, err
			}
			last = time.Now()
			sent++
		}
		if sent >= count {
			return first, last, nil
		}
		asleep := time.Now()
		select {
		case <-t.C:
		case <-ctx.Done():
			return first, last, ctx.Err()
		}
		slept = time.Since(asleep)
	}
}

// achievedRate is the publication rate the pacer reached: count
// publications over the span from the first to the last, plus one interval
// (the last one's share).
func achievedRate(count int, first, last time.Time, rate float64) float64 {
	span := last.Sub(first).Seconds() + 1/rate
	return ratio(float64(count), span)
}
