package seal

import (
	"encoding/binary"

	"github.com/plumtree-go/plumtree/transport"
)

// helloLabel starts the associated data of a hello proof, so that a proof
// and a sealed frame can never be taken for each other.
const helloLabel = "plumtree/seal hello\x00"

// helloProofLen is the length of a hello proof: version, key ID, nonce and
// the tag over an empty plaintext.
const helloProofLen = headerLen + tagLen

// helloAuth proves the hellos of the connections of the wrapped transport
// with the keyring's keys (see transport.HelloAuthenticator): the proof is
// an AES-GCM tag, under the primary key, over the listener's challenge and
// both addresses.
type helloAuth struct {
	kr        *Keyring
	bindAddrs bool
}

var _ transport.HelloAuthenticator = helloAuth{}

func (h helloAuth) ad(dst, header, challenge []byte, from, to string) []byte {
	dst = append(dst, helloLabel...)
	dst = append(dst, header[:1+idLen]...)
	dst = binary.AppendUvarint(dst, uint64(len(challenge)))
	dst = append(dst, challenge...)
	if h.bindAddrs {
		dst = binary.AppendUvarint(dst, uint64(len(from)))
		dst = append(dst, from...)
		dst = append(dst, to...)
	}
	return dst
}

// ProveHello appends the proof for challenge, from and to, sealed with the
// primary key.
func (h helloAuth) ProveHello(dst, challenge []byte, from, to string) []byte {
	k := h.kr.cur.Load().keys[0]
	start := len(dst)
	dst = append(dst, make([]byte, headerLen)...)
	hd := dst[start:]
	hd[0] = Version
	putID(hd[1:], k.id)
	k.nonce(hd[1+idLen : headerLen])
	ad := h.ad(nil, hd, challenge, from, to)
	return k.aead.Seal(dst, hd[1+idLen:headerLen], nil, ad)
}

// VerifyHello reports whether proof opens with an installed key for
// challenge, from and to.
func (h helloAuth) VerifyHello(proof, challenge []byte, from, to string) bool {
	if len(proof) != helloProofLen || proof[0] != Version {
		return false
	}
	k := h.kr.cur.Load().lookup(binary.BigEndian.Uint32(proof[1:]))
	if k == nil {
		return false
	}
	ad := h.ad(nil, proof, challenge, from, to)
	_, err := k.aead.Open(nil, proof[1+idLen:headerLen], proof[headerLen:], ad)
	return err == nil
}
