package transport

import "crypto/x509"

// PeerName is the identity a TLS transport reports for a verified peer
// certificate, by default (Message.Identity, PeerIdentity): the opaque part
// of its "plumtree:<name>" URI SAN, or else its common name. Certificates
// from transport/devcert carry the SAN; a deployment's own certificates
// can carry it too, or the transport's config can map certificates another
// way.
//
// It lives in the port, beside Message.Identity, so that every TLS
// transport names peers the same way without importing transport/devcert.
func PeerName(cert *x509.Certificate) string {
	for _, u := range cert.URIs {
		if u.Scheme == "plumtree" && u.Opaque != "" {
			return u.Opaque
		}
	}
	return cert.Subject.CommonName
}
