package conformance

import "time"

// Option adjusts a suite run.
type Option func(*options)

type options struct {
	seed     uint64
	seedSet  bool
	watchdog time.Duration
	skip     map[string]string
	idle     time.Duration // how long the after-idle rules leave a link idle
	bubble   bool          // run each subtest in a testing/synctest bubble
	equal    any           // func(a, b T) bool for TestCodec
}

// Seed fixes the seed of the suite's random payloads (to repeat a failing
// run, pass the seed it logged). Without it a random seed is chosen and
// logged.
func Seed(seed uint64) Option {
	return func(o *options) { o.seed, o.seedSet = seed, true }
}

// Watchdog bounds how long one subtest may run before the suite fails it as
// hung and closes what it opened; default 60s. The bound breaks hangs: no
// rule of the suites depends on how fast an adapter is.
func Watchdog(d time.Duration) Option {
	return func(o *options) { o.watchdog = d }
}

// Skip skips the named subtest with a stated reason, for an adapter that
// does not offer what the subtest checks. Names are those listed by the
// suite's Subtests function; an unknown name or an empty reason fails the
// run. Capabilities found by type assertion (the datagram path, the stream
// path, statistics) need no Skip: a missing one is skipped with a reason, a
// claimed one is checked.
func Skip(name, reason string) Option {
	return func(o *options) {
		if o.skip == nil {
			o.skip = make(map[string]string)
		}
		o.skip[name] = reason
	}
}

// EqualFunc sets how TestCodec compares values; the default is
// reflect.DeepEqual. T must be the codec's type (protobuf messages, for
// instance, compare with proto.Equal).
func EqualFunc[T any](eq func(a, b T) bool) Option {
	return func(o *options) { o.equal = eq }
}

// DefaultIdle is how long the after-idle rules of TestTransport leave a link
// idle before they send again, unless IdleFor says otherwise.
const DefaultIdle = 250 * time.Millisecond

// IdleFor sets how long the after-idle rules of TestTransport leave a link
// idle before they send on it again (default DefaultIdle). An adapter that
// closes idle connections after a timeout should configure a short timeout
// in its test and give IdleFor a longer duration, so that the rules cross
// it. Inside a testing/synctest bubble (an adapter with no real sockets, such
// as transport/mem) the wait costs nothing, so hours are fine there.
func IdleFor(d time.Duration) Option {
	return func(o *options) { o.idle = d }
}

// InBubble runs each subtest of a suite inside a testing/synctest bubble of
// its own (synctest.Test), MakeNetwork included, so that the suite's timers
// run on virtual time: the watchdog fires only when everything is blocked,
// and IdleFor can be hours at no cost. It suits adapters with no real
// sockets or other I/O outside the process (transport/mem; real sockets
// never run in a bubble). The Check functions, which have no *testing.T,
// ignore it.
func InBubble() Option {
	return func(o *options) { o.bubble = true }
}
