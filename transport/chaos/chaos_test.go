package chaos_test

// Each fault, proved on transport/mem inside a testing/synctest bubble:
// time is virtual, so delays are exact and nothing depends on the machine's
// speed.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/plumtree-go/plumtree/transport"
	"github.com/plumtree-go/plumtree/transport/chaos"
	"github.com/plumtree-go/plumtree/transport/mem"
)

// node is a wrapped mem transport with both paths.
type node struct {
	chaos.Wrapped
	transport.Datagram
	transport.Stream
}

// LocalAddr and Close resolve the ambiguity of the embedded interfaces.
func (n node) LocalAddr() string { return n.Wrapped.LocalAddr() }
func (n node) Close() error      { return n.Wrapped.Close() }

// env is one test's networks.
type env struct {
	t   *testing.T
	mem *mem.Network
	cn  *chaos.Network
}

func newEnv(t *testing.T, cfg chaos.Config) *env {
	t.Helper()
	cn, err := chaos.New(cfg)
	if err != nil {
		t.Fatalf("chaos.New: %v", err)
	}
	return &env{t: t, mem: mem.NewNetwork(mem.Config{}), cn: cn}
}

// open listens on addr, wraps the transport and closes it at the end of
// the test.
func (e *env) open(addr string) node {
	e.t.Helper()
	tr, err := e.mem.Listen(addr)
	if err != nil {
		e.t.Fatalf("Listen(%q): %v", addr, err)
	}
	w, err := e.cn.Wrap(tr)
	if err != nil {
		e.t.Fatalf("Wrap: %v", err)
	}
	e.t.Cleanup(func() { w.Close() })
	return node{w, w.(transport.Datagram), w.(transport.Stream)}
}

func (e *env) rules(rules ...chaos.Rule) {
	e.t.Helper()
	if err := e.cn.SetRules(rules...); err != nil {
		e.t.Fatalf("SetRules: %v", err)
	}
}

// seq is a payload carrying the number i.
func seq(i int) []byte { return binary.BigEndian.AppendUint32(nil, uint32(i)) }

func seqOf(t *testing.T, m transport.Message) int {
	t.Helper()
	if len(m.Data) != 4 {
		t.Fatalf("a %d-byte message arrived; every payload here has 4", len(m.Data))
	}
	return int(binary.BigEndian.Uint32(m.Data))
}

// drain returns every message that has arrived on ch once the bubble is
// idle. Call it inside the bubble.
func drain(ch <-chan transport.Message) []transport.Message {
	var got []transport.Message
	for {
		synctest.Wait()
		select {
		case m, ok := <-ch:
			if !ok {
				return got
			}
			got = append(got, m)
		default:
			return got
		}
	}
}

func seqs(t *testing.T, ms []transport.Message) []int {
	t.Helper()
	out := make([]int, 0, len(ms))
	for _, m := range ms {
		out = append(out, seqOf(t, m))
	}
	return out
}

func sendDatagrams(t *testing.T, from node, to string, first, n int) {
	t.Helper()
	for i := first; i < first+n; i++ {
		if err := from.SendDatagram(context.Background(), to, seq(i)); err != nil {
			t.Fatalf("SendDatagram %d: %v", i, err)
		}
	}
}

func sendFrames(t *testing.T, from node, to string, first, n int) {
	t.Helper()
	for i := first; i < first+n; i++ {
		if err := from.SendFrame(context.Background(), to, seq(i)); err != nil {
			t.Fatalf("SendFrame %d: %v", i, err)
		}
	}
}

func upTo(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

// A drop probability of 1 loses every datagram and fails every frame, and
// each is counted, on the transport and on the network.
func TestDropAll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, chaos.Config{Seed: 1, Rules: []chaos.Rule{{Drop: 1}}})
		a, b := e.open("a"), e.open("b")
		sendDatagrams(t, a, "b", 0, 100)
		for i := range 10 {
			err := a.SendFrame(context.Background(), "b", seq(i))
			if !errors.Is(err, chaos.ErrInjected) {
				t.Fatalf("SendFrame with Drop 1: %v, want an error wrapping chaos.ErrInjected", err)
			}
		}
		if got := drain(b.Datagrams()); len(got) != 0 {
			t.Errorf("%d datagrams arrived with Drop 1", len(got))
		}
		if got := drain(b.Frames()); len(got) != 0 {
			t.Errorf("%d frames arrived with Drop 1", len(got))
		}
		want := chaos.Stats{Dropped: 110, Failed: 10}
		if f := a.Faults(); f != want {
			t.Errorf("a.Faults() = %+v, want %+v", f, want)
		}
		if s := e.cn.Stats(); s != want {
			t.Errorf("Network.Stats() = %+v, want %+v", s, want)
		}
		if f := b.Faults(); f != (chaos.Stats{}) {
			t.Errorf("the receiver injected faults: %+v", f)
		}
		// The inner transport never saw them; the datagrams, accepted and
		// lost, count as dropped; the frames were refused, not accepted.
		if s := a.Wrapped.(transport.StatsReporter).Stats(); s.DatagramsSent != 0 || s.FramesSent != 0 || s.DatagramsDropped != 100 || s.FramesDropped != 0 {
			t.Errorf("Stats %+v: want nothing sent, 100 datagrams and no frame dropped", s)
		}
	})
}

