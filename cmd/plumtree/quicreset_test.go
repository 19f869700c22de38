package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/plumtree-go/plumtree/transport/devcert"
)

// TestQUICResetKey: the stateless reset key is the same across restarts of
// a node (same key material, name and address), differs between nodes that
// share the material, and is absent where there is no secret to derive it
// from or no QUIC.
func TestQUICResetKey(t *testing.T) {
	dir := t.TempDir()
	if _, err := devcert.LoadOrCreateUnsafeCA(dir); err != nil {
		t.Fatal(err)
	}
	o := nodeOptions{transport: "quic", devTLS: dir, name: "n1", listen: "10.0.0.1:7000"}
	k1, err := quicResetKey(o)
	if err != nil || k1 == nil {
		t.Fatalf("dev-tls: key %v, err %v", k1, err)
	}
	again, err := quicResetKey(o)
	if err != nil || again == nil || *again != *k1 {
		t.Errorf("a restart derives another key: %v, err %v", again, err)
	}
	other := o
	other.name, other.listen = "n2", "10.0.0.2:7000"
	if k2, err := quicResetKey(other); err != nil || k2 == nil || *k2 == *k1 {
		t.Errorf("two nodes share a key (or none): %v, err %v", k2, err)
	}

	keyFile := filepath.Join(t.TempDir(), "node.key")
	if err := os.WriteFile(keyFile, []byte("not really a key, but secret bytes"), 0o600); err != nil {
		t.Fatal(err)
	}
	withKey := nodeOptions{transport: "quic", tlsKey: keyFile, name: "n1", listen: "10.0.0.1:7000"}
	if k, err := quicResetKey(withKey); err != nil || k == nil || *k == *k1 {
		t.Errorf("-tls-key: key %v, err %v; want one of its own", k, err)
	}
	withKey.tlsKey = filepath.Join(t.TempDir(), "missing.key")
	if _, err := quicResetKey(withKey); err == nil {
		t.Error("a missing key file gave no error")
	}
	if k, err := quicResetKey(nodeOptions{transport: "udp+tcp", devTLS: dir}); k != nil || err != nil {
		t.Errorf("udp+tcp: key %v, err %v; want none", k, err)
	}
	if k, err := quicResetKey(nodeOptions{transport: "quic"}); k != nil || err != nil {
		t.Errorf("quic without key material: key %v, err %v; want none", k, err)
	}
}
