package main

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"time"
)

// credentials are what every node of a room derives from its passphrase.
type credentials struct {
	TLS           *tls.Config // for quic.Config.TLS
	MemberlistKey []byte      // for memberlist.Config.SecretKey (AES-256)
}

// serverName is the name in the room's certificate. Every node dials with
// it, since the certificate names no IP address.
const serverName = "plumtree-chat"

// newCredentials derives the room's credentials from secret: an Ed25519 key
// and a self-signed certificate that every node holds alike (Ed25519
// signatures are deterministic, so every node makes the same certificate),
// trusted as the only root for mutual TLS, and memberlist's key.
//
// UNSAFE FOR PRODUCTION: a passphrase is only as strong as it is long, and
// all nodes share one key, so the certificate proves membership of the room,
// not who is speaking. (devcert.UnsafeCA, used by the stack example, cannot
// be shared by separate processes: its key never leaves memory.)
func newCredentials(secret string) (*credentials, error) {
	seed := sha256.Sum256([]byte("plumtree chat tls\x00" + secret))
	key := ed25519.NewKeyFromSeed(seed[:])
	epoch := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: serverName},
		DNSNames:              []string{serverName},
		NotBefore:             epoch,
		NotAfter:              epoch.AddDate(100, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	mlKey := sha256.Sum256([]byte("plumtree chat memberlist\x00" + secret))
	return &credentials{
		TLS: &tls.Config{
			Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}},
			RootCAs:      pool,
			ClientCAs:    pool,
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ServerName:   serverName,
			MinVersion:   tls.VersionTLS13,
		},
		MemberlistKey: mlKey[:],
	}, nil
}
