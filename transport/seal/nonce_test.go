package seal

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/plumtree-go/plumtree/transport"
)

// Nonces under a key never repeat in a process: they are the key's random
// prefix and a counter that goes up by one per frame, also across the
// frames and hello proofs sealed concurrently; another keyring holding the
// same key (another process) draws another prefix.
func TestNonceCounter(t *testing.T) {
	kr := fuzzKeyring(t)
	now := time.Unix(0, 0)
	const n = 1000
	got := make(chan [nonceLen]byte, 2*n)
	done := make(chan struct{})
	for w := range 2 {
		go func() {
			defer func() { done <- struct{}{} }()
			for range n / 2 {
				var f []byte
				if w == 0 {
					f, _ = kr.seal(nil, nil, []byte("p"), transport.PathStream, "a", "b", true, now)
				} else {
					f = helloAuth{kr: kr, bindAddrs: true}.ProveHello(nil, []byte("challenge"), "a", "b")
				}
				got <- [nonceLen]byte(f[1+idLen : headerLen])
			}
		}()
	}
	<-done
	<-done
	close(got)
	seen := map[[nonceLen]byte]bool{}
	var prefix []byte
	for nc := range got {
		if seen[nc] {
			t.Fatalf("nonce %x sealed twice", nc)
		}
		seen[nc] = true
		if prefix == nil {
			prefix = bytes.Clone(nc[:4])
		} else if !bytes.Equal(prefix, nc[:4]) {
			t.Fatalf("prefix changed: %x then %x", prefix, nc[:4])
		}
	}
	if len(seen) != n {
		t.Fatalf("%d nonces", len(seen))
	}
	// The counters used are the n up to the last.
	last := kr.cur.Load().keys[0].counter.Load()
	for nc := range seen {
		if c := binary.BigEndian.Uint64(nc[4:]); last-c >= n {
			t.Fatalf("counter %d not among the %d up to %d", c, n, last)
		}
	}
	other := fuzzKeyring(t)
	if bytes.Equal(other.cur.Load().keys[0].prefix[:], prefix) {
		t.Errorf("two keyrings of the same key drew the same prefix %x", prefix)
	}
}

// A hello proof verifies for its challenge and addresses, with any
// installed key, and for nothing else.
func TestHelloProof(t *testing.T) {
	kr := fuzzKeyring(t)
	h := helloAuth{kr: kr, bindAddrs: true}
	ch := []byte("0123456789abcdef0123456789abcdef")
	proof := h.ProveHello(nil, ch, "10.0.0.1:7000", "10.0.0.2:7000")
	if len(proof) != helloProofLen {
		t.Fatalf("proof of %d bytes; want %d", len(proof), helloProofLen)
	}
	if !h.VerifyHello(proof, ch, "10.0.0.1:7000", "10.0.0.2:7000") {
		t.Fatal("a proof did not verify")
	}
	for name, ok := range map[string]bool{
		"another challenge":   h.VerifyHello(proof, []byte("another challenge"), "10.0.0.1:7000", "10.0.0.2:7000"),
		"another sender":      h.VerifyHello(proof, ch, "10.0.0.3:7000", "10.0.0.2:7000"),
		"another destination": h.VerifyHello(proof, ch, "10.0.0.1:7000", "10.0.0.3:7000"),
		"a byte moved":        h.VerifyHello(proof, ch, "10.0.0.1:700", "010.0.0.2:7000"),
		"cut short":           h.VerifyHello(proof[:len(proof)-1], ch, "10.0.0.1:7000", "10.0.0.2:7000"),
	} {
		if ok {
			t.Errorf("%s: the proof verified", name)
		}
	}
	// A frame sealed over the same bytes is no proof.
	frame, _ := kr.seal(nil, nil, nil, transport.PathStream, "10.0.0.1:7000", "10.0.0.2:7000", true, time.Unix(0, 0))
	if h.VerifyHello(frame[:helloProofLen], ch, "10.0.0.1:7000", "10.0.0.2:7000") {
		t.Error("a sealed frame passed as a proof")
	}
	// Another keyring with only another key: refused; with the key as a
	// second key (a rotation): verified.
	other, err := NewKeyring(bytes.Repeat([]byte{9}, 32))
	if err != nil {
		t.Fatal(err)
	}
	if (helloAuth{kr: other, bindAddrs: true}).VerifyHello(proof, ch, "10.0.0.1:7000", "10.0.0.2:7000") {
		t.Error("verified without the key")
	}
	other.AddKey(bytes.Repeat([]byte{7}, 32))
	if !(helloAuth{kr: other, bindAddrs: true}).VerifyHello(proof, ch, "10.0.0.1:7000", "10.0.0.2:7000") {
		t.Error("not verified with the key installed as a second key")
	}
}
