package devcert

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// File names in a directory used by LoadOrCreateUnsafeCA.
const (
	CAFile    = "plumtree-unsafe-ca.pem"
	CAKeyFile = "plumtree-unsafe-ca-key.pem"
)

// LoadOrCreateUnsafeCA reads the CA saved in dir, or creates one and saves
// it there (the key readable by the owner only), so that several processes
// on one machine can trust each other: the first creates it, the others
// read it. It is UNSAFE FOR PRODUCTION: whoever can read dir can mint
// certificates the whole cluster trusts.
func LoadOrCreateUnsafeCA(dir string) (*UnsafeCA, error) {
	certPath, keyPath := filepath.Join(dir, CAFile), filepath.Join(dir, CAKeyFile)
	if ca, err := loadCA(certPath, keyPath); err == nil {
		return ca, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	ca, err := NewUnsafeCA()
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(ca.key)
	if err != nil {
		return nil, fmt.Errorf("devcert: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("devcert: %w", err)
	}
	// The key first, created exclusively: of two processes racing, one
	// wins and the other reads what the winner wrote.
	if err := writeExclusive(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return waitLoad(certPath, keyPath)
		}
		return nil, err
	}
	tmp := certPath + ".tmp"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw}), 0o644); err != nil {
		return nil, fmt.Errorf("devcert: %w", err)
	}
	if err := os.Rename(tmp, certPath); err != nil {
		return nil, fmt.Errorf("devcert: %w", err)
	}
	return ca, nil
}

func writeExclusive(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("devcert: %w", err)
	}
	return f.Close()
}

// waitLoad reads a CA another process is writing: its key exists, its
// certificate follows by a rename.
func waitLoad(certPath, keyPath string) (*UnsafeCA, error) {
	var err error
	for range 100 {
		var ca *UnsafeCA
		if ca, err = loadCA(certPath, keyPath); err == nil {
			return ca, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		time.Sleep(20 * time.Millisecond) // the other process is writing it
	}
	return nil, fmt.Errorf("devcert: %s exists but %s never appeared: %w", keyPath, certPath, err)
}

func loadCA(certPath, keyPath string) (*UnsafeCA, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, err
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, fmt.Errorf("devcert: %s or %s is not PEM", certPath, keyPath)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("devcert: %s: %w", certPath, err)
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("devcert: %s: %w", keyPath, err)
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(&key.PublicKey) {
		return nil, fmt.Errorf("devcert: %s does not match %s", keyPath, certPath)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &UnsafeCA{cert: cert, key: key, pool: pool}, nil
}