// arrivals runs 300 datagrams a→b under a lossy, duplicating rule with seed
// and returns how many times each arrived. With noise, a's link to c carries
// traffic in between, which must not change the decisions on a→b.
func arrivals(t *testing.T, seed uint64, noise bool) []int {
	var counts []int
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, chaos.Config{Seed: seed, Rules: []chaos.Rule{{Drop: 0.3, Duplicate: 0.2}}})
		a, b, c := e.open("a"), e.open("b"), e.open("c")
		for i := range 300 {
			sendDatagrams(t, a, "b", i, 1)
			if noise && i%3 == 0 {
				sendDatagrams(t, a, "c", i, 2)
			}
		}
		counts = make([]int, 300)
		for _, m := range drain(b.Datagrams()) {
			counts[seqOf(t, m)]++
		}
		drain(c.Datagrams())
	})
	return counts
}

// Decisions are a function of the seed and the sequence of sends on the
// link: the same seed repeats them exactly, traffic on another link does not
// disturb them, and another seed changes them.
func TestSeededDecisionsRepeat(t *testing.T) {
	first := arrivals(t, 42, false)
	if again := arrivals(t, 42, false); !slices.Equal(first, again) {
		t.Fatalf("the same seed gave different decisions:\n%v\n%v", first, again)
	}
	if noisy := arrivals(t, 42, true); !slices.Equal(first, noisy) {
		t.Fatalf("traffic on another link changed the decisions on a→b:\n%v\n%v", first, noisy)
	}
	if other := arrivals(t, 43, false); slices.Equal(first, other) {
		t.Fatalf("seeds 42 and 43 gave the same 300 decisions")
	}
	var lost, twice int
	for _, c := range first {
		switch c {
		case 0:
			lost++
		case 2:
			twice++
		}
	}
	t.Logf("seed 42: %d of 300 lost, %d duplicated", lost, twice)
	if lost == 0 || twice == 0 {
		t.Fatalf("with Drop 0.3 and Duplicate 0.2, %d lost and %d duplicated: the rule did nothing", lost, twice)
	}
}

// A duplicate probability of 1 delivers every datagram twice; the stream
// path is never duplicated.
func TestDuplicate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, chaos.Config{Seed: 1, Rules: []chaos.Rule{{Duplicate: 1}}})
		a, b := e.open("a"), e.open("b")
		sendDatagrams(t, a, "b", 0, 50)
		sendFrames(t, a, "b", 0, 50)
		counts := make(map[int]int)
		for _, m := range drain(b.Datagrams()) {
			counts[seqOf(t, m)]++
		}
		for i := range 50 {
			if counts[i] != 2 {
				t.Fatalf("datagram %d arrived %d times, want 2", i, counts[i])
			}
		}
		if got := seqs(t, drain(b.Frames())); !slices.Equal(got, upTo(50)) {
			t.Fatalf("frames arrived as %v, want each once in order", got)
		}
		if f := a.Faults(); f.Duplicated != 50 {
			t.Fatalf("Faults().Duplicated = %d, want 50", f.Duplicated)
		}
	})
}

