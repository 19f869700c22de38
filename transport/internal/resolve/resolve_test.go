package resolve

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

func TestCache(t *testing.T) {
	now := time.Unix(0, 0)
	lookups := 0
	c := &Cache{
		now: func() time.Time { return now },
		lookup: func(addr string) (netip.AddrPort, error) {
			lookups++
			if addr == "bad:1" {
				return netip.AddrPort{}, errors.New("no such host")
			}
			return netip.MustParseAddrPort("10.0.0.1:7946"), nil
		},
	}
	if ap, err := c.Resolve("127.0.0.1:9"); err != nil || ap.String() != "127.0.0.1:9" || lookups != 0 {
		t.Fatalf("an IP literal: %v %v, %d lookups", ap, err, lookups)
	}
	for range 3 {
		if ap, err := c.Resolve("node1:7946"); err != nil || ap.String() != "10.0.0.1:7946" {
			t.Fatalf("node1: %v %v", ap, err)
		}
	}
	if lookups != 1 {
		t.Errorf("%d lookups for three sends within the TTL, want 1", lookups)
	}
	now = now.Add(TTL)
	c.Resolve("node1:7946")
	if lookups != 2 {
		t.Errorf("%d lookups after the TTL, want 2", lookups)
	}
	if _, err := c.Resolve("bad:1"); err == nil {
		t.Error("a failed lookup gave an address")
	}
	c.Resolve("bad:1")
	if lookups != 4 {
		t.Errorf("failures are cached: %d lookups", lookups)
	}
}
