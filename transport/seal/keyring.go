package seal

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	cryptorand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
)

// ErrKeySize is returned (wrapped) for a key that is not 16, 24 or 32 bytes.
var ErrKeySize = errors.New("seal: a key must be 16, 24 or 32 bytes (AES-128, AES-192 or AES-256)")

// key is one installed key with its cipher, ready for concurrent use (AES-GCM
// keeps no state between calls).
type key struct {
	id   uint32
	raw  []byte
	aead cipher.AEAD
	// prefix and counter make this process's nonces under the key: the
	// prefix is drawn at random when the key is installed, the counter
	// starts at a random value and goes up by one per frame (see nonce).
	prefix  [4]byte
	counter atomic.Uint64
}

// nonce writes the next nonce under k into b (nonceLen bytes): the key's
// random prefix and its counter, incremented. A process never repeats a
// nonce under a key (the counter would have to go round 2⁶⁴ times); two
// processes repeat one only if they drew the same prefix and their
// counters, started at random, run into each other: see the package doc.
func (k *key) nonce(b []byte) {
	copy(b, k.prefix[:])
	binary.BigEndian.PutUint64(b[4:nonceLen], k.counter.Add(1))
}

// ring is an immutable set of keys; keys[0] is the primary.
type ring struct{ keys []*key }

// lookup finds the key with the given ID (a ring holds a few keys: a scan
// is quicker than a map).
func (r *ring) lookup(id uint32) *key {
	for _, k := range r.keys {
		if k.id == id {
			return k
		}
	}
	return nil
}

func (r *ring) index(raw []byte) int {
	for i, k := range r.keys {
		if bytes.Equal(k.raw, raw) {
			return i
		}
	}
	return -1
}

// Keyring holds the keys a sealed transport uses: the primary key seals what
// is sent, and every key opens what is received. It is safe for concurrent
// use, also while traffic flows: each change installs a new set of keys at
// once, and a frame is sealed or opened with one consistent set.
//
// Rotate a cluster's key in three steps, each done on every node before the
// next begins:
//
//  1. AddKey(new): every node can now open frames sealed with new.
//  2. UseKey(new): nodes seal with new; the old key still opens frames sealed
//     before the switch.
//  3. RemoveKey(old), once frames sealed with old have drained (they were
//     queued or in flight during step 2: wait a few seconds, longer than the
//     longest send queue takes to empty).
//
// The same steps rotate memberlist's keyring (memberlist.Keyring has the
// same three methods).
type Keyring struct {
	mu  sync.Mutex // serializes changes
	cur atomic.Pointer[ring]
}

// NewKeyring returns a keyring that seals with primary and opens with
// primary and others. Each key is 16, 24 or 32 bytes (AES-128, AES-192,
// AES-256), as memberlist's keys are; use random bytes (crypto/rand), not a
// password.
func NewKeyring(primary []byte, others ...[]byte) (*Keyring, error) {
	k, err := newKey(primary)
	if err != nil {
		return nil, err
	}
	kr := &Keyring{}
	kr.cur.Store(&ring{keys: []*key{k}})
	for _, o := range others {
		if err := kr.AddKey(o); err != nil {
			return nil, err
		}
	}
	return kr, nil
}

// keyID is the 4-byte key ID a sealed frame carries: the top of the xxhash
// of the key, with a label so that it is not the hash other software may
// publish of the same bytes. It identifies a key among a few; it reveals 32
// bits of a hash of a key with 128 or more random bits, which does not help
// find the key.
func keyID(raw []byte) uint32 {
	d := xxhash.New()
	d.WriteString("plumtree/seal key id\x00")
	d.Write(raw)
	return uint32(d.Sum64() >> 32)
}

func newKey(raw []byte) (*key, error) {
	switch len(raw) {
	case 16, 24, 32:
	default:
		return nil, fmt.Errorf("%w: got %d bytes", ErrKeySize, len(raw))
	}
	raw = bytes.Clone(raw)
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	k := &key{id: keyID(raw), raw: raw, aead: aead}
	var start [12]byte
	cryptorand.Read(start[:]) // never fails (Go 1.24+)
	copy(k.prefix[:], start[:4])
	k.counter.Store(binary.BigEndian.Uint64(start[4:]))
	return k, nil
}

// AddKey installs key for opening received frames; the primary key does not
// change. Adding a key already installed does nothing. A key whose 4-byte
// ID equals that of another installed key is refused (a one in four billion
// chance: draw another key).
func (kr *Keyring) AddKey(raw []byte) error {
	k, err := newKey(raw)
	if err != nil {
		return err
	}
	kr.mu.Lock()
	defer kr.mu.Unlock()
	r := kr.cur.Load()
	if r.index(raw) >= 0 {
		return nil
	}
	if r.lookup(k.id) != nil {
		return fmt.Errorf("seal: the new key's ID %08x is that of an installed key; draw another key", k.id)
	}
	kr.cur.Store(&ring{keys: append(append([]*key(nil), r.keys...), k)})
	return nil
}

// UseKey makes an installed key the primary: frames sent from now on are
// sealed with it. The key must have been added first.
func (kr *Keyring) UseKey(raw []byte) error {
	kr.mu.Lock()
	defer kr.mu.Unlock()
	r := kr.cur.Load()
	i := r.index(raw)
	if i < 0 {
		return errors.New("seal: UseKey: the key is not installed; AddKey it first")
	}
	if i == 0 {
		return nil
	}
	keys := make([]*key, 0, len(r.keys))
	keys = append(keys, r.keys[i])
	keys = append(keys, r.keys[:i]...)
	keys = append(keys, r.keys[i+1:]...)
	kr.cur.Store(&ring{keys: keys})
	return nil
}

// ErrRemovePrimary is returned by RemoveKey for the primary key.
var ErrRemovePrimary = errors.New("seal: RemoveKey: the key is the primary; UseKey another first")

// RemoveKey uninstalls a key: frames sealed with it are refused from now on.
// The primary key cannot be removed (ErrRemovePrimary); removing a key that
// is not installed does nothing.
func (kr *Keyring) RemoveKey(raw []byte) error {
	kr.mu.Lock()
	defer kr.mu.Unlock()
	r := kr.cur.Load()
	i := r.index(raw)
	switch {
	case i < 0:
		return nil
	case i == 0:
		return ErrRemovePrimary
	}
	keys := make([]*key, 0, len(r.keys)-1)
	keys = append(keys, r.keys[:i]...)
	keys = append(keys, r.keys[i+1:]...)
	kr.cur.Store(&ring{keys: keys})
	return nil
}

// Keys returns copies of the installed keys, the primary first.
func (kr *Keyring) Keys() [][]byte {
	r := kr.cur.Load()
	out := make([][]byte, len(r.keys))
	for i, k := range r.keys {
		out[i] = bytes.Clone(k.raw)
	}
	return out
}

// putID writes a key ID in a frame.
func putID(b []byte, id uint32) { binary.BigEndian.PutUint32(b, id) }
