// Package cache holds the engine's bounded, time-limited stores: the message
// cache (what a Graft is answered from) and the seen set (what deduplicates).
//
// Both are FIFO by insertion time. Every entry of one store lives for the same
// TTL, so insertion order is expiry order: expiring is popping from the front,
// and a sweep costs only what it removes. A size cap evicts the oldest entry.
// Lookups treat an expired entry as absent, so correctness never waits for a
// sweep; sweeps take a budget so a large store never stalls the caller.
//
// Nothing here reads the clock: the caller passes now.
package cache

import (
	"hash/maphash"
	"time"
)

// Key is a message ID.
type Key = [16]byte

type slot[V any] struct {
	key Key
	at  time.Time
	val V
}

// fifo is a ring of slots in insertion order.
type fifo[V any] struct {
	buf        []slot[V]
	head, size int
}

func (q *fifo[V]) push(s slot[V]) int {
	if q.size == len(q.buf) {
		n := max(16, 2*len(q.buf))
		nb := make([]slot[V], n)
		for i := range q.size {
			nb[i] = q.buf[(q.head+i)%len(q.buf)]
		}
		q.buf, q.head = nb, 0
	}
	i := (q.head + q.size) % len(q.buf)
	q.buf[i] = s
	q.size++
	return i
}

func (q *fifo[V]) front() *slot[V] { return &q.buf[q.head] }

func (q *fifo[V]) pop() {
	q.buf[q.head] = slot[V]{}
	q.head = (q.head + 1) % len(q.buf)
	q.size--
	if q.size == 0 {
		q.head = 0
	}
}

// Store maps keys to values with a TTL and a count cap. Entries leave only
// by expiring or by eviction, both from the front of the ring.
type Store[V any] struct {
	ttl   time.Duration
	limit int
	index map[Key]int // key -> position in q.buf
	q     fifo[V]
}

// New makes a store whose entries live for ttl, holding at most limit
// entries.
func New[V any](ttl time.Duration, limit int) *Store[V] {
	return &Store[V]{ttl: ttl, limit: max(limit, 1), index: make(map[Key]int)}
}

// Len is the number of entries, including expired ones not yet swept.
func (s *Store[V]) Len() int { return s.q.size }

// Get returns the value for k if present and not expired at now.
func (s *Store[V]) Get(k Key, now time.Time) (*V, bool) {
	i, ok := s.index[k]
	if !ok || now.Sub(s.q.buf[i].at) >= s.ttl {
		return nil, false
	}
	return &s.q.buf[i].val, true
}

// Added returns when k was put, if it is present and not expired at now.
func (s *Store[V]) Added(k Key, now time.Time) (time.Time, bool) {
	_, at, ok := s.Lookup(k, now)
	return at, ok
}

// Lookup returns k's value and when it was put, if it is present and not
// expired at now: Get and Added in one look-up.
func (s *Store[V]) Lookup(k Key, now time.Time) (*V, time.Time, bool) {
	i, ok := s.index[k]
	if !ok || now.Sub(s.q.buf[i].at) >= s.ttl {
		return nil, time.Time{}, false
	}
	return &s.q.buf[i].val, s.q.buf[i].at, true
}

// Has reports whether k is present and not expired at now.
func (s *Store[V]) Has(k Key, now time.Time) bool {
	_, ok := s.Get(k, now)
	return ok
}

// Put inserts k (a present key keeps its place and gets the new value). It
// returns how many entries the count cap evicted.
func (s *Store[V]) Put(k Key, v V, now time.Time) (evicted int) {
	if i, ok := s.index[k]; ok {
		s.q.buf[i].val = v
		return 0
	}
	for s.q.size >= s.limit {
		s.popFront()
		evicted++
	}
	grew := s.q.size == len(s.q.buf)
	pos := s.q.push(slot[V]{key: k, at: now, val: v})
	if grew {
		// The ring was copied to the start of a larger buffer.
		for i := range s.q.size {
			s.index[s.q.buf[i].key] = i
		}
	}
	s.index[k] = pos
	return evicted
}

func (s *Store[V]) popFront() {
	delete(s.index, s.q.front().key)
	s.q.pop()
}

// Sweep removes up to budget expired entries and reports how many it removed
// and whether expired entries remain.
func (s *Store[V]) Sweep(now time.Time, budget int) (removed int, more bool) {
	for s.q.size > 0 && now.Sub(s.q.front().at) >= s.ttl {
		if removed == budget {
			return removed, true
		}
		s.popFront()
		removed++
	}
	return removed, false
}

// Newest calls fn for live entries from the newest to the oldest until fn
// returns false.
func (s *Store[V]) Newest(now time.Time, fn func(k Key, at time.Time, v *V) bool) {
	for i := s.q.size - 1; i >= 0; i-- {
		sl := &s.q.buf[(s.q.head+i)%len(s.q.buf)]
		if now.Sub(sl.at) >= s.ttl || !fn(sl.key, sl.at, &sl.val) {
			return
		}
	}
}

// Seen is the deduplication set, sharded by key so that sweeps and
// evictions touch one small shard at a time.
//
// The shard is picked by a keyed hash of the message ID with a random key
// per set: the origin of a message chooses its ID, and an unkeyed choice
// (the ID's first bytes, say) would let a member aim its IDs at one shard,
// whose cap then evicts the honest entries there 16 times sooner than the
// set's cap would. Go maps (the stores' indexes, the engine's per-peer
// maps) are keyed the same way by the runtime.
type Seen struct {
	shards []*Store[struct{}]
	next   int // the shard the next sweep starts at
	seed   maphash.Seed
}

// SeenShards is the number of shards of a Seen set.
const SeenShards = 16

// NewSeen makes a seen set whose entries live for ttl, holding at most limit
// entries in all (rounded up to a multiple of SeenShards).
func NewSeen(ttl time.Duration, limit int) *Seen {
	per := (limit + SeenShards - 1) / SeenShards
	s := &Seen{shards: make([]*Store[struct{}], SeenShards), seed: maphash.MakeSeed()}
	for i := range s.shards {
		s.shards[i] = New[struct{}](ttl, max(per, 1))
	}
	return s
}

func (s *Seen) shard(k Key) *Store[struct{}] {
	return s.shards[maphash.Bytes(s.seed, k[:])%SeenShards]
}

// Has reports whether k was added and has not expired.
func (s *Seen) Has(k Key, now time.Time) bool { return s.shard(k).Has(k, now) }

// Add records k; it returns how many entries the cap evicted.
func (s *Seen) Add(k Key, now time.Time) int { return s.shard(k).Put(k, struct{}{}, now) }

// Len is the number of entries.
func (s *Seen) Len() int {
	n := 0
	for _, sh := range s.shards {
		n += sh.Len()
	}
	return n
}

// Sweep removes up to budget expired entries, visiting shards round robin.
func (s *Seen) Sweep(now time.Time, budget int) (removed int, more bool) {
	for range s.shards {
		sh := s.shards[s.next]
		r, m := sh.Sweep(now, budget-removed)
		removed += r
		if m {
			return removed, true
		}
		s.next = (s.next + 1) % len(s.shards)
	}
	return removed, false
}
