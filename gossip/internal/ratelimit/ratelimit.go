// Package ratelimit is a token bucket driven by the caller's clock.
package ratelimit

import "time"

// Bucket holds up to Burst tokens and gains Rate tokens a second.
type Bucket struct {
	tokens float64
	last   time.Time
}

// Allow takes n tokens if the bucket has them at now, refilling at rate per
// second up to burst. A bucket never used before starts full.
func (b *Bucket) Allow(now time.Time, n, rate float64, burst int) bool {
	if b.last.IsZero() {
		b.tokens = float64(burst)
	} else if el := now.Sub(b.last); el > 0 {
		b.tokens = min(float64(burst), b.tokens+el.Seconds()*rate)
	}
	if now.After(b.last) || b.last.IsZero() {
		b.last = now
	}
	if b.tokens < n {
		return false
	}
	b.tokens -= n
	return true
}

// Wait is how long from now until the bucket holds n tokens at rate per
// second (0 if it holds them now). It does not take them.
func (b *Bucket) Wait(now time.Time, n, rate float64) time.Duration {
	if b.last.IsZero() {
		return 0
	}
	have := b.tokens
	if el := now.Sub(b.last); el > 0 {
		have += el.Seconds() * rate
	}
	if have >= n {
		return 0
	}
	return time.Duration((n - have) / rate * float64(time.Second))
}
