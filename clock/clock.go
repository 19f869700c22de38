// Package clock is the module's one source of time: the Clock a gossip
// node's runner reads and sets its timer from (gossip.Options.Clock), that
// transport/chaos delays traffic by (chaos.Config.Clock), and that
// transport/seal stamps and judges frames with (seal.WithClock).
//
// The default everywhere is System, package time, which inside a
// testing/synctest bubble is the bubble's fake clock: a test rarely needs a
// Clock of its own. The gossip engine never reads a clock; its runner
// passes it the time.
//
// This package is a port: it must never import anything of this module.
package clock

import "time"

// Clock is a source of time and timers.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTimer returns a timer that fires after d, sending the time on
	// its C, as time.NewTimer does.
	NewTimer(d time.Duration) Timer
	// AfterFunc calls f in its own goroutine after d, as time.AfterFunc
	// does. It must never call f before returning: callers may hold a lock
	// that f takes.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a timer started by a Clock.
type Timer interface {
	// C delivers the time when a timer of NewTimer fires; it is nil for a
	// timer of AfterFunc.
	C() <-chan time.Time
	// Reset changes the timer to fire after d. It is called only on a
	// timer that has fired and been drained, or been stopped.
	Reset(d time.Duration)
	// Stop prevents the timer from firing; it reports whether it did
	// (false when it has fired, or its function has run or is running).
	Stop() bool
}

// System is the Clock of package time.
type System struct{}

var _ Clock = System{}

// Now returns time.Now().
func (System) Now() time.Time { return time.Now() }

// NewTimer returns a time.Timer.
func (System) NewTimer(d time.Duration) Timer { return sysTimer{time.NewTimer(d)} }

// AfterFunc returns time.AfterFunc(d, f).
func (System) AfterFunc(d time.Duration, f func()) Timer { return sysTimer{time.AfterFunc(d, f)} }

type sysTimer struct{ t *time.Timer }

func (t sysTimer) C() <-chan time.Time   { return t.t.C }
func (t sysTimer) Reset(d time.Duration) { t.t.Reset(d) }
func (t sysTimer) Stop() bool            { return t.t.Stop() }
