// Package watchdog makes a stuck test fail within a minute, with a message
// that names what it was waiting for, instead of hanging until go test's
// -timeout (ten minutes, then a bare stack dump of every goroutine).
//
// Inside a testing/synctest bubble a spin is the usual hang: a goroutine of
// the bubble that never blocks (a runner ticking an engine whose deadline
// stays in the past) keeps the virtual clock from advancing, so every
// timer, every time.Sleep of the test and every watchdog inside the bubble
// waits forever. Only a goroutine outside the bubble, on the real clock, can
// see it. Test is synctest.Test with such a watcher: a goroutine inside the
// bubble beats on the virtual clock, one outside checks the beats on the
// real clock, and if the virtual clock has not moved for Limit the run is
// stopped with a panic that says what the test waits for (Waiting) and the
// stacks of the goroutines that were running. For code that runs without a
// bubble (the simulator), Start watches progress reported with Beat.
//
// A stuck test cannot be failed the ordinary way: t.FailNow must run on
// the test's goroutine, which is the one waiting. So the watchdog panics,
// which ends the test binary (and go test reports the package as failed,
// with the message).
//
// It is for tests only; nothing in the library imports it.
package watchdog

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// Limit is how long, on the real clock, a watched run may go without
// progress. Under -race on two busy cores the slowest instant of the
// cluster tests (many nodes handling a burst at one virtual time) takes a
// few seconds; 45 s leaves room and still fails within a minute.
var Limit = 45 * time.Second

// VirtualLimit is how far the virtual clock of a Test may run. With the
// watchdog's beat in the bubble, a bubble whose other goroutines are all
// blocked for good no longer deadlocks (synctest would panic on it): the
// beat would move the clock forever. No test of this module needs an hour.
var VirtualLimit = time.Hour

// beat is how often, on the virtual clock, the bubble's beat goroutine
// records progress.
const beat = 100 * time.Millisecond

// Dog watches one run.
type Dog struct {
	name  string
	beats atomic.Uint64
	mu    sync.Mutex
	what  string    // what the run waits for now
	virt  time.Time // the virtual time of the last beat (Test only)
	start time.Time // the virtual time the bubble started at (Test only)
	stop  chan struct{}
	done  chan struct{}
	limit time.Duration
}

var (
	regMu sync.Mutex
	reg   = map[testing.TB]*Dog{}
)

// Test is synctest.Test(t, f) with a watchdog: if the bubble's virtual
// clock stops for Limit of real time, the run is stopped with a message
// naming the test, the virtual time and what it waited for.
func Test(t *testing.T, f func(*testing.T)) {
	t.Helper()
	d := newDog(t.Name(), Limit)
	defer d.Stop()
	synctest.Test(t, func(bt *testing.T) {
		regMu.Lock()
		reg[bt] = d
		regMu.Unlock()
		defer func() {
			regMu.Lock()
			delete(reg, bt)
			regMu.Unlock()
		}()
		d.mu.Lock()
		d.start, d.virt = time.Now(), time.Now()
		d.mu.Unlock()
		stop := make(chan struct{})
		beaten := make(chan struct{})
		go func() {
			defer close(beaten)
			tk := time.NewTicker(beat)
			defer tk.Stop()
			for {
				select {
				case <-stop:
					return
				case now := <-tk.C:
					d.mu.Lock()
					d.virt = now
					over := now.Sub(d.start) > VirtualLimit
					what := d.what
					d.mu.Unlock()
					d.beats.Add(1)
					if over {
						panic(fmt.Sprintf("watchdog: %s: the virtual clock ran past %v while waiting for %s: the test's goroutines are all blocked for good (a deadlock, which the watchdog's own beat hides from synctest)",
							d.name, VirtualLimit, orNothing(what)))
					}
				}
			}
		}()
		defer func() { close(stop); <-beaten }()
		f(bt)
	})
}

// Start watches a run outside a bubble: call Beat as it progresses, and
// Stop at its end. If no Beat comes for Limit, the run is stopped with a
// message naming what it waited for.
func Start(t testing.TB, what string) *Dog {
	d := newDog(t.Name(), Limit)
	d.what = what
	regMu.Lock()
	reg[t] = d
	regMu.Unlock()
	t.Cleanup(func() {
		d.Stop()
		regMu.Lock()
		delete(reg, t)
		regMu.Unlock()
	})
	return d
}

// Waiting records what the test watched by t now waits for; the message of
// a stuck run names it. A t with no watchdog is ignored.
func Waiting(t testing.TB, format string, args ...any) {
	regMu.Lock()
	d := reg[t]
	regMu.Unlock()
	if d != nil {
		d.Waiting(format, args...)
	}
}

// Waiting records what the run waits for now.
func (d *Dog) Waiting(format string, args ...any) {
	d.mu.Lock()
	d.what = fmt.Sprintf(format, args...)
	d.mu.Unlock()
}

// Beat records progress.
func (d *Dog) Beat() { d.beats.Add(1) }

// Stop ends the watch. It is safe to call more than once.
func (d *Dog) Stop() {
	select {
	case <-d.stop:
	default:
		close(d.stop)
	}
	<-d.done
}

func newDog(name string, limit time.Duration) *Dog {
	d := &Dog{name: name, stop: make(chan struct{}), done: make(chan struct{}), limit: limit}
	go d.watch()
	return d
}

// watch runs outside any bubble, on the real clock.
func (d *Dog) watch() {
	defer close(d.done)
	step := min(time.Second, d.limit/4)
	tk := time.NewTicker(step)
	defer tk.Stop()
	last, since := d.beats.Load(), time.Now()
	for {
		select {
		case <-d.stop:
			return
		case now := <-tk.C:
			if b := d.beats.Load(); b != last {
				last, since = b, now
				continue
			}
			if now.Sub(since) < d.limit {
				continue
			}
			d.fail(now.Sub(since))
		}
	}
}

func (d *Dog) fail(stuck time.Duration) {
	d.mu.Lock()
	what, virt, start := d.what, d.virt, d.start
	d.mu.Unlock()
	msg := fmt.Sprintf("watchdog: %s made no progress for %v (real time) while waiting for %s", d.name, stuck.Round(time.Second), orNothing(what))
	if !start.IsZero() {
		msg += fmt.Sprintf("; its synctest clock stopped at %v after the start: a goroutine of the bubble never blocks (a runner ticking a deadline in the past, a busy loop)", virt.Sub(start))
	}
	fmt.Fprintf(os.Stderr, "\n%s\n\ngoroutines running or runnable:\n%s\n", msg, busyStacks())
	panic(msg)
}

func orNothing(what string) string {
	if what == "" {
		return "(nothing named: call watchdog.Waiting)"
	}
	return what
}

// busyStacks returns the stacks of the goroutines that were running or
// runnable (the spinning ones), at most 20 of them.
func busyStacks() string {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		head, _, _ := bytes.Cut(g, []byte("\n"))
		if (bytes.Contains(head, []byte("[running")) || bytes.Contains(head, []byte("[runnable"))) &&
			!bytes.Contains(g, []byte("watchdog.busyStacks")) {
			out = append(out, string(g))
		}
		if len(out) == 20 {
			break
		}
	}
	if len(out) == 0 {
		return "(none)"
	}
	return strings.Join(out, "\n\n")
}
