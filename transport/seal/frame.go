package seal

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/plumtree-go/plumtree/transport"
)

// The sealed frame:
//
//	version   1 byte   Version
//	key ID    4 bytes  which key sealed it (see Keyring)
//	nonce    12 bytes  the sealing key's random 4-byte prefix in this
//	                   process, then its 8-byte counter (see key.nonce)
//	sealed    rest     AES-GCM of (send time, 8 bytes, Unix nanoseconds,
//	                   big-endian; then the payload), with its 16-byte tag
//
// The associated data (authenticated, not sent) is the version and key ID,
// the path (one byte), the length of the sender's address (uvarint), the
// sender's address as the receiver's transport reports it in Message.From,
// and the destination address (the receiver's LocalAddr).
const (
	// Version is the first byte of every sealed frame. Version 1 had random
	// nonces and left the destination out of the associated data; its
	// frames are refused (ReasonVersion).
	Version byte = 2
	// Overhead is how many bytes sealing adds to a frame: version, key ID,
	// nonce, send time and tag.
	Overhead = headerLen + timeLen + tagLen

	idLen     = 4
	nonceLen  = 12
	headerLen = 1 + idLen + nonceLen
	timeLen   = 8
	tagLen    = 16
)

// Reason says why a received frame was refused.
type Reason uint8

// Reasons for refusing a frame, counted in Refused.
const (
	reasonNone    Reason = iota
	ReasonShort          // shorter than Overhead
	ReasonVersion        // an unknown version byte
	ReasonKey            // a key ID that no installed key has
	ReasonAuth           // the tag does not verify: wrong key, changed bytes, another sender address or path
	ReasonWindow         // the send time is outside the replay window, or too old for the replay cache to tell (see WithReplayCache)
	ReasonReplay         // a frame that already opened within the window
)

// String names the reason.
func (r Reason) String() string {
	switch r {
	case reasonNone:
		return "none"
	case ReasonShort:
		return "short"
	case ReasonVersion:
		return "version"
	case ReasonKey:
		return "unknown_key"
	case ReasonAuth:
		return "auth"
	case ReasonWindow:
		return "window"
	case ReasonReplay:
		return "replay"
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// appendAD appends the associated data of a frame with the given header,
// sent from the address from to the address to.
func appendAD(ad, header []byte, path transport.Path, from, to string, bindAddrs bool) []byte {
	ad = append(ad, header[:1+idLen]...)
	ad = append(ad, byte(path))
	if bindAddrs {
		ad = binary.AppendUvarint(ad, uint64(len(from)))
		ad = append(ad, from...)
		ad = append(ad, to...)
	}
	return ad
}

// seal appends to dst the frame sealing p with kr's primary key, sent at now
// on path from the sender address from to the address to; ad is scratch
// space for the associated data. It returns the extended dst and the
// scratch.
func (kr *Keyring) seal(dst, ad, p []byte, path transport.Path, from, to string, bindAddrs bool, now time.Time) (out, scratch []byte) {
	k := kr.cur.Load().keys[0]
	start := len(dst)
	need := Overhead + len(p)
	if cap(dst)-start < need {
		grown := make([]byte, start, start+need)
		copy(grown, dst)
		dst = grown
	}
	dst = dst[:start+headerLen+timeLen+len(p)]
	h := dst[start:]
	h[0] = Version
	putID(h[1:], k.id)
	k.nonce(h[1+idLen : headerLen])
	binary.BigEndian.PutUint64(h[headerLen:], uint64(now.UnixNano()))
	copy(h[headerLen+timeLen:], p)
	ad = appendAD(ad[:0], h, path, from, to, bindAddrs)
	plain := h[headerLen:]
	// Sealing in place: dst[:start+headerLen] is followed by plain.
	out = k.aead.Seal(dst[:start+headerLen], h[1+idLen:headerLen], plain, ad)
	return out, ad
}

// open checks and opens a sealed frame in place, received on path from the
// address from at the address to, and returns its payload (a slice of b)
// and its send time; ad is scratch space. On failure it returns why; b may
// then have been overwritten.
func (kr *Keyring) open(b, ad []byte, path transport.Path, from, to string, bindAddrs bool) (payload []byte, sent int64, why Reason, scratch []byte) {
	if len(b) < Overhead {
		return nil, 0, ReasonShort, ad
	}
	if b[0] != Version {
		return nil, 0, ReasonVersion, ad
	}
	k := kr.cur.Load().lookup(binary.BigEndian.Uint32(b[1:]))
	if k == nil {
		return nil, 0, ReasonKey, ad
	}
	ad = appendAD(ad[:0], b, path, from, to, bindAddrs)
	ct := b[headerLen:]
	plain, err := k.aead.Open(ct[:0], b[1+idLen:headerLen], ct, ad)
	if err != nil {
		return nil, 0, ReasonAuth, ad
	}
	return plain[timeLen:], int64(binary.BigEndian.Uint64(plain)), reasonNone, ad
}

// inWindow reports whether a frame sent at sent (Unix nanoseconds) may be
// accepted at now: within window either way, or always for window 0.
func inWindow(sent int64, now time.Time, window time.Duration) bool {
	if window <= 0 {
		return true
	}
	n := now.UnixNano()
	// The difference of two int64s always fits in a uint64.
	if sent <= n {
		return uint64(n)-uint64(sent) <= uint64(window)
	}
	return uint64(sent)-uint64(n) <= uint64(window)
}
