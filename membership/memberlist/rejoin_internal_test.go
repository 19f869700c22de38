package memberlist

import (
	"errors"
	"net"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/memberlist"
)

// testNode is a memberlist node at 10.0.0.host:7946 running this adapter.
func testNode(name string, host byte) *memberlist.Node {
	return &memberlist.Node{Name: name, Addr: net.IPv4(10, 0, 0, host), Port: 7946,
		Meta: appendMeta(nil, meta{addr: "bcast-" + name, boot: 1})}
}

// testApply feeds m one memberlist event, as notify does once attached.
func testApply(m *Membership[string], kind nodeEvent, n *memberlist.Node) {
	m.mu.Lock()
	m.apply(kind, n)
	m.mu.Unlock()
}

// rejoinRound returns the targets of successive rejoinTarget calls, each
// after the one before, from the first until one comes again: the
// candidates in the order they are tried.
func rejoinRound(m *Membership[string], now time.Time, local string) []string {
	var out []string
	last := ""
	for range 100 {
		a, ok := m.rejoinTarget(now, local, last)
		if !ok || slices.Contains(out, a) {
			break
		}
		out = append(out, a)
		last = a
	}
	return out
}

// TestRejoinTarget: a node that memberlist declares dead without a leaving
// notice is a rejoin candidate, at its memberlist address, until it is alive
// again or RejoinTimeout passes; a node that announced its departure never
// is; Config.Join is a candidate only while no other node is alive, and the
// local address never is. Successive targets go through every candidate in
// address order, one at a time, and after a target that is no longer a
// candidate the next is the one that followed it.
func TestRejoinTarget(t *testing.T) {
	m, err := Prepare(Config[string]{Addr: "127.0.0.1:1",
		Join:           []string{"10.0.0.9:7946", "10.0.0.1:7946", "10.0.0.9:7946"},
		RejoinInterval: time.Second, RejoinTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	const local = "10.0.0.1:7946"
	const b, d, seed = "10.0.0.2:7946", "10.0.0.4:7946", "10.0.0.9:7946"
	now := time.Now()

	if got := rejoinRound(m, now, local); !slices.Equal(got, []string{seed}) {
		t.Errorf("alone, no failures: candidates %v; want the seed (once, not the local address)", got)
	}
	testApply(m, nodeJoin, testNode("b", 2))
	testApply(m, nodeJoin, testNode("c", 3))
	testApply(m, nodeJoin, testNode("d", 4))
	if got, ok := m.rejoinTarget(now, local, ""); ok {
		t.Errorf("all alive: target %q; want none", got)
	}

	testApply(m, nodeGone, testNode("b", 2)) // failed
	m.onMessage(appendMessage(nil, message{kind: msgLeaving, name: "c", addr: "10.0.0.3:7946"}))
	testApply(m, nodeGone, testNode("c", 3)) // left
	if got := rejoinRound(m, now, local); !slices.Equal(got, []string{b}) {
		t.Errorf("b failed, c left, d alive: candidates %v; want b only", got)
	}

	testApply(m, nodeJoin, testNode("b", 2)) // back
	if got, ok := m.rejoinTarget(now, local, ""); ok {
		t.Errorf("b back: target %q; want none", got)
	}

	testApply(m, nodeGone, testNode("b", 2))
	testApply(m, nodeGone, testNode("d", 4))
	if got := rejoinRound(m, now, local); !slices.Equal(got, []string{b, d, seed}) {
		t.Errorf("alone after b and d failed: candidates in turn %v; want b, d, then the seed", got)
	}
	if got, _ := m.rejoinTarget(now, local, seed); got != b {
		t.Errorf("after the last candidate: target %q; want the first, %s", got, b)
	}

	testApply(m, nodeJoin, testNode("d", 4)) // d back: no longer alone
	if got, _ := m.rejoinTarget(now, local, d); got != b {
		t.Errorf("after d, which came back (b failed, not alone): target %q; want %s", got, b)
	}
	testApply(m, nodeGone, testNode("d", 4))
	testApply(m, nodeGone, testNode("b", 2)) // b missing again, d still
	testApply(m, nodeJoin, testNode("b", 2))
	if got, _ := m.rejoinTarget(now, local, b); got != d {
		t.Errorf("after b, which came back: target %q; want the next, %s", got, d)
	}
	testApply(m, nodeGone, testNode("b", 2))

	if got := rejoinRound(m, now.Add(2*time.Minute), local); !slices.Equal(got, []string{seed}) {
		t.Errorf("after RejoinTimeout: candidates %v; want the seed only", got)
	}
	if len(m.failed) != 0 {
		t.Errorf("failed nodes not forgotten after RejoinTimeout: %v", m.failed)
	}
	if err := m.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if got, ok := m.rejoinTarget(now, local, ""); ok {
		t.Errorf("after Shutdown: target %q; want none", got)
	}
}

// fakeJoin stands in for memberlist's Join in the rejoin loop: each call
// sends its addresses on calls, then waits for release (one attempt in
// progress) and fails. Once done is closed it returns at once, so that a
// test that fails midway still ends the loop; once release is closed every
// attempt ends at once.
type fakeJoin struct {
	calls   chan []string
	release chan struct{}
	done    chan struct{}
}

func newFakeJoin(buffer int) *fakeJoin {
	return &fakeJoin{calls: make(chan []string, buffer), release: make(chan struct{}), done: make(chan struct{})}
}

func (f *fakeJoin) join(addrs []string) (int, error) {
	select {
	case f.calls <- slices.Clone(addrs):
	case <-f.done:
		return 0, errors.New("test over")
	}
	select {
	case <-f.release:
	case <-f.done:
	}
	return 0, errors.New("i/o timeout")
}

// startRejoinLoop starts m's rejoin loop on f, as Attach does on
// memberlist's Join, and ends it when the test does.
func startRejoinLoop(t *testing.T, m *Membership[string], local string, f *fakeJoin) {
	m.rejoinDone.Add(1)
	go m.rejoinLoop(local, f.join)
	t.Cleanup(func() {
		close(f.done)
		_ = m.Shutdown()
	})
}

// TestRejoinLoopOneAddressPerTick: an isolated node with three seeds that do
// not answer and one failed node gives memberlist's Join one address per
// RejoinInterval, every candidate in turn, so that the attempt Shutdown
// waits for is one address (memberlist's Join tries every address it is
// given, one TCPTimeout each). Shutdown waits for the attempt in progress
// and no other starts. The clock is synctest's: the loop's ticker fires
// when every goroutine of the bubble waits.
func TestRejoinLoopOneAddressPerTick(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = 30 * time.Second
		const local = "10.0.0.1:7946"
		seeds := []string{"10.0.0.9:7946", "10.0.0.7:7946", "10.0.0.8:7946"}
		m, err := Prepare(Config[string]{Addr: "127.0.0.1:1", Join: seeds,
			RejoinInterval: interval, RejoinTimeout: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		testApply(m, nodeJoin, testNode("b", 2))
		testApply(m, nodeGone, testNode("b", 2)) // failed: now alone

		f := newFakeJoin(0)
		startRejoinLoop(t, m, local, f)

		want := []string{"10.0.0.2:7946", "10.0.0.7:7946", "10.0.0.8:7946", "10.0.0.9:7946"}
		start := time.Now()
		for i := range 2 * len(want) {
			got := <-f.calls
			if !slices.Equal(got, want[i%len(want):i%len(want)+1]) {
				t.Fatalf("attempt %d joins %v; want only %s (rotation %v)", i, got, want[i%len(want)], want)
			}
			if el := time.Since(start); el != time.Duration(i+1)*interval {
				t.Errorf("attempt %d at %v; want %v: one attempt per interval", i, el, time.Duration(i+1)*interval)
			}
			if i < 2*len(want)-1 {
				f.release <- struct{}{}
			}
		}

		// The last attempt is still in progress: Shutdown waits for it.
		stopped := make(chan error)
		go func() { stopped <- m.Shutdown() }()
		synctest.Wait()
		select {
		case err := <-stopped:
			t.Fatalf("Shutdown returned (%v) while a join was in progress", err)
		default:
		}
		close(f.release) // this attempt and any other end at once
		if err := <-stopped; err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		select {
		case got := <-f.calls:
			t.Fatalf("join of %v after Shutdown", got)
		default:
		}
	})
}

// TestRejoinStopDuringAttempt: Shutdown during an attempt that outlasted
// RejoinInterval (memberlist's TCPTimeout is often longer than the
// interval) waits for that attempt and starts no other, although a tick is
// then ready beside the stop. select picks at random between ready cases,
// so the scenario runs 20 times: a loop that did not check stop first would
// pass all of them once in a million runs. The clock is synctest's.
func TestRejoinStopDuringAttempt(t *testing.T) {
	for range 20 {
		synctest.Test(t, func(t *testing.T) {
			const interval = 10 * time.Second
			m, err := Prepare(Config[string]{Addr: "127.0.0.1:1", Join: []string{"10.0.0.9:7946"},
				RejoinInterval: interval})
			if err != nil {
				t.Fatal(err)
			}
			f := newFakeJoin(10)
			startRejoinLoop(t, m, "10.0.0.1:7946", f)
			<-f.calls
			time.Sleep(3 * interval) // the attempt lasts: ticks come and wait
			stopped := make(chan error)
			go func() { stopped <- m.Shutdown() }()
			synctest.Wait()
			select {
			case err := <-stopped:
				t.Fatalf("Shutdown returned (%v) while a join was in progress", err)
			default:
			}
			close(f.release) // this attempt and any other end at once
			if err := <-stopped; err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			if len(f.calls) != 0 {
				t.Fatalf("join of %v after Shutdown began", <-f.calls)
			}
		})
	}
}
