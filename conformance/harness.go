package conformance

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	mrand "math/rand/v2"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// Subtest is one rule of a suite: the name of its subtest and the contract
// it checks, in one sentence. A failing subtest prints its rule.
type Subtest struct {
	Name string // the subtest's name, as Skip takes it
	Rule string // the contract it checks
}

// SeedEnv is the environment variable that fixes the seed when no Seed
// option is given, so a failure seen in CI can be repeated without editing
// the test.
const SeedEnv = "PLUMTREE_CONFORMANCE_SEED"

const defaultWatchdog = 60 * time.Second

// tT is the part of *testing.T the suites use. The public functions pass a
// *testing.T; this package's own tests pass a recorder, to show that the
// suites fail for broken adapters without failing themselves.
type tT interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
	Skipf(format string, args ...any)
	Failed() bool
	Cleanup(func())
	Name() string
	Run(name string, f func(tT)) bool
	// std is what MakeNetwork and MakeCluster are given.
	std() testing.TB
}

// stdT adapts *testing.T.
type stdT struct{ *testing.T }

func (s stdT) std() testing.TB { return s.T }

func (s stdT) Run(name string, f func(tT)) bool {
	return s.T.Run(name, func(t *testing.T) { f(stdT{t}) })
}

// suite is one run of a suite: its options, seed and rules.
type suite struct {
	kind  string
	o     options
	seed  uint64
	rules map[string]Subtest
}

func newSuite(t tT, kind string, subtests []Subtest, opts []Option) *suite {
	t.Helper()
	s := &suite{kind: kind, o: options{watchdog: defaultWatchdog}, rules: make(map[string]Subtest)}
	for _, opt := range opts {
		if opt != nil {
			opt(&s.o)
		}
	}
	if s.o.watchdog <= 0 {
		s.o.watchdog = defaultWatchdog
	}
	if s.o.idle <= 0 {
		s.o.idle = DefaultIdle
	}
	for _, st := range subtests {
		s.rules[st.Name] = st
	}
	switch {
	case s.o.seedSet:
		s.seed = s.o.seed
	case os.Getenv(SeedEnv) != "":
		v, err := strconv.ParseUint(os.Getenv(SeedEnv), 10, 64)
		if err != nil {
			t.Fatalf("conformance: %s=%q is not a uint64: %v", SeedEnv, os.Getenv(SeedEnv), err)
		}
		s.seed = v
	default:
		var b [8]byte
		_, _ = rand.Read(b[:])
		s.seed = binary.LittleEndian.Uint64(b[:])
	}
	t.Logf("%s conformance: seed %d (repeat with conformance.Seed(%d) or %s=%d)", kind, s.seed, s.seed, SeedEnv, s.seed)
	names := make([]string, 0, len(s.o.skip))
	for name := range s.o.skip {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if _, ok := s.rules[name]; !ok {
			t.Errorf("conformance: Skip(%q): %s has no such subtest; see %sSubtests()", name, kind, kind)
		}
		if strings.TrimSpace(s.o.skip[name]) == "" {
			t.Errorf("conformance: Skip(%q) gives no reason; say why the adapter does not offer it", name)
		}
	}
	return s
}

// run runs one rule as a subtest with a fresh case environment.
func (s *suite) run(t tT, name string, body func(c *caseEnv)) {
	t.Helper()
	rule, ok := s.rules[name]
	if !ok {
		panic("conformance: internal error: no rule named " + name)
	}
	t.Run(name, func(t tT) {
		if reason, ok := s.o.skip[name]; ok && strings.TrimSpace(reason) != "" {
			t.Skipf("skipped by the adapter: %s", reason)
		}
		if st, ok := t.(stdT); ok && s.o.bubble {
			// Each subtest in a bubble of its own: its timers (the
			// watchdog's, the idle waits) run on virtual time.
			synctest.Test(st.T, func(bt *testing.T) { s.runCase(stdT{bt}, name, rule, body) })
			return
		}
		s.runCase(t, name, rule, body)
	})
}

// runCase runs one rule's body with a fresh case environment.
func (s *suite) runCase(t tT, name string, rule Subtest, body func(c *caseEnv)) {
	{
		h := fnv.New64a()
		h.Write([]byte(s.kind + "/" + name))
		// A rule's idle wait (IdleFor) is time the watchdog gives on top.
		limit := s.o.watchdog + s.o.idle
		ctx, cancel := context.WithTimeout(context.Background(), limit)
		c := &caseEnv{t: t, ctx: ctx, rng: mrand.New(mrand.NewPCG(s.seed, h.Sum64())), watchdog: s.o.watchdog, idle: s.o.idle}
		stop := context.AfterFunc(ctx, c.fire)
		defer func() {
			stop()
			hung := ctx.Err() == context.DeadlineExceeded
			cancel()
			c.cleanup()
			c.waitSpawned()
			if hung {
				t.Errorf("watchdog: the subtest did not finish within %v; something it waited for hung (the suite closed what it had opened)", limit)
			}
			if t.Failed() {
				t.Errorf("broken rule %s: %s", name, rule.Rule)
			}
		}()
		// A panic in an adapter's call is that rule's failure, not the
		// end of the test binary.
		if err := protectPanic("a call of the case", func() { body(c) }); err != nil {
			t.Errorf("%v", err)
		}
	}
}