// A delay holds datagrams and frames for exactly the configured virtual
// time: not there a nanosecond before, there at the instant.
func TestDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const d = 250 * time.Millisecond
		e := newEnv(t, chaos.Config{Seed: 1, Rules: []chaos.Rule{{Delay: d}}})
		a, b := e.open("a"), e.open("b")
		sendDatagrams(t, a, "b", 0, 3)
		sendFrames(t, a, "b", 0, 3)
		time.Sleep(d - time.Nanosecond)
		if got := drain(b.Datagrams()); len(got) != 0 {
			t.Fatalf("%d datagrams arrived before the delay of %v", len(got), d)
		}
		if got := drain(b.Frames()); len(got) != 0 {
			t.Fatalf("%d frames arrived before the delay of %v", len(got), d)
		}
		time.Sleep(time.Nanosecond)
		if got := seqs(t, drain(b.Datagrams())); len(got) != 3 {
			t.Fatalf("at the delay, datagrams %v arrived, want 3", got)
		}
		if got := seqs(t, drain(b.Frames())); !slices.Equal(got, upTo(3)) {
			t.Fatalf("at the delay, frames %v arrived, want [0 1 2]", got)
		}
		if f := a.Faults(); f.Delayed != 6 {
			t.Fatalf("Faults().Delayed = %d, want 6", f.Delayed)
		}
	})
}

// arrivalTimes receives n messages from ch and returns the virtual time each
// took since start.
func arrivalTimes(t *testing.T, ch <-chan transport.Message, n int, start time.Time) map[int]time.Duration {
	t.Helper()
	at := make(map[int]time.Duration)
	for len(at) < n {
		m := <-ch // the bubble reports a deadlock if it never comes
		at[seqOf(t, m)] = time.Since(start)
	}
	return at
}

// Jitter spreads datagrams over [Delay, Delay+Jitter) with the uniform
// distribution, and never below Delay with the others.
func TestJitter(t *testing.T) {
	for _, dist := range []chaos.Distribution{chaos.Uniform, chaos.Normal, chaos.Exponential} {
		t.Run(dist.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const d, j, n = 10 * time.Millisecond, 20 * time.Millisecond, 200
				e := newEnv(t, chaos.Config{Seed: 7, Rules: []chaos.Rule{{Delay: d, Jitter: j, JitterDistribution: dist}}})
				a, b := e.open("a"), e.open("b")
				start := time.Now()
				sendDatagrams(t, a, "b", 0, n)
				at := arrivalTimes(t, b.Datagrams(), n, start)
				lo, hi := time.Duration(1<<62), time.Duration(0)
				for _, x := range at {
					lo, hi = min(lo, x), max(hi, x)
				}
				t.Logf("%v: arrivals between %v and %v", dist, lo, hi)
				if lo < d {
					t.Fatalf("a datagram arrived after %v, before the delay %v", lo, d)
				}
				if dist == chaos.Uniform && hi >= d+j {
					t.Fatalf("a datagram arrived after %v, past delay+jitter %v", hi, d+j)
				}
				if hi == lo {
					t.Fatalf("every datagram arrived after %v: no jitter", lo)
				}
			})
		})
	}
}

// A reordering rule changes the order datagrams arrive in, and loses none;
// a held datagram with nothing to overtake it goes after the window.
func TestReorder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, chaos.Config{Seed: 5, Rules: []chaos.Rule{{Path: transport.PathDatagram, Reorder: 0.3}}})
		a, b := e.open("a"), e.open("b")
		const n = 200
		sendDatagrams(t, a, "b", 0, n)
		sendFrames(t, a, "b", 0, n)
		time.Sleep(chaos.DefaultReorderWindow) // the last held ones go when their window ends
		got := seqs(t, drain(b.Datagrams()))
		sorted := slices.Sorted(slices.Values(got))
		if !slices.Equal(sorted, upTo(n)) {
			t.Fatalf("with reordering, datagrams %v arrived; want each of 0..%d once", got, n-1)
		}
		if slices.Equal(got, upTo(n)) {
			t.Fatalf("with Reorder 0.3, %d datagrams arrived in the order sent", n)
		}
		if f := a.Faults(); f.Reordered == 0 {
			t.Fatalf("Faults().Reordered is 0")
		}
		if frames := seqs(t, drain(b.Frames())); !slices.Equal(frames, upTo(n)) {
			t.Fatalf("frames arrived as %v: reordering touched the stream path", frames)
		}

		// One held datagram, nothing after it: it goes when the window ends.
		const window = 30 * time.Millisecond
		e.rules(chaos.Rule{Reorder: 1, ReorderWindow: window})
		start := time.Now()
		sendDatagrams(t, a, "b", 1000, 1)
		if got := arrivalTimes(t, b.Datagrams(), 1, start); got[1000] != window {
			t.Fatalf("a held datagram arrived after %v, want the window %v", got[1000], window)
		}

		// A held datagram is overtaken by the next one.
		e.rules(chaos.Rule{Reorder: 1})
		sendDatagrams(t, a, "b", 2000, 1)
		e.rules()
		sendDatagrams(t, a, "b", 2001, 1)
		if got := seqs(t, drain(b.Datagrams())); !slices.Equal(got, []int{2001, 2000}) {
			t.Fatalf("a held datagram and the next one arrived as %v, want [2001 2000]", got)
		}
	})
}

