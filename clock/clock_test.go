package clock_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/plumtree-go/plumtree/clock"
)

// System follows package time: inside a bubble, the bubble's clock.
func TestSystem(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var c clock.Clock = clock.System{}
		start := c.Now()
		tm := c.NewTimer(time.Second)
		fired := <-tm.C()
		if got := fired.Sub(start); got != time.Second {
			t.Errorf("NewTimer(1s) fired after %v", got)
		}
		tm.Reset(time.Minute)
		if !tm.Stop() {
			t.Error("Stop of a reset timer that had not fired reported false")
		}
		done := make(chan time.Duration, 1)
		af := c.AfterFunc(2*time.Second, func() { done <- c.Now().Sub(start) })
		if af.C() != nil {
			t.Error("an AfterFunc timer has a channel")
		}
		if got := <-done; got != 3*time.Second {
			t.Errorf("AfterFunc(2s) ran %v after start, want 3s", got)
		}
		if af.Stop() {
			t.Error("Stop of a timer whose function ran reported true")
		}
	})
}
