package gossip

import "github.com/plumtree-go/plumtree/clock"

// Clock is the runner's source of time: the module's one Clock (package
// clock). The engine itself never reads a clock; the runner passes it the
// time. The default is the system clock, which inside a testing/synctest
// bubble is the bubble's fake clock.
type Clock = clock.Clock

// Timer is a Clock's timer.
type Timer = clock.Timer

// SystemClock is the Clock of package time.
type SystemClock = clock.System
