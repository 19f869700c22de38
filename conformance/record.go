package conformance

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/plumtree-go/plumtree/codec"
	"github.com/plumtree-go/plumtree/compressor"
	"github.com/plumtree-go/plumtree/membership"
)

// Failure is a rule an adapter broke, as the Check functions report it.
type Failure struct {
	// Subtest is the rule's name, as in the Subtests lists ("" for a
	// failure of the suite itself, such as a bad Skip).
	Subtest string
	// Rule is the contract, in one sentence.
	Rule string
	// Messages say what the suite saw.
	Messages []string
}

// String gives the rule's name and what the suite saw.
func (f Failure) String() string {
	return fmt.Sprintf("%s: %s", f.Subtest, strings.Join(f.Messages, "; "))
}

// CheckTransport runs the rules of TestTransport outside `go test` (from a
// command, a playground, an Example) and returns the rules broken, in the
// order of TransportSubtests. mk receives a testing.TB that records what it
// is told; its Cleanup functions run when each subtest ends.
func CheckTransport(mk MakeNetwork, opts ...Option) []Failure {
	return check(transportSubtests, func(t tT) { testTransport(t, mk, opts) })
}

// CheckBroadcast runs the rules of TestBroadcast outside `go test`.
func CheckBroadcast[M BroadcastMembership](mk MakeNetwork, newMembership func(members ...membership.Member[string]) M, opts ...Option) []Failure {
	mm := func(members []membership.Member[string]) BroadcastMembership { return newMembership(members...) }
	return check(broadcastSubtests, func(t tT) { testBroadcast(t, mk, mm, opts) })
}

// CheckCodec runs the rules of TestCodec outside `go test`.
func CheckCodec[T any](makeCodec func() codec.Codec[T], samples []T, opts ...Option) []Failure {
	return check(codecSubtests, func(t tT) { testCodec(t, makeCodec, samples, opts) })
}

// CheckCompressor runs the rules of TestCompressor outside `go test`.
func CheckCompressor(makeCompressor func() compressor.Compressor, opts ...Option) []Failure {
	return check(compressorSubtests, func(t tT) { testCompressor(t, makeCompressor, opts) })
}

// CheckMembership runs the rules of TestMembership outside `go test`.
func CheckMembership[ID comparable](mk MakeCluster[ID], opts ...Option) []Failure {
	return check(membershipSubtests, func(t tT) { testMembership(t, mk, opts) })
}

// check runs a suite on a recorder and lists the failed subtests.
func check(subtests []Subtest, suite func(tT)) []Failure {
	rec := &record{failed: make(map[string][]string)}
	root := &recT{rec: rec}
	root.run(func() { suite(root) })
	var out []Failure
	for _, st := range subtests {
		if msgs, ok := rec.failed[st.Name]; ok {
			out = append(out, Failure{Subtest: st.Name, Rule: st.Rule, Messages: msgs})
		}
	}
	if root.Failed() && len(out) == 0 {
		out = append(out, Failure{Messages: root.msgs})
	}
	return out
}

// record collects the failed subtests of one suite run.
type record struct {
	mu     sync.Mutex
	failed map[string][]string // subtest name → messages
}

// recT stands in for *testing.T when a suite runs outside `go test`, and in
// this package's tests of the suites. It implements testing.TB (the embedded
// nil interface only supplies testing.TB's unexported method; every method
// is defined here).
type recT struct {
	testing.TB
	name string
	rec  *record

	mu       sync.Mutex
	failed   bool
	skipped  bool
	msgs     []string
	cleanups []func()
	ctx      context.Context
	cancel   context.CancelFunc
}

var _ testing.TB = (*recT)(nil)

// run runs f on a goroutine of its own, as the testing package runs a test,
// so that FailNow and SkipNow can end it, then runs the cleanups.
func (r *recT) run(f func()) {
	r.ctx, r.cancel = context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			r.cancel()
			r.mu.Lock()
			fs := r.cleanups
			r.cleanups = nil
			r.mu.Unlock()
			for i := len(fs) - 1; i >= 0; i-- {
				fs[i]()
			}
		}()
		f()
	}()
	<-done
}

func (r *recT) std() testing.TB { return r }

func (r *recT) Run(name string, f func(tT)) bool {
	child := &recT{name: strings.TrimPrefix(r.name+"/"+name, "/"), rec: r.rec}
	child.run(func() { f(child) })
	if child.Failed() {
		r.Fail()
		r.rec.mu.Lock()
		r.rec.failed[child.name] = append(r.rec.failed[child.name], child.msgs...)
		r.rec.mu.Unlock()
	}
	return !child.Failed()
}

func (r *recT) Helper()      {}
func (r *recT) Name() string { return r.name }
func (r *recT) Fail() {
	r.mu.Lock()
	r.failed = true
	r.mu.Unlock()
}
func (r *recT) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}
func (r *recT) FailNow() {
	r.Fail()
	runtime.Goexit()
}
func (r *recT) Error(args ...any) { r.Errorf("%s", fmt.Sprint(args...)) }
func (r *recT) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = true
	r.msgs = append(r.msgs, fmt.Sprintf(format, args...))
}
func (r *recT) Fatal(args ...any) { r.Error(args...); runtime.Goexit() }
func (r *recT) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}
func (r *recT) Log(args ...any)                 {}
func (r *recT) Logf(format string, args ...any) {}
func (r *recT) Skip(args ...any)                { r.SkipNow() }
func (r *recT) Skipf(format string, args ...any) {
	r.SkipNow()
}
func (r *recT) SkipNow() {
	r.mu.Lock()
	r.skipped = true
	r.mu.Unlock()
	runtime.Goexit()
}
func (r *recT) Skipped() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.skipped
}
func (r *recT) Cleanup(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, f)
}
func (r *recT) Context() context.Context { return r.ctx }
func (r *recT) TempDir() string {
	dir, err := os.MkdirTemp("", "conformance")
	if err != nil {
		r.Fatalf("TempDir: %v", err)
	}
	r.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
func (r *recT) Setenv(key, value string) {
	r.Fatalf("Setenv(%q) is not available outside go test", key)
}
func (r *recT) Chdir(dir string) {
	r.Fatalf("Chdir(%q) is not available outside go test", dir)
}
func (r *recT) Attr(key, value string) {}
func (r *recT) Output() io.Writer      { return io.Discard }
func (r *recT) ArtifactDir() string    { return r.TempDir() }