// caseEnv is what one subtest works with: its test, a context that the
// watchdog cancels, a seeded generator, and what to close at the end.
type caseEnv struct {
	t        tT
	ctx      context.Context
	rng      *mrand.Rand
	watchdog time.Duration
	idle     time.Duration

	spawned sync.WaitGroup

	mu       sync.Mutex
	onFire   []func()
	closers  []func()
	finished bool // the subtest is over: background errors are dropped
}

// spawn runs f on a goroutine of its own; the case waits for it (within the
// watchdog's duration) before it ends.
func (c *caseEnv) spawn(f func()) {
	c.spawned.Add(1)
	go func() {
		defer c.spawned.Done()
		if err := protectPanic("a call on the suite's goroutine", f); err != nil {
			c.bgErrorf("%v", err)
		}
	}()
}

// waitSpawned waits for the goroutines of spawn, then stops background
// errors from reaching the finished test.
func (c *caseEnv) waitSpawned() {
	done := make(chan struct{})
	go func() {
		c.spawned.Wait()
		close(done)
	}()
	timer := time.NewTimer(c.watchdog)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		c.t.Errorf("a call made by the suite on a goroutine of its own (a send) did not return within %v after the case closed its transports", c.watchdog)
	}
	c.mu.Lock()
	c.finished = true
	c.mu.Unlock()
}

// bgErrorf reports a failure from a goroutine other than the test's; once
// the case is over it is dropped (the testing package forbids it then).
func (c *caseEnv) bgErrorf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.finished {
		c.t.Errorf(format, args...)
	}
}

// fire runs when the watchdog expires: it closes everything the case
// opened, in the background, to unblock calls that ignore their context.
func (c *caseEnv) fire() {
	c.mu.Lock()
	fs := append([]func(){}, c.onFire...)
	c.mu.Unlock()
	for _, f := range fs {
		go func() { _ = protectPanic("a close after the watchdog fired", f) }()
	}
}

// atFire registers f to run (on a goroutine of its own) if the watchdog
// expires.
func (c *caseEnv) atFire(f func()) {
	c.mu.Lock()
	c.onFire = append(c.onFire, f)
	c.mu.Unlock()
}

// defer_ registers f to run when the case ends, last registered first.
func (c *caseEnv) defer_(f func()) {
	c.mu.Lock()
	c.closers = append(c.closers, f)
	c.mu.Unlock()
}

func (c *caseEnv) cleanup() {
	c.mu.Lock()
	fs := c.closers
	c.closers = nil
	c.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

// expired reports whether the watchdog has fired.
func (c *caseEnv) expired() bool { return c.ctx.Err() != nil }

// fatalIfExpired ends the case if the watchdog has fired while waiting for
// what.
func (c *caseEnv) fatalIfExpired(what string) {
	c.t.Helper()
	if c.expired() {
		c.t.Fatalf("watchdog fired while %s", what)
	}
}

// within runs f on its own goroutine and waits for it or the watchdog. It
// reports whether f returned; if it did not, f is left running (the
// watchdog has already closed what the case opened).
func (c *caseEnv) within(what string, f func()) bool {
	c.t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := protectPanic(what, f); err != nil {
			c.bgErrorf("%v", err)
		}
	}()
	select {
	case <-done:
		return true
	case <-c.ctx.Done():
		c.t.Errorf("%s did not return before the watchdog fired (%v)", what, c.watchdog)
		return false
	}
}

// payload returns n seeded random bytes.
func (c *caseEnv) payload(n int) []byte {
	var seed [32]byte
	for i := 0; i < len(seed); i += 8 {
		binary.LittleEndian.PutUint64(seed[i:], c.rng.Uint64())
	}
	b := make([]byte, n)
	_, _ = mrand.NewChaCha8(seed).Read(b)
	return b
}

// protectPanic runs f and turns a panic into an error that names what was
// called.
func protectPanic(what string, f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			buf := make([]byte, 8<<10)
			buf = buf[:runtime.Stack(buf, false)]
			err = fmt.Errorf("%s panicked: %v\n%s", what, r, buf)
		}
	}()
	f()
	return nil
}

// isCtxErr reports whether err is a context cancellation or deadline.
func isCtxErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