// On the stream path a delay with a wide jitter keeps frames in order: a
// frame is never due before the one sent before it.
func TestStreamOrderUnderDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, chaos.Config{Seed: 9, Rules: []chaos.Rule{{Delay: time.Millisecond, Jitter: 50 * time.Millisecond, JitterDistribution: chaos.Exponential}}})
		a, b, c := e.open("a"), e.open("b"), e.open("c")
		const n = 300
		start := time.Now()
		for i := range n {
			sendFrames(t, a, "b", i, 1)
			sendFrames(t, c, "b", n+i, 1)
			time.Sleep(time.Millisecond)
		}
		var fromA, fromC []int
		var last time.Duration
		for range 2 * n {
			m := <-b.Frames()
			if now := time.Since(start); now < last {
				t.Fatalf("time went backwards")
			} else {
				last = now
			}
			if m.From == "a" {
				fromA = append(fromA, seqOf(t, m))
			} else {
				fromC = append(fromC, seqOf(t, m)-n)
			}
		}
		if !slices.Equal(fromA, upTo(n)) || !slices.Equal(fromC, upTo(n)) {
			t.Fatalf("frames arrived out of order:\nfrom a %v\nfrom c %v", fromA, fromC)
		}
		if f := a.Faults(); f.Delayed != n {
			t.Fatalf("Faults().Delayed = %d, want %d", f.Delayed, n)
		}
	})
}

// A drop on the stream path fails like a broken connection: the frame and
// those waiting in the delay queue are lost, SendFrame says so, and the
// link works again afterwards.
func TestStreamDropFailsTheConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, chaos.Config{Seed: 1})
		a, b := e.open("a"), e.open("b")
		delay := chaos.Rule{Path: transport.PathStream, Delay: 100 * time.Millisecond}
		e.rules(delay)
		sendFrames(t, a, "b", 0, 5)
		time.Sleep(50 * time.Millisecond)
		e.rules(chaos.Rule{Drop: 1})
		if err := a.SendFrame(context.Background(), "b", seq(5)); !errors.Is(err, chaos.ErrInjected) {
			t.Fatalf("SendFrame with Drop 1: %v, want an error wrapping chaos.ErrInjected", err)
		}
		e.rules(delay)
		sendFrames(t, a, "b", 6, 2)
		time.Sleep(time.Second)
		if got := seqs(t, drain(b.Frames())); !slices.Equal(got, []int{6, 7}) {
			t.Fatalf("after the failure, frames %v arrived; want only those sent after it, [6 7]", got)
		}
		if f := a.Faults(); f.Dropped != 6 || f.Failed != 1 {
			t.Fatalf("Faults() = %+v; want 6 dropped (5 queued and the failed one), 1 failed", f)
		}
	})
}

// An error of the inner transport for a delayed frame comes back from the
// next SendFrame to that address.
func TestStreamDelayedErrorReported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, chaos.Config{Seed: 1, Rules: []chaos.Rule{{Delay: time.Millisecond}}})
		a := e.open("a")
		if err := a.SendFrame(context.Background(), "nobody", seq(0)); err != nil {
			t.Fatalf("a delayed SendFrame: %v; it should be queued", err)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		err := a.SendFrame(context.Background(), "nobody", seq(1))
		if !errors.Is(err, transport.ErrUnreachable) {
			t.Fatalf("the SendFrame after a delayed frame to nobody: %v, want an error wrapping transport.ErrUnreachable", err)
		}
		if f := a.Faults(); f.SendErrors != 1 {
			t.Fatalf("Faults().SendErrors = %d, want 1", f.SendErrors)
		}
	})
}

