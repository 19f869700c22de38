package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"testing"

	"github.com/plumtree-go/plumtree/transport/mem"
	"github.com/plumtree-go/plumtree/transport/seal"
)

// hkdfSHA256 is RFC 5869 HKDF-SHA256 with no salt, written out with HMAC
// for outputs of at most one block, to check sealKeys against.
func hkdfSHA256(secret []byte, info string, n int) []byte {
	extract := hmac.New(sha256.New, make([]byte, sha256.Size)) // no salt: HashLen zeros
	extract.Write(secret)
	expand := hmac.New(sha256.New, extract.Sum(nil))
	expand.Write([]byte(info))
	expand.Write([]byte{1})
	return expand.Sum(nil)[:n]
}

// The seal's keys are derived from the -secret keys with HKDF-SHA256 (info
// "plumtree seal v1", the secret's length), in the same order, so that they
// never equal the raw keys memberlist encrypts with; a node's sealed
// transport holds the derived keys, not the raw ones.
func TestSealKeysDerived(t *testing.T) {
	k1, k2 := secRandomKey(t), base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 16))
	secrets, err := decodeSecrets(k1 + "," + k2)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := sealKeys(secrets)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range secrets {
		if want := hkdfSHA256(s, "plumtree seal v1", len(s)); !bytes.Equal(keys[i], want) {
			t.Errorf("key %d: derived %x; want HKDF-SHA256 %x", i+1, keys[i], want)
		}
		if bytes.Equal(keys[i], s) || len(keys[i]) != len(s) {
			t.Errorf("key %d: derived %x from %x", i+1, keys[i], s)
		}
	}

	tr, err := mem.NewNetwork(mem.Config{}).Listen("a")
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := sealTransport("udp+tcp", tr, k1+","+k2)
	if err != nil {
		t.Fatal(err)
	}
	defer sealed.Close()
	s, ok := sealed.(seal.Transport)
	if !ok {
		t.Fatalf("sealTransport returned %T, not sealed", sealed)
	}
	got := s.Keyring().Keys()
	if len(got) != 2 || !bytes.Equal(got[0], keys[0]) || !bytes.Equal(got[1], keys[1]) {
		t.Errorf("the node seals with %x; want the derived keys %x, primary first", got, keys)
	}
	for _, k := range got {
		for _, raw := range secrets {
			if bytes.Equal(k, raw) {
				t.Errorf("the node seals with a raw -secret key %x, memberlist's key", raw)
			}
		}
	}
}
