package quic

import (
	"crypto/tls"
	"testing"

	"github.com/plumtree-go/plumtree/transport/devcert"
)

// TestDerivedResetKey: the default stateless reset key is the same for the
// same certificate key and address (a restart), and differs with another
// key or another address; without a certificate there is none.
func TestDerivedResetKey(t *testing.T) {
	ca, err := devcert.NewUnsafeCA()
	if err != nil {
		t.Fatal(err)
	}
	conf := func(name string) *tls.Config {
		c, err := ca.UnsafeMutualTLS(name, "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, b := conf("a"), conf("b")
	k1 := derivedResetKey(a, "127.0.0.1:7000")
	k2 := derivedResetKey(a.Clone(), "127.0.0.1:7000")
	if k1 == nil || k2 == nil || *k1 != *k2 {
		t.Fatalf("same key and address: %x and %x, want equal and set", k1, k2)
	}
	if k := derivedResetKey(a, "127.0.0.1:7001"); *k == *k1 {
		t.Error("another address gave the same reset key")
	}
	if k := derivedResetKey(b, "127.0.0.1:7000"); *k == *k1 {
		t.Error("another certificate key gave the same reset key")
	}
	for _, wild := range []string{"0.0.0.0:7000", "[::]:7000", "not an address"} {
		if k := derivedResetKey(a, wild); k != nil {
			t.Errorf("%s: got a reset key; a wildcard address does not tell nodes apart", wild)
		}
	}
	if k := derivedResetKey(&tls.Config{}, "127.0.0.1:7000"); k != nil {
		t.Errorf("no certificate: got %x, want none", k)
	}
	if k := derivedResetKey(nil, "127.0.0.1:7000"); k != nil {
		t.Errorf("no TLS: got %x, want none", k)
	}
}
