package seal

import (
	"math"
	"sync"
)

// DefaultReplayCache is how many opened frames a sealed transport remembers
// to refuse their replays, unless WithReplayCache says otherwise: about
// 55 MB when full (see WithReplayCache).
const DefaultReplayCache = 1 << 20

// The replay filter files what it remembers by send time in granules of a
// window's 1/replayGranules, each in one of replaySlots slots (granule mod
// replaySlots). The frames a filter accepts at a time were sent within a
// window either side of its clock, a span of 2×replayGranules+2 granules,
// fewer than the slots: two granules alive at once never share a slot
// (see check for when a clock steps back and they would).
const (
	replayGranules = 32
	replaySlots    = 128
)

// replayKey identifies a sealed frame: its key ID and nonce. Two frames
// sealed apart share both with a negligible probability (a counter per
// key and process, after a random prefix: see the package doc), so a
// second frame with the same replayKey is a replay.
type replayKey [idLen + nonceLen]byte

// replayBucket holds the keys of the frames remembered from one granule.
type replayBucket struct {
	granule int64
	keys    []replayKey
}

// replayFilter remembers the frames opened within the replay window so that
// each opens at most once. Memory is bounded by limit entries: when full, it
// forgets the oldest granule first and raises floor past it. It never
// forgets a frame without refusing, from then on, every frame sent as early
// as the forgotten one (at or before floor) that it does not remember, so a
// replay is refused whatever the load: under extreme load the window only
// shrinks. Granules that leave the window are forgotten the same way,
// amortized over the calls, with no goroutine.
//
// Invariant: seen holds exactly the keys of the slots' buckets, and every
// one was sent after floor.
type replayFilter struct {
	mu      sync.Mutex
	window  int64 // nanoseconds, > 0
	width   int64 // of a granule, nanoseconds, > 0
	limit   int   // entries, > 0
	seen    map[replayKey]struct{}
	slots   [replaySlots]replayBucket
	floor   int64 // frames sent at or before floor are refused
	expired int64 // the last granule forgotten because it left the window
	// peak is the most entries held since the map was last made, and
	// retained the sum of the buckets' capacities: both to give back
	// memory after a burst.
	peak, retained int
}

func newReplayFilter(window int64, limit int) *replayFilter {
	return &replayFilter{
		window:  window,
		width:   max(window/replayGranules, 1),
		limit:   limit,
		seen:    make(map[replayKey]struct{}),
		floor:   math.MinInt64,
		expired: math.MinInt64,
	}
}

// check decides whether the frame (its header: version, key ID, nonce),
// sent at sent (Unix nanoseconds, already checked against the window),
// opens at now: reasonNone the first time, ReasonReplay for a frame it
// remembers, ReasonWindow for one sent at or before the floor (too old to
// tell). It is safe for concurrent use.
func (f *replayFilter) check(header []byte, sent, now int64) Reason {
	var k replayKey
	copy(k[:], header[1:headerLen])
	f.mu.Lock()
	defer f.mu.Unlock()
	f.expire(now)
	if sent <= f.floor {
		return ReasonWindow
	}
	q := floorDiv(sent, f.width)
	b := &f.slots[slotOf(q)]
	if len(b.keys) > 0 && b.granule != q {
		// Not with the slots' span above; kept so that soundness does not
		// rest on it (say a window of a few nanoseconds, with granules of
		// 1 ns). An earlier granule is forgotten (raising the floor below
		// this frame); a later one makes this frame too early to tell.
		// Either way the frame is not remembered: a copy would be in
		// granule q, in this slot.
		if b.granule > q {
			return ReasonWindow
		}
		f.forgetThrough(b.granule)
	}
	if n := len(f.seen); n < f.limit {
		// One hash: insert, and a length unchanged means it was there.
		if f.seen[k] = struct{}{}; len(f.seen) == n {
			return ReasonReplay
		}
	} else {
		if _, ok := f.seen[k]; ok {
			return ReasonReplay
		}
		for len(f.seen) >= f.limit {
			f.forgetOldest()
			if sent <= f.floor {
				return ReasonWindow
			}
		}
		f.seen[k] = struct{}{}
	}
	if len(b.keys) == 0 {
		b.granule = q
	}
	c := cap(b.keys)
	b.keys = append(b.keys, k)
	f.retained += cap(b.keys) - c
	f.peak = max(f.peak, len(f.seen))
	return reasonNone
}

// expire forgets the granules that ended before now less the window: no
// frame sent then can pass the window check. It costs a division per call
// and a pass over the slots per granule.
func (f *replayFilter) expire(now int64) {
	// Granules up to c end before now-window.
	c := floorDiv(now-f.window, f.width) - 1
	if c <= f.expired {
		return
	}
	f.expired = c
	f.forgetThrough(c)
	if f.peak >= 1<<12 && len(f.seen) < f.peak/4 {
		// Maps never shrink: after a burst, copy what is left into a map
		// sized for it.
		m := make(map[replayKey]struct{}, 2*len(f.seen))
		for i := range f.slots {
			for _, k := range f.slots[i].keys {
				m[k] = struct{}{}
			}
		}
		f.seen, f.peak = m, len(m)
	}
}

// forgetThrough forgets every bucket of granule g or earlier and raises the
// floor to the end of g.
func (f *replayFilter) forgetThrough(g int64) {
	for i := range f.slots {
		b := &f.slots[i]
		if len(b.keys) == 0 || b.granule > g {
			continue
		}
		for _, k := range b.keys {
			delete(f.seen, k)
		}
		b.keys = b.keys[:0]
		// Keep the buckets' capacity for reuse (no allocation in a steady
		// state) up to a quarter of the cache's entries in all; past that,
		// give it back.
		if f.retained > f.limit/4 {
			f.retained -= cap(b.keys)
			b.keys = nil
		}
	}
	f.floor = max(f.floor, granuleEnd(g, f.width))
}

// forgetOldest forgets the earliest granule held (there is one: seen is not
// empty when it is called).
func (f *replayFilter) forgetOldest() {
	oldest := int64(math.MaxInt64)
	for i := range f.slots {
		if b := &f.slots[i]; len(b.keys) > 0 {
			oldest = min(oldest, b.granule)
		}
	}
	f.forgetThrough(oldest)
}

// len is how many frames the filter remembers.
func (f *replayFilter) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.seen)
}

// floorDiv is a/b rounded down, for b > 0.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// granuleEnd is the last nanosecond of granule g, saturating.
func granuleEnd(g, width int64) int64 {
	if g >= math.MaxInt64/width-1 {
		return math.MaxInt64
	}
	return (g+1)*width - 1
}

func slotOf(g int64) int { return int(uint64(g) % replaySlots) }
