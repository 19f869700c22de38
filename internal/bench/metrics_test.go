package bench

import (
	"encoding/binary"
	"testing"
	"time"
)

func ms(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }

// Percentiles are nearest-rank: the smallest value with at least q of the
// values at or below it.
func TestPercentile(t *testing.T) {
	var sorted []time.Duration
	for i := 1; i <= 100; i++ {
		sorted = append(sorted, ms(float64(i)))
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0, ms(1)}, {0.01, ms(1)}, {0.5, ms(50)}, {0.505, ms(51)}, {0.99, ms(99)}, {0.999, ms(100)}, {1, ms(100)}} {
		if got := percentile(sorted, c.q); got != c.want {
			t.Errorf("percentile(1..100 ms, %v) = %v, want %v", c.q, got, c.want)
		}
	}
	if got := percentile(nil, 0.5); got != 0 {
		t.Errorf("percentile of nothing = %v, want 0", got)
	}
	three := []time.Duration{ms(1), ms(2), ms(3)}
	if got := percentile(three, 0.5); got != ms(2) {
		t.Errorf("median of 1,2,3 ms = %v, want 2ms", got)
	}
	if got := percentile(three, 0.99); got != ms(3) {
		t.Errorf("p99 of 1,2,3 ms = %v, want 3ms", got)
	}
}

// Wire bytes per ideal payload byte divide by what a perfect broadcast
// carries: each payload once to each of the n-1 other nodes.
func TestWirePerIdealByte(t *testing.T) {
	if got := wirePerIdealByte(2*19*1024*1000, 1000, 20, 1024); got != 2 {
		t.Errorf("twice the ideal = %v, want 2", got)
	}
	if got := wirePerIdealByte(19*1030*10, 10, 20, 1024); got != 1030.0/1024 {
		t.Errorf("6 bytes of header per copy = %v, want %v", got, 1030.0/1024)
	}
	if got := wirePerIdealByte(100, 0, 20, 1024); got != 0 {
		t.Errorf("no messages = %v, want 0", got)
	}
	if got := ratio(3, 0); got != 0 {
		t.Errorf("ratio(3, 0) = %v, want 0", got)
	}
}

// summarize counts expected deliveries without the origins', latencies over
// every delivery, and last-node latencies over complete messages only.
func TestSummarize(t *testing.T) {
	const n = 3
	published := []time.Duration{0, ms(10)}
	origin := []int{0, 1}
	at := make([]time.Duration, 2*n)
	at[0*n+0] = ms(0.5) // the origin's own: not counted
	at[0*n+1] = ms(1)
	at[0*n+2] = ms(3)
	at[1*n+0] = ms(12)
	// message 1 never reaches node 2
	l := summarize(published, origin, at, n, 7)
	want := latencies{
		Deliveries: 3, Expected: 4, Duplicates: 7,
		P50: ms(2), P99: ms(3), Max: ms(3), // of 1, 3 and 2 ms
		LastP50: ms(3), LastP99: ms(3), // message 0 only
	}
	if l != want {
		t.Errorf("summarize = %+v, want %+v", l, want)
	}
}

// The recorder counts a delivery once per (node, message), counts the
// rest as duplicates, ignores the origin and earlier phases, and signals
// when every expected delivery arrived.
func TestRecorder(t *testing.T) {
	r := newRecorder(3, 3, []int{0, 2})
	buf := make([]byte, 16)
	for s := range 2 {
		r.payload(buf, s)
		r.publishing(s)
	}
	p := func(gen uint64, s int) []byte {
		b := make([]byte, 16)
		binary.BigEndian.PutUint64(b, gen<<genShift|uint64(s))
		return b
	}
	r.deliver(0, p(3, 0))   // origin
	r.deliver(1, p(3, 0))   // counted
	r.deliver(1, p(3, 0))   // duplicate
	r.deliver(2, p(2, 0))   // an earlier phase
	r.deliver(2, p(3, 9))   // no such message
	r.deliver(2, []byte{1}) // too short
	r.deliver(7, p(3, 0))   // no such node
	select {
	case <-r.done:
		t.Fatal("done after 1 of 4 deliveries")
	default:
	}
	r.deliver(2, p(3, 0))
	r.deliver(0, p(3, 1))
	r.deliver(1, p(3, 1))
	select {
	case <-r.done:
	default:
		t.Fatal("not done after every delivery")
	}
	if got := r.delivered.Load(); got != 4 {
		t.Errorf("delivered %d, want 4", got)
	}
	if got := r.duplicates.Load(); got != 1 {
		t.Errorf("duplicates %d, want 1", got)
	}
	if got := r.stray.Load(); got != 3 {
		t.Errorf("stray %d, want 3", got)
	}
	if l := r.summary(); l.Deliveries != 4 || l.Expected != 4 || l.Duplicates != 1 {
		t.Errorf("summary %+v, want 4 of 4 deliveries and 1 duplicate", l)
	}
}
