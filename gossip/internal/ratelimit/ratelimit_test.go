package ratelimit

import (
	"testing"
	"time"
)

func TestBucket(t *testing.T) {
	var b Bucket
	t0 := time.Unix(1000, 0)
	for i := range 3 {
		if !b.Allow(t0, 1, 10, 3) {
			t.Fatalf("request %d within the burst of 3 was refused", i)
		}
	}
	if b.Allow(t0, 1, 10, 3) {
		t.Fatal("a fourth request at the same instant passed a burst of 3")
	}
	if !b.Allow(t0.Add(100*time.Millisecond), 1, 10, 3) {
		t.Fatal("one token should have refilled after 100ms at 10/s")
	}
	if b.Allow(t0.Add(100*time.Millisecond), 1, 10, 3) {
		t.Fatal("only one token should have refilled")
	}
	if !b.Allow(t0.Add(time.Hour), 3, 10, 3) {
		t.Fatal("the bucket should be full again after an hour")
	}
	if b.Allow(t0.Add(time.Hour), 1, 10, 3) {
		t.Fatal("refill must stop at the burst")
	}
	// A clock that steps back must not mint tokens.
	if b.Allow(t0, 1, 10, 3) {
		t.Fatal("a backwards clock step refilled the bucket")
	}
}