// A partition stops both paths in both directions between the groups and
// not within them; Heal restores everything.
func TestPartitionHeal(t *testing.T) {
	for _, mode := range []chaos.PartitionMode{chaos.PartitionFail, chaos.PartitionSilent} {
		t.Run(mode.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t, chaos.Config{Seed: 1, StreamPartition: mode})
				nodes := []node{e.open("a"), e.open("b"), e.open("c"), e.open("d")}
				left := func(i int) bool { return i < 2 }
				e.cn.Partition([]string{"a", "b"}, []string{"c", "d"})
				for i, x := range nodes {
					for j, y := range nodes {
						if i == j {
							continue
						}
						sendDatagrams(t, x, y.LocalAddr(), 10*i+j, 1)
						err := x.SendFrame(context.Background(), y.LocalAddr(), seq(10*i+j))
						switch {
						case left(i) == left(j) && err != nil:
							t.Fatalf("SendFrame %s→%s within a group: %v", x.LocalAddr(), y.LocalAddr(), err)
						case left(i) != left(j) && mode == chaos.PartitionFail &&
							!(errors.Is(err, transport.ErrUnreachable) && errors.Is(err, chaos.ErrPartitioned)):
							t.Fatalf("SendFrame %s→%s across the partition: %v, want an error wrapping ErrUnreachable and ErrPartitioned", x.LocalAddr(), y.LocalAddr(), err)
						case left(i) != left(j) && mode == chaos.PartitionSilent && err != nil:
							t.Fatalf("SendFrame %s→%s across a silent partition: %v, want nil", x.LocalAddr(), y.LocalAddr(), err)
						}
					}
				}
				for j, y := range nodes {
					var want []int
					for i := range nodes {
						if i != j && left(i) == left(j) {
							want = append(want, 10*i+j)
						}
					}
					if got := seqs(t, drain(y.Datagrams())); !slices.Equal(got, want) {
						t.Errorf("during the partition %s got datagrams %v, want %v (its own group only)", y.LocalAddr(), got, want)
					}
					if got := seqs(t, drain(y.Frames())); !slices.Equal(got, want) {
						t.Errorf("during the partition %s got frames %v, want %v", y.LocalAddr(), got, want)
					}
				}
				if s := e.cn.Stats(); s.Partitioned != 16 {
					t.Errorf("Stats().Partitioned = %d, want 16 (8 datagrams, 8 frames across)", s.Partitioned)
				}

				e.cn.Heal()
				for i, x := range nodes {
					for j, y := range nodes {
						if i != j {
							sendDatagrams(t, x, y.LocalAddr(), 10*i+j, 1)
							sendFrames(t, x, y.LocalAddr(), 10*i+j, 1)
						}
					}
				}
				for _, y := range nodes {
					if got := drain(y.Datagrams()); len(got) != 3 {
						t.Errorf("after Heal %s got %d datagrams, want 3", y.LocalAddr(), len(got))
					}
					if got := drain(y.Frames()); len(got) != 3 {
						t.Errorf("after Heal %s got %d frames, want 3", y.LocalAddr(), len(got))
					}
				}
			})
		})
	}
}

// Frames and datagrams waiting on a delay when a partition starts do not
// cross it.
func TestPartitionCatchesDelayedFrames(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, chaos.Config{Seed: 1, Rules: []chaos.Rule{{Delay: 100 * time.Millisecond}}})
		a, b := e.open("a"), e.open("b")
		sendDatagrams(t, a, "b", 0, 3)
		sendFrames(t, a, "b", 0, 3)
		e.cn.Partition([]string{"a"}, []string{"b"})
		time.Sleep(time.Second)
		if n := len(drain(b.Datagrams())) + len(drain(b.Frames())); n != 0 {
			t.Fatalf("%d delayed messages crossed a partition made while they waited", n)
		}
		if f := a.Faults(); f.Partitioned != 6 {
			t.Fatalf("Faults().Partitioned = %d, want 6", f.Partitioned)
		}
	})
}

// Rules select links by pattern and by function and paths; the first rule
// that matches decides.
func TestRuleSelection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, chaos.Config{Seed: 1})
		a, b1, b2, c := e.open("a"), e.open("b1"), e.open("b2"), e.open("c")
		e.rules(
			chaos.Rule{To: "b2"}, // b2 is spared: no fault
			chaos.Rule{To: "b*", Path: transport.PathDatagram, Drop: 1},
			chaos.Rule{Match: func(from, to string) bool { return from == "a" && to == "c" }, Drop: 1},
		)
		for _, to := range []string{"b1", "b2", "c"} {
			sendDatagrams(t, a, to, 0, 1)
			_ = a.SendFrame(context.Background(), to, seq(0))
		}
		count := func(n node) (int, int) { return len(drain(n.Datagrams())), len(drain(n.Frames())) }
		for _, tc := range []struct {
			n          node
			dg, frames int
		}{{b1, 0, 1}, {b2, 1, 1}, {c, 0, 0}} {
			if dg, fr := count(tc.n); dg != tc.dg || fr != tc.frames {
				t.Errorf("%s got %d datagrams and %d frames, want %d and %d", tc.n.LocalAddr(), dg, fr, tc.dg, tc.frames)
			}
		}
		// Reverse traffic matches no rule.
		sendDatagrams(t, c, "a", 0, 1)
		if got := drain(a.Datagrams()); len(got) != 1 {
			t.Errorf("c→a got %d datagrams, want 1", len(got))
		}
	})
}

