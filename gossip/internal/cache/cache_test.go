package cache

import (
	"math/rand/v2"
	"testing"
	"time"
)

func key(i int) Key { return Key{byte(i), byte(i >> 8), byte(i >> 16)} }

func TestStoreTTLAndCap(t *testing.T) {
	t0 := time.Unix(0, 0)
	s := New[int](10*time.Second, 3)
	for i := range 3 {
		if ev := s.Put(key(i), i, t0.Add(time.Duration(i)*time.Second)); ev != 0 {
			t.Fatalf("put %d evicted %d under the cap", i, ev)
		}
	}
	if ev := s.Put(key(3), 3, t0.Add(3*time.Second)); ev != 1 {
		t.Fatalf("put over the cap evicted %d, want 1", ev)
	}
	if s.Has(key(0), t0.Add(3*time.Second)) {
		t.Fatal("the oldest entry survived eviction")
	}
	if v, ok := s.Get(key(1), t0.Add(3*time.Second)); !ok || *v != 1 {
		t.Fatalf("Get(1) = %v, %v", v, ok)
	}
	// key 1 was put at 1s: expired at 11s, even before a sweep.
	if s.Has(key(1), t0.Add(11*time.Second)) {
		t.Fatal("an expired entry is still visible")
	}
	if s.Len() != 3 {
		t.Fatalf("Len = %d, want 3", s.Len())
	}
	removed, more := s.Sweep(t0.Add(12*time.Second), 1)
	if removed != 1 || !more {
		t.Fatalf("Sweep with budget 1 = %d, %v; want 1, true", removed, more)
	}
	removed, more = s.Sweep(t0.Add(12*time.Second), 10)
	if removed != 1 || more {
		t.Fatalf("second Sweep = %d, %v; want 1, false", removed, more)
	}
	if s.Len() != 1 || !s.Has(key(3), t0.Add(12*time.Second)) {
		t.Fatalf("after sweeping, Len = %d and key 3 present = %v", s.Len(), s.Has(key(3), t0.Add(12*time.Second)))
	}
}

func TestStoreGrowKeepsIndex(t *testing.T) {
	t0 := time.Unix(0, 0)
	s := New[int](time.Hour, 1000)
	for i := range 500 {
		s.Put(key(i), i, t0)
		if i%3 == 0 {
			s.Sweep(t0, 1) // nothing has expired: the ring keeps its head
		}
	}
	for i := range 500 {
		v, ok := s.Get(key(i), t0)
		if !ok || *v != i {
			t.Fatalf("key %d: got %v, %v", i, v, ok)
		}
	}
	var order []int
	s.Newest(t0, func(k Key, _ time.Time, v *int) bool { order = append(order, *v); return len(order) < 3 })
	if len(order) != 3 || order[0] != 499 || order[1] != 498 || order[2] != 497 {
		t.Fatalf("Newest order = %v", order)
	}
}

func TestSeenShardedCap(t *testing.T) {
	t0 := time.Unix(0, 0)
	s := NewSeen(time.Minute, 160)
	evicted := 0
	for i := range 10_000 {
		k := key(i)
		k[0], k[7] = byte(i*131), byte(i*17) // spread over shards
		evicted += s.Add(k, t0)
	}
	if s.Len() > 160 {
		t.Fatalf("seen set holds %d entries, cap 160", s.Len())
	}
	if evicted+s.Len() != 10_000 {
		t.Fatalf("evicted %d + held %d != added 10000", evicted, s.Len())
	}
	removed := 0
	for {
		r, more := s.Sweep(t0.Add(2*time.Minute), 7)
		removed += r
		if !more {
			break
		}
	}
	if s.Len() != 0 {
		t.Fatalf("%d entries left after sweeping everything expired (removed %d)", s.Len(), removed)
	}
}

