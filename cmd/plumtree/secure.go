package main

import (
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/plumtree-go/plumtree/gossip"
	"github.com/plumtree-go/plumtree/transport"
	"github.com/plumtree-go/plumtree/transport/seal"
)

// decodeSecrets reads the -secret flag: one or more comma-separated base64
// keys of 16, 24 or 32 bytes, the first the primary. Empty means none.
func decodeSecrets(s string) ([][]byte, error) {
	if s == "" {
		return nil, nil
	}
	var keys [][]byte
	for i, part := range strings.Split(s, ",") {
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(part))
		if err != nil {
			return nil, fmt.Errorf("-secret: key %d: %w", i+1, err)
		}
		if n := len(key); n != 16 && n != 24 && n != 32 {
			return nil, fmt.Errorf("-secret: key %d: %d bytes; want 16, 24 or 32", i+1, n)
		}
		keys = append(keys, key)
	}
	return keys, nil
}

// sealKeyInfo is the HKDF info string of the seal keys derived from -secret.
const sealKeyInfo = "plumtree seal v1"

// sealKeys derives the seal's keys from the -secret keys, one each, with
// HKDF-SHA256 (no salt, info sealKeyInfo, as long as the secret), so that
// seal and memberlist, which keeps the raw keys (as memberlist's own tools
// expect), never encrypt under the same AES key. The order, and with it
// the primary key, is kept.
func sealKeys(secrets [][]byte) ([][]byte, error) {
	keys := make([][]byte, len(secrets))
	for i, s := range secrets {
		k, err := hkdf.Key(sha256.New, s, nil, sealKeyInfo, len(s))
		if err != nil {
			return nil, fmt.Errorf("-secret: key %d: derive the seal key: %w", i+1, err)
		}
		keys[i] = k
	}
	return keys, nil
}

// sealTransport wraps the broadcast transport tr (named name) with keys
// derived from those of secret (sealKeys), for the transports without TLS
// of their own: udp+tcp and tcp. quic, whose security is mutual TLS, is
// returned as it is. With no secret, tr is returned as it is. On error tr
// is closed.
func sealTransport(name string, tr transport.Transport, secret string) (transport.Transport, error) {
	secrets, err := decodeSecrets(secret)
	if err != nil || len(secrets) == 0 || name == "quic" {
		if err != nil {
			tr.Close()
		}
		return tr, err
	}
	keys, err := sealKeys(secrets)
	if err != nil {
		tr.Close()
		return nil, err
	}
	kr, err := seal.NewKeyring(keys[0], keys[1:]...)
	if err != nil {
		tr.Close()
		return nil, err
	}
	s, err := seal.Wrap(tr, kr)
	if err != nil {
		tr.Close()
		return nil, err
	}
	return s, nil
}

// authenticate is the gossip Authenticate check for a node: with TLS, the
// sender ID of every frame must be the name in the sender's certificate
// (the node's -name); without, none.
func authenticate(tlsConf *tls.Config) func(sender, identity string) error {
	if tlsConf == nil {
		return nil
	}
	return gossip.MatchIdentity[string]
}

// reportRefused writes what the node refused: frames whose seal did not
// open (by reason) and frames gossip could not read or authenticate.
func reportRefused(w io.Writer, name string, tr transport.Transport, stats func() (gossip.Stats, error)) {
	var b strings.Builder
	fmt.Fprintf(&b, "node %s: refused:", name)
	if s, ok := tr.(seal.Transport); ok {
		r := s.SealStats().Refused
		fmt.Fprintf(&b, " seal %d (short %d, version %d, unknown key %d, auth %d, window %d, replay %d);",
			r.Total(), r.Short, r.Version, r.UnknownKey, r.Auth, r.Window, r.Replay)
	}
	if r, ok := tr.(transport.StatsReporter); ok {
		fmt.Fprintf(&b, " connections %d (failed handshakes, hellos without a valid proof, over the cap);", r.Stats().ConnectionsRefused)
	}
	if st, err := stats(); err == nil {
		fmt.Fprintf(&b, " gossip %d unreadable or unauthenticated frames", st.DecodeErrors)
	}
	fmt.Fprintln(w, b.String())
}

// readSecretFile sets *secret from the file at path (nothing for an empty
// path): one base64 key per line, the first the primary; blank lines and
// lines starting with # are skipped. -secret and -secret-file exclude each
// other.
func readSecretFile(secret *string, path string) error {
	if path == "" {
		return nil
	}
	if *secret != "" {
		return errors.New("-secret and -secret-file exclude each other")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("-secret-file: %w", err)
	}
	var keys []string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		keys = append(keys, line)
	}
	if len(keys) == 0 {
		return fmt.Errorf("-secret-file %s holds no key", path)
	}
	*secret = strings.Join(keys, ",")
	if _, err := decodeSecrets(*secret); err != nil {
		return fmt.Errorf("-secret-file %s: %w", path, err)
	}
	return nil
}
