package quic

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"net/netip"

	qgo "github.com/quic-go/quic-go"
)

// derivedResetKey derives a stateless reset key from the private key of
// the first certificate in conf and the bound address, or returns nil when
// there is no certificate with a key that can be marshalled (a
// GetCertificate callback, a hardware key). The derivation is one-way (an
// HMAC under the private key), so the reset key reveals nothing of the
// private key, and it is the same after a restart with the same
// certificate key at the same address, which is what stateless resets need.
//
// It also returns nil for an unspecified IP (a wildcard bind such as
// ":7946"): then the address does not tell nodes apart, and nodes sharing a
// certificate would share a reset key, which lets an attacker who sends one
// node a packet of another node's connection get a valid reset for it (RFC
// 9000, section 10.3.2). Nodes that share a certificate key must set
// Config.StatelessResetKey to a key of their own.
func derivedResetKey(conf *tls.Config, addr string) *qgo.StatelessResetKey {
	if conf == nil || len(conf.Certificates) == 0 || conf.Certificates[0].PrivateKey == nil {
		return nil
	}
	if ap, err := netip.ParseAddrPort(addr); err != nil || ap.Addr().IsUnspecified() {
		return nil
	}
	der, err := x509.MarshalPKCS8PrivateKey(conf.Certificates[0].PrivateKey)
	if err != nil {
		return nil
	}
	mac := hmac.New(sha256.New, der)
	mac.Write([]byte("plumtree quic stateless reset key\x00" + addr))
	var key qgo.StatelessResetKey
	copy(key[:], mac.Sum(nil))
	return &key
}