// Invalid rules are refused, and the rules in force stay.
func TestInvalidRules(t *testing.T) {
	cn, err := chaos.New(chaos.Config{Rules: []chaos.Rule{{Drop: 0.5}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []chaos.Rule{
		{Drop: 1.5}, {Duplicate: -0.1}, {Reorder: 2}, {Delay: -1}, {Jitter: -1},
		{ReorderWindow: -1}, {Path: 9}, {JitterDistribution: 9}, {From: "["}, {To: "a[b"},
	} {
		if err := cn.SetRules(r); err == nil {
			t.Errorf("SetRules(%+v) accepted an invalid rule", r)
		}
		if _, err := chaos.New(chaos.Config{Rules: []chaos.Rule{r}}); err == nil {
			t.Errorf("New accepted an invalid rule %+v", r)
		}
	}
	if rs := cn.Rules(); len(rs) != 1 || rs[0].Drop != 0.5 {
		t.Errorf("after refused SetRules, Rules() = %+v", rs)
	}
	if _, err := chaos.New(chaos.Config{StreamPartition: 7}); err == nil {
		t.Errorf("New accepted an unknown StreamPartition")
	}
	if _, err := cn.Wrap(nil); err == nil {
		t.Errorf("Wrap(nil) succeeded")
	}
}

// Close drops what waits on a delay (counted as abandoned), unblocks a
// SendFrame waiting for room in the delay queue, closes the inner transport
// and leaves no goroutine behind (the bubble would not end otherwise).
func TestCloseAbandonsPending(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, chaos.Config{Seed: 1, StreamQueue: 4, Rules: []chaos.Rule{{Delay: time.Hour}}})
		a, b := e.open("a"), e.open("b")
		sendDatagrams(t, a, "b", 0, 3)
		sendFrames(t, a, "b", 0, 4)
		blocked := make(chan error)
		go func() { blocked <- a.SendFrame(context.Background(), "b", seq(4)) }()
		synctest.Wait()
		select {
		case err := <-blocked:
			t.Fatalf("SendFrame with the delay queue full returned %v, want it to block", err)
		default:
		}
		if err := a.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := <-blocked; !errors.Is(err, transport.ErrClosed) {
			t.Fatalf("a SendFrame blocked on the full delay queue got %v at Close, want ErrClosed", err)
		}
		if f := a.Faults(); f.Abandoned != 7 {
			t.Fatalf("Faults().Abandoned = %d, want 7 (3 datagrams, 4 frames)", f.Abandoned)
		}
		if s := a.Wrapped.(transport.StatsReporter).Stats(); s.DatagramsDropped != 3 || s.FramesDropped != 4 {
			t.Fatalf("Stats() after Close: %d datagrams and %d frames dropped, want the 3 and 4 abandoned", s.DatagramsDropped, s.FramesDropped)
		}
		if err := a.Unwrap().(transport.Datagram).SendDatagram(context.Background(), "b", nil); !errors.Is(err, transport.ErrClosed) {
			t.Fatalf("the inner transport after Close: %v, want it closed", err)
		}
		if err := a.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		time.Sleep(2 * time.Hour)
		if got := drain(b.Datagrams()); len(got) != 0 {
			t.Fatalf("%d datagrams arrived after their sender closed", len(got))
		}
	})
}

