package devcert

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// TestMutualTLS runs a real handshake over loopback: each side verifies the
// other, and the server sees the client's node name.
func TestMutualTLS(t *testing.T) {
	ca, err := NewUnsafeCA()
	if err != nil {
		t.Fatal(err)
	}
	srvCfg, err := ca.UnsafeMutualTLS("server", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cliCfg, err := ca.UnsafeMutualTLS("client", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cliCfg.ServerName = "127.0.0.1"
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srvCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- "accept: " + err.Error()
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			got <- "handshake: " + err.Error()
			return
		}
		got <- PeerName(tc.ConnectionState().PeerCertificates[0])
		io.Copy(io.Discard, c)
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), cliCfg)
	if err != nil {
		t.Fatal(err)
	}
	if name := PeerName(c.ConnectionState().PeerCertificates[0]); name != "server" {
		t.Errorf("client sees %q, want server", name)
	}
	if name := <-got; name != "client" {
		t.Errorf("server sees %q, want client", name)
	}
	c.Close()
}

// TestOtherCARefused: a certificate from another CA is refused.
func TestOtherCARefused(t *testing.T) {
	ca1, _ := NewUnsafeCA()
	ca2, _ := NewUnsafeCA()
	srvCfg, _ := ca1.UnsafeMutualTLS("server", "127.0.0.1")
	cliCfg, _ := ca2.UnsafeMutualTLS("intruder", "127.0.0.1")
	cliCfg.ServerName = "127.0.0.1"
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srvCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		done <- c.(*tls.Conn).Handshake()
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(c, cliCfg)
	if err := tc.Handshake(); err == nil {
		t.Error("client handshake with a server from another CA succeeded")
	}
	tc.Close()
	if err := <-done; err == nil {
		t.Error("server accepted a client from another CA")
	}
}

func TestEmptyName(t *testing.T) {
	ca, _ := NewUnsafeCA()
	if _, err := ca.Issue(""); err == nil {
		t.Error("Issue with an empty name succeeded")
	}
}

// TestLoadOrCreate: the first call creates the CA in the directory, the
// second reads the same one; a damaged file is an error.
func TestLoadOrCreate(t *testing.T) {
	dir := t.TempDir()
	a, err := LoadOrCreateUnsafeCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadOrCreateUnsafeCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !a.cert.Equal(b.cert) || !a.key.Equal(b.key) {
		t.Fatal("the second call made another CA")
	}
	srv, _ := a.UnsafeMutualTLS("a", "127.0.0.1")
	cli, _ := b.UnsafeMutualTLS("b", "127.0.0.1")
	if _, err := srv.Certificates[0].Leaf.Verify(x509.VerifyOptions{Roots: cli.RootCAs, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Errorf("a certificate of the first does not verify with the second: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, CAFile), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateUnsafeCA(dir); err == nil {
		t.Error("a damaged CA file was accepted")
	}
}
