package main

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/plumtree-go/plumtree/gossip"
	"github.com/plumtree-go/plumtree/stack"
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

// sealKeys derives the seal's keys from the -secret keys (stack.SealKeys).
func sealKeys(secrets [][]byte) ([][]byte, error) { return stack.SealKeys(secrets) }

// sealTransport wraps the broadcast transport tr (named name) as the stack
// does (stack.Seal), with the keys of the -secret flag's value. On error tr
// is closed.
func sealTransport(name string, tr transport.Transport, secret string) (transport.Transport, error) {
	secrets, err := decodeSecrets(secret)
	if err != nil {
		tr.Close()
		return nil, err
	}
	return stack.Seal(name, tr, secrets)
}

// reportRefused writes what the node refused, if anything: frames whose
// seal did not open (by reason), connections refused, and frames gossip
// could not read or authenticate. Counters at zero are left out, and
// nothing is written when nothing was refused.
func reportRefused(w io.Writer, name string, tr transport.Transport, stats func() (gossip.Stats, error)) {
	var parts []string
	if s, ok := tr.(seal.Transport); ok {
		r := s.SealStats().Refused
		if r.Total() > 0 {
			var why []string
			for _, c := range []struct {
				n    uint64
				name string
			}{{r.Short, "short"}, {r.Version, "version"}, {r.UnknownKey, "unknown key"}, {r.Auth, "auth"}, {r.Window, "window"}, {r.Replay, "replay"}} {
				if c.n > 0 {
					why = append(why, fmt.Sprintf("%s %d", c.name, c.n))
				}
			}
			parts = append(parts, fmt.Sprintf("seal %d (%s)", r.Total(), strings.Join(why, ", ")))
		}
	}
	if r, ok := tr.(transport.StatsReporter); ok {
		if n := r.Stats().ConnectionsRefused; n > 0 {
			parts = append(parts, fmt.Sprintf("connections %d (failed handshakes, hellos without a valid proof, over the cap)", n))
		}
	}
	if st, err := stats(); err == nil && st.DecodeErrors > 0 {
		parts = append(parts, fmt.Sprintf("gossip %d unreadable or unauthenticated frames", st.DecodeErrors))
	}
	if len(parts) > 0 {
		fmt.Fprintf(w, "node %s: refused: %s\n", name, strings.Join(parts, "; "))
	}
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
