// Package devcert makes throwaway certificates for development and tests:
// a certificate authority that lives in memory and the node certificates it
// signs, ready for mutual TLS between transports.
//
// Everything here is UNSAFE FOR PRODUCTION, which is why the names say so:
// the keys are never stored, nobody else can verify them, and every holder of
// a config made here trusts every certificate the same UnsafeCA issued. Use
// your own PKI (or certificates from an operator-run CA) for real clusters.
package devcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"github.com/plumtree-go/plumtree/transport"
	"math/big"
	"net"
	"net/url"
	"time"
)

// validity is how long issued certificates stay valid, counted from an hour
// before issue so that small clock differences do not matter.
const validity = 30 * 24 * time.Hour

// UnsafeCA is an in-memory certificate authority for development and tests.
// It is UNSAFE FOR PRODUCTION.
type UnsafeCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

// NewUnsafeCA creates a fresh certificate authority with a new key.
func NewUnsafeCA() (*UnsafeCA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("devcert: generate CA key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "plumtree UNSAFE development CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("devcert: create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("devcert: parse CA certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &UnsafeCA{cert: cert, key: key, pool: pool}, nil
}

// Pool returns a pool holding only this CA, for RootCAs and ClientCAs.
func (ca *UnsafeCA) Pool() *x509.CertPool { return ca.pool }

// Issue signs a certificate for a node. name becomes the subject's common
// name and a URI SAN "plumtree:<name>" (what a transport reports as the
// peer's identity); hosts are added as IP or DNS SANs, so that the node can
// be verified as a server at those addresses. The certificate is valid for
// both server and client authentication.
func (ca *UnsafeCA) Issue(name string, hosts ...string) (tls.Certificate, error) {
	if name == "" {
		return tls.Certificate{}, errors.New("devcert: empty node name")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("devcert: generate key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{{Scheme: "plumtree", Opaque: name}},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("devcert: create certificate for %q: %w", name, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("devcert: parse certificate for %q: %w", name, err)
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.cert.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

// UnsafeMutualTLS issues a certificate for name (see Issue) and returns a
// TLS 1.3 configuration that presents it and requires and verifies the
// peer's certificate against this CA, on both the server and the client
// side. A transport dialing with it sets ServerName to the host it dials
// unless the config names one.
func (ca *UnsafeCA) UnsafeMutualTLS(name string, hosts ...string) (*tls.Config, error) {
	cert, err := ca.Issue(name, hosts...)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		RootCAs:      ca.pool,
		ClientCAs:    ca.pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}, nil
}

// PeerName returns the node name a certificate issued by Issue carries: the
// opaque part of its "plumtree:" URI SAN, or else its common name. It is
// transport.PeerName, which the TLS transports use.
func PeerName(cert *x509.Certificate) string { return transport.PeerName(cert) }

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		// crypto/rand does not fail on supported platforms.
		panic(fmt.Sprintf("devcert: serial number: %v", err))
	}
	return n
}
