package bench

import (
	"slices"
	"time"
)

// percentile returns the q-quantile (0 <= q <= 1) of sorted by the
// nearest-rank method: the smallest value with at least q of the values at
// or below it. It returns 0 for no values; q = 1 is the maximum.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	// rank is ceil(q*n), at least 1.
	rank := int(q * float64(len(sorted)))
	if float64(rank) < q*float64(len(sorted)) {
		rank++
	}
	rank = max(rank, 1)
	return sorted[min(rank, len(sorted))-1]
}

// ratio returns a/b, or 0 when b is 0.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// wirePerIdealByte is wire bytes per ideal payload byte: the bytes on the
// wire divided by what a perfect broadcast would carry, each of messages
// payloads of size bytes reaching the n-1 other nodes once.
func wirePerIdealByte(wireBytes uint64, messages, nodes, size int) float64 {
	return ratio(float64(wireBytes), float64(messages)*float64(nodes-1)*float64(size))
}

// latencies is what the recorder measured, reduced to the report's
// numbers.
type latencies struct {
	Deliveries, Expected, Duplicates int
	// P50, P99 and Max over every delivery, from publish to delivery.
	P50, P99, Max time.Duration
	// LastP50 and LastP99 over the messages that reached every node, of
	// the time from publish to the delivery at the last node.
	LastP50, LastP99 time.Duration
}

// summarize reduces per-delivery times to latencies. published[s] is the
// time message s was published (as an offset from any fixed base); at[s*n+i]
// is the time node i delivered it, 0 if it did not; origin[s] is its
// origin, whose slot is not expected.
func summarize(published []time.Duration, origin []int, at []time.Duration, n int, duplicates int) latencies {
	var l latencies
	all := make([]time.Duration, 0, len(published)*(n-1))
	last := make([]time.Duration, 0, len(published))
	for s, p := range published {
		complete := true
		var latest time.Duration
		for i := range n {
			if i == origin[s] {
				continue
			}
			l.Expected++
			t := at[s*n+i]
			if t == 0 {
				complete = false
				continue
			}
			l.Deliveries++
			d := max(t-p, 0)
			all = append(all, d)
			latest = max(latest, d)
		}
		if complete {
			last = append(last, latest)
		}
	}
	slices.Sort(all)
	slices.Sort(last)
	l.P50, l.P99, l.Max = percentile(all, 0.50), percentile(all, 0.99), percentile(all, 1)
	l.LastP50, l.LastP99 = percentile(last, 0.50), percentile(last, 0.99)
	l.Duplicates = duplicates
	return l
}