// Wrapping keeps the inner transport's capabilities, no more, no less.
func TestCapabilities(t *testing.T) {
	n := mem.NewNetwork(mem.Config{})
	cn, err := chaos.New(chaos.Config{})
	if err != nil {
		t.Fatal(err)
	}
	full, err := n.Listen("")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name                        string
		inner                       transport.Transport
		dg, st, stats, wantIdentity bool
	}{
		{"datagram+stream+stats", full, true, true, true, false},
		{"datagram", dgOnly{full}, true, false, false, false},
		{"stream+identity", stIdentity{full}, false, true, false, true},
		{"neither", bare{full}, false, false, false, false},
	} {
		w, err := cn.Wrap(tc.inner)
		if err != nil {
			t.Fatal(err)
		}
		_, dg := w.(transport.Datagram)
		_, st := w.(transport.Stream)
		_, stats := w.(transport.StatsReporter)
		if dg != tc.dg || st != tc.st || stats != tc.stats {
			t.Errorf("%s: wrapped has Datagram %v, Stream %v, StatsReporter %v; want %v, %v, %v", tc.name, dg, st, stats, tc.dg, tc.st, tc.stats)
		}
		id, ok := w.PeerIdentity("x")
		if ok != tc.wantIdentity || (ok && id != "id-of-x") {
			t.Errorf("%s: PeerIdentity = %q, %v", tc.name, id, ok)
		}
		if w.Unwrap() != tc.inner || w.LocalAddr() != full.LocalAddr() {
			t.Errorf("%s: Unwrap or LocalAddr does not give the inner transport's", tc.name)
		}
	}
	full.Close()
}

type bare struct{ t *mem.Transport }

func (b bare) LocalAddr() string { return b.t.LocalAddr() }
func (b bare) Close() error      { return b.t.Close() }

type dgOnly struct{ t *mem.Transport }

func (d dgOnly) LocalAddr() string                   { return d.t.LocalAddr() }
func (d dgOnly) Close() error                        { return d.t.Close() }
func (d dgOnly) MaxDatagramSize() int                { return d.t.MaxDatagramSize() }
func (d dgOnly) Datagrams() <-chan transport.Message { return d.t.Datagrams() }
func (d dgOnly) SendDatagram(ctx context.Context, addr string, b []byte) error {
	return d.t.SendDatagram(ctx, addr, b)
}

type stIdentity struct{ t *mem.Transport }

func (s stIdentity) LocalAddr() string                       { return s.t.LocalAddr() }
func (s stIdentity) Close() error                            { return s.t.Close() }
func (s stIdentity) MaxFrameSize() int                       { return s.t.MaxFrameSize() }
func (s stIdentity) Frames() <-chan transport.Message        { return s.t.Frames() }
func (s stIdentity) PeerIdentity(from string) (string, bool) { return "id-of-" + from, true }
func (s stIdentity) SendFrame(ctx context.Context, addr string, b []byte) error {
	return s.t.SendFrame(ctx, addr, b)
}

// Many goroutines send on both paths of several wrapped transports while
// another changes the rules and the partition: no data race (under -race),
// nothing arrives that was not sent, each sender's frames arrive in order,
// and Close stops everything.
func TestConcurrentUse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, chaos.Config{Seed: 11, StreamPartition: chaos.PartitionSilent})
		addrs := []string{"a", "b", "c"}
		var nodes []node
		for _, ad := range addrs {
			nodes = append(nodes, e.open(ad))
		}
		lossy := []chaos.Rule{
			{Path: transport.PathDatagram, Drop: 0.2, Duplicate: 0.2, Reorder: 0.2, Delay: time.Millisecond, Jitter: 5 * time.Millisecond},
			{Path: transport.PathStream, Delay: time.Millisecond, Jitter: 5 * time.Millisecond, JitterDistribution: chaos.Normal},
		}
		e.rules(lossy...)
		const each = 200

		// Readers: per receiver, per sender, the last frame number seen.
		var readers sync.WaitGroup
		type result struct {
			frames int
			err    error
		}
		results := make([]result, len(nodes))
		var bad atomic.Int64 // datagrams that were never sent
		for r, n := range nodes {
			readers.Add(2)
			go func() {
				defer readers.Done()
				last := map[string]int{}
				for m := range n.Frames() {
					v := int(binary.BigEndian.Uint32(m.Data))
					if p, ok := last[m.From]; ok && v <= p && results[r].err == nil {
						results[r].err = fmt.Errorf("%s: frame %d from %s after %d", n.LocalAddr(), v, m.From, p)
					}
					last[m.From] = v
					results[r].frames++
				}
			}()
			go func() {
				defer readers.Done()
				for m := range n.Datagrams() {
					if v := int(binary.BigEndian.Uint32(m.Data)); len(m.Data) != 4 || v >= each {
						bad.Add(1)
					}
				}
			}()
		}

		var senders sync.WaitGroup
		for i, x := range nodes {
			for j, y := range nodes {
				if i == j {
					continue
				}
				senders.Add(1)
				go func() {
					defer senders.Done()
					for k := range each {
						_ = x.SendDatagram(context.Background(), y.LocalAddr(), seq(k))
						_ = x.SendFrame(context.Background(), y.LocalAddr(), seq(k))
						time.Sleep(time.Millisecond)
					}
				}()
			}
		}
		senders.Add(1)
		go func() {
			defer senders.Done()
			for k := range 20 {
				switch k % 4 {
				case 0:
					e.cn.Partition([]string{"a"}, []string{"b", "c"})
				case 1:
					e.cn.Heal()
				case 2:
					_ = e.cn.SetRules()
					_ = e.cn.Stats()
				case 3:
					_ = e.cn.SetRules(lossy...)
					_ = nodes[k%3].Faults()
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
		senders.Wait()
		time.Sleep(time.Second)
		for _, n := range nodes {
			n.Close()
		}
		readers.Wait()
		if k := bad.Load(); k > 0 {
			t.Errorf("%d datagrams arrived that were never sent", k)
		}
		total := 0
		for _, r := range results {
			if r.err != nil {
				t.Error(r.err)
			}
			total += r.frames
		}
		s := e.cn.Stats()
		t.Logf("frames received %d of %d; faults %+v", total, 6*each, s)
		if total == 0 || s.Dropped == 0 || s.Partitioned == 0 || s.Delayed == 0 {
			t.Fatalf("the run injected too little to prove anything: %+v", s)
		}
	})
}

