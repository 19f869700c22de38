package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"

	qgo "github.com/quic-go/quic-go"

	"github.com/plumtree-go/plumtree/transport/devcert"
)

// quicResetKey derives the node's QUIC stateless reset key from secret key
// material that outlives a restart: the -tls-key file, or with -dev-tls the
// development CA's key. With the same key after a restart, the node answers
// the packets its peers still send on their connections to its previous
// process with a stateless reset, and they redial at once; without it they
// keep sending into a dead connection until its idle timeout (30 s), and
// what they push to the node in that time reaches it only by the lazy
// path. The key is an HMAC of the node's name and address under that
// material, so nodes sharing the CA still get different keys (with
// -dev-tls any of them could compute the others': it is unsafe anyway).
// It returns nil for transports other than quic.
func quicResetKey(o nodeOptions) (*qgo.StatelessResetKey, error) {
	if o.transport != "quic" {
		return nil, nil
	}
	var path string
	switch {
	case o.tlsKey != "":
		path = o.tlsKey
	case o.devTLS != "":
		path = filepath.Join(o.devTLS, devcert.CAKeyFile)
	default:
		return nil, nil
	}
	secret, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("quic stateless reset key: %w", err)
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("plumtree quic stateless reset key\x00" + o.name + "\x00" + o.listen))
	var key qgo.StatelessResetKey
	copy(key[:], mac.Sum(nil))
	return &key, nil
}
