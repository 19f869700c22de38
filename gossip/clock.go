package gossip

import "time"

// Clock is the runner's source of time. The engine itself never reads a
// clock; the runner passes it the time. The default is the system clock,
// which inside a testing/synctest bubble is the bubble's fake clock.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTimer returns a timer that fires after d.
	NewTimer(d time.Duration) Timer
}

// Timer is a Clock's timer.
type Timer interface {
	// C delivers the time when the timer fires.
	C() <-chan time.Time
	// Reset changes the timer to fire after d. It is called only on a timer
	// that has fired and been drained, or been stopped.
	Reset(d time.Duration)
	// Stop stops the timer; it reports whether it stopped it before it
	// fired.
	Stop() bool
}

// SystemClock is the Clock of package time.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// NewTimer returns a time.Timer.
func (SystemClock) NewTimer(d time.Duration) Timer { return sysTimer{time.NewTimer(d)} }

type sysTimer struct{ t *time.Timer }

func (t sysTimer) C() <-chan time.Time   { return t.t.C }
func (t sysTimer) Reset(d time.Duration) { t.t.Reset(d) }
func (t sysTimer) Stop() bool            { return t.t.Stop() }