// manualClock is a Clock that moves only when told.
type manualClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*manualTimer
}

type manualTimer struct {
	c       *manualClock
	at      time.Time
	f       func()
	stopped bool
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) AfterFunc(d time.Duration, f func()) chaos.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &manualTimer{c: c, at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

// NewTimer is not used by chaos: it delays with AfterFunc.
func (c *manualClock) NewTimer(time.Duration) chaos.Timer {
	panic("chaos called NewTimer; it delays with AfterFunc")
}

// C is nil: the timer runs a function.
func (t *manualTimer) C() <-chan time.Time { return nil }

// Reset is not used by chaos, which starts a new timer for each delay.
func (t *manualTimer) Reset(time.Duration) { panic("chaos reset a timer") }

func (t *manualTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.stopped
	t.stopped = true
	return was
}

// pending returns how many timers wait, and the earliest instant one is due.
func (c *manualClock) pending() (int, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n int
	var first time.Time
	for _, t := range c.timers {
		if !t.stopped {
			if n == 0 || t.at.Before(first) {
				first = t.at
			}
			n++
		}
	}
	return n, first
}

// advance moves the clock by d and starts the callbacks of the timers due,
// each in its own goroutine, as time.AfterFunc does.
func (c *manualClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for _, t := range c.timers {
		if !t.stopped && !t.at.After(c.now) {
			t.stopped = true
			go t.f()
		}
	}
}

// Delays run on the Clock given in Config: nothing moves until that clock
// does, whatever the real time.
func TestInjectedClock(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := &manualClock{now: start}
	cn, err := chaos.New(chaos.Config{Seed: 1, Clock: clk, Rules: []chaos.Rule{{Delay: time.Hour}}})
	if err != nil {
		t.Fatal(err)
	}
	n := mem.NewNetwork(mem.Config{})
	wrap := func(addr string) node {
		tr, err := n.Listen(addr)
		if err != nil {
			t.Fatal(err)
		}
		w, err := cn.Wrap(tr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.Close() })
		return node{w, w.(transport.Datagram), w.(transport.Stream)}
	}
	a, b := wrap("a"), wrap("b")
	sendDatagrams(t, a, "b", 7, 1)
	if k, due := clk.pending(); k != 1 || !due.Equal(start.Add(time.Hour)) {
		t.Fatalf("after one delayed datagram the clock has %d timers, first due %v; want 1 due at %v", k, due, start.Add(time.Hour))
	}
	clk.advance(time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a hang guard only
	defer cancel()
	select {
	case m := <-b.Datagrams():
		if seqOf(t, m) != 7 {
			t.Fatalf("datagram %d arrived, want 7", seqOf(t, m))
		}
	case <-ctx.Done():
		t.Fatalf("the delayed datagram never arrived after the clock advanced past its delay")
	}
}