// TestStoreMatchesModel drives a store and a plain map model with puts,
// sweeps and evictions that wrap and grow the ring, and compares them.
func TestStoreMatchesModel(t *testing.T) {
	t0 := time.Unix(0, 0)
	const ttl, limit = 50 * time.Second, 37
	s := New[int](ttl, limit)
	type entry struct {
		at time.Time
		v  int
	}
	model := map[Key]entry{}
	var order []Key
	now := t0
	for i := range 3000 {
		now = now.Add(time.Duration(i%3) * time.Second)
		k := key(i)
		s.Put(k, i, now)
		model[k] = entry{now, i}
		order = append(order, k)
		for len(model) > limit { // the model evicts the oldest
			delete(model, order[0])
			order = order[1:]
		}
		if i%11 == 0 {
			s.Sweep(now, 5)
		}
		for _, k := range order {
			e := model[k]
			v, ok := s.Get(k, now)
			alive := now.Sub(e.at) < ttl
			if ok != alive || (ok && *v != e.v) {
				t.Fatalf("step %d key %v: store has (%v, %v), model (%v, %d)", i, k, v, ok, alive, e.v)
			}
		}
	}
}

// TestStoreGrowsWhileWrapped grows the ring while its head is not at the
// start of the buffer, so every position moves.
func TestStoreGrowsWhileWrapped(t *testing.T) {
	t0 := time.Unix(0, 0)
	s := New[int](10*time.Second, 1000)
	for i := range 12 {
		s.Put(key(i), i, t0)
	}
	s.Put(key(12), 12, t0.Add(5*time.Second)) // keeps the ring from emptying
	if r, _ := s.Sweep(t0.Add(10*time.Second), 100); r != 12 {
		t.Fatalf("swept %d, want 12", r)
	}
	now := t0.Add(10 * time.Second)
	for i := 100; i < 140; i++ { // wraps the 16-slot ring, then grows it twice
		s.Put(key(i), i, now)
	}
	if v, ok := s.Get(key(12), now); !ok || *v != 12 {
		t.Fatalf("the entry kept across growth: %v, %v", v, ok)
	}
	for i := 100; i < 140; i++ {
		if v, ok := s.Get(key(i), now); !ok || *v != i {
			t.Fatalf("key %d after growth: %v, %v", i, v, ok)
		}
	}
}

// TestSeenAimedIDs: a member chooses the IDs of its messages. IDs aimed at
// one shard (all with the same first bytes, which picked the shard before
// the hash was keyed) must not evict honest entries faster than as many
// random IDs do: the set's cap, not one shard's, is what they fill.
func TestSeenAimedIDs(t *testing.T) {
	t0 := time.Unix(0, 0)
	rng := rand.New(rand.NewPCG(1, 2))
	randomKey := func() Key {
		var k Key
		for i := range k {
			k[i] = byte(rng.Uint32())
		}
		return k
	}
	const limit, honestN, attackN = 1600, 800, 400 // 100 a shard; honest ones fill half
	evictedHonest := func(attack func() Key) int {
		s := NewSeen(time.Hour, limit)
		honest := make([]Key, honestN)
		for i := range honest {
			honest[i] = randomKey()
			s.Add(honest[i], t0)
		}
		for range attackN {
			s.Add(attack(), t0)
		}
		n := 0
		for _, k := range honest {
			if !s.Has(k, t0) {
				n++
			}
		}
		return n
	}
	aimed := evictedHonest(func() Key {
		k := randomKey()
		k[0] &^= SeenShards - 1 // the first 8 bytes ≡ 0 mod 16: shard 0, unkeyed
		return k
	})
	random := evictedHonest(randomKey)
	t.Logf("honest entries evicted by %d aimed IDs: %d; by %d random IDs: %d", attackN, aimed, attackN, random)
	// 1,200 entries in a set of 1,600: random IDs evict next to nothing
	// (a shard holds 75 ± 9 of its 100); IDs aimed at one shard, were they
	// to land there, would evict every honest entry in it (about 50).
	if aimed > random+10 {
		t.Errorf("aimed IDs evicted %d honest entries, random ones %d", aimed, random)
	}
}
