package stack_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/plumtree-go/plumtree/stack"
	"github.com/plumtree-go/plumtree/transport/devcert"
)

// start runs a node on loopback, closed at the end of the test.
func start(t *testing.T, cfg stack.Config) *stack.Stack {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	s, err := stack.New(cfg)
	if err != nil {
		t.Fatalf("node %q: %v", cfg.Name, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// refused checks that New refuses cfg with an error containing every one
// of want, and returns it.
func refused(t *testing.T, cfg stack.Config, want ...string) error {
	t.Helper()
	done := make(chan struct{})
	defer close(done)
	go func() { // a watchdog: every refusal here is quick
		select {
		case <-done:
		case <-time.After(time.Minute):
			panic("stack.New did not return within a minute")
		}
	}()
	s, err := stack.New(cfg)
	if err == nil {
		s.Close()
		t.Fatalf("New was accepted: name %q, transport %q, join %v", cfg.Name, cfg.Transport, cfg.Join)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("New: %v\nwant it to say %q", err, w)
		}
	}
	return err
}

// A wildcard listen address without Advertise would tell the others an
// address they cannot reach.
func TestWildcardNeedsAdvertise(t *testing.T) {
	for _, addr := range []string{":0", "0.0.0.0:0", "[::]:0"} {
		refused(t, stack.Config{Listen: addr}, "wildcard", "Advertise")
	}
	// With Advertise, the transport binds the advertised IP.
	s := start(t, stack.Config{Listen: "0.0.0.0:0", Advertise: "127.0.0.1"})
	if got := s.Transport.LocalAddr(); !strings.HasPrefix(got, "127.0.0.1:") {
		t.Errorf("advertised broadcast address %s", got)
	}
	if got := s.ClusterAddr(); !strings.HasPrefix(got, "127.0.0.1:") {
		t.Errorf("advertised memberlist address %s", got)
	}
}

// A loopback address advertised to a seed elsewhere cannot be reached by
// it; refused before anything is sent.
func TestLoopbackAdvertisedToRemoteSeed(t *testing.T) {
	refused(t, stack.Config{Listen: "127.0.0.1:0", Join: []string{"192.0.2.1:7001"}}, "loopback", "192.0.2.1:7001")
}

// A second node with a live node's name is refused: it would displace the
// live node, which then missed broadcasts. The live node stays.
func TestNameAlreadyAlive(t *testing.T) {
	a := start(t, stack.Config{Name: "alpha"})
	b := start(t, stack.Config{Name: "beta", Join: []string{a.ClusterAddr()}})
	err := refused(t, stack.Config{Name: "alpha", Listen: "127.0.0.1:0", Join: []string{b.ClusterAddr()}}, `"alpha" is already alive`, a.ClusterAddr())
	var ce *stack.ConflictError
	if !errors.As(err, &ce) {
		t.Errorf("%T, want a *stack.ConflictError", err)
	}
	for _, m := range b.Membership.Members() {
		if m.ID == "alpha" && m.Addr != a.Transport.LocalAddr() {
			t.Errorf("beta lists alpha at %s, not at the live node's %s", m.Addr, a.Transport.LocalAddr())
		}
	}
}

// Nodes that could not read each other's broadcast traffic do not form a
// cluster: another secret, no secret, another CA, another transport.
func TestSecurityMismatch(t *testing.T) {
	key := func(b byte) [][]byte { return [][]byte{bytes.Repeat([]byte{b}, 32)} }
	tlsOf := func(ca *devcert.UnsafeCA, name string) *tls.Config {
		c, err := ca.UnsafeMutualTLS(name, "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ca1, err := devcert.NewUnsafeCA()
	if err != nil {
		t.Fatal(err)
	}
	ca2, err := devcert.NewUnsafeCA()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name        string
		seed, other stack.Config
	}{
		{"another secret", stack.Config{Secret: key(1)}, stack.Config{Secret: key(2)}},
		{"no secret", stack.Config{Secret: key(1)}, stack.Config{}},
		{"a secret the seed lacks", stack.Config{}, stack.Config{Secret: key(1)}},
		{"another CA", stack.Config{Transport: "tcp", TLS: tlsOf(ca1, "a")}, stack.Config{Transport: "tcp", TLS: tlsOf(ca2, "b")}},
		{"TLS the seed lacks", stack.Config{Transport: "tcp"}, stack.Config{Transport: "tcp", TLS: tlsOf(ca1, "b")}},
		{"another transport", stack.Config{Transport: "udp+tcp"}, stack.Config{Transport: "tcp"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.seed.Name, c.other.Name = "a", "b"
			a := start(t, c.seed)
			c.other.Join = []string{a.ClusterAddr()}
			c.other.Listen = "127.0.0.1:0"
			refused(t, c.other, "join", "secret or TLS CA")
		})
	}
	// The same settings join.
	a := start(t, stack.Config{Name: "a", Transport: "tcp", TLS: tlsOf(ca1, "a"), Secret: key(1)})
	start(t, stack.Config{Name: "b", Transport: "tcp", TLS: tlsOf(ca1, "b"), Secret: key(1), Join: []string{a.ClusterAddr()}})
}

func TestUnknownNames(t *testing.T) {
	refused(t, stack.Config{Listen: "127.0.0.1:0", Transport: "mem"}, `unknown transport "mem" (want udp+tcp, tcp, quic)`)
	refused(t, stack.Config{Listen: "127.0.0.1:0", Preset: "fast"}, `unknown preset "fast"`)
	refused(t, stack.Config{Listen: "127.0.0.1:0", Transport: "quic"}, "quic needs TLS")
	refused(t, stack.Config{}, "Listen is required")
}
