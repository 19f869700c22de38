// Package transport defines how the broadcast core moves bytes between nodes.
//
// A transport moves opaque frames between addresses (strings such as
// "127.0.0.1:7946"). It knows nothing of Plumtree, of node identities or of
// message types: the sender's identity travels inside the frame and the
// membership layer maps identities to addresses.
//
// There are two paths. The datagram path is best effort, unordered and bounded
// in size; sending more than the limit fails with a *TooLargeError that carries
// the limit. The stream path is reliable and ordered per peer, for frames up to
// a configured maximum. A transport offers one path or both; the core uses what
// is there. Optional capabilities (statistics, the remote's TLS identity) are
// separate interfaces found by type assertion.
//
// Buffer ownership: a Send method must not keep or modify the slice it is
// given once it returns. The Data of a received Message belongs to the
// receiver.
//
// This package holds the contract: the interfaces, the errors, and the
// small helpers every transport shares (Stats.Add, PeerName). Besides, it
// holds two combinators written against the interfaces alone (combine.go):
// Join, which makes a datagram transport and a stream transport one, and
// DatagramsOverStream, which carries datagrams over a stream transport and
// runs goroutines of its own (a demultiplexer, a sender per peer) that its
// Close stops. It has no network code: it must never import a socket
// package, an adapter, or the gossip core.
package transport

import (
	"context"
	"errors"
	"fmt"
)

// Path names the way a frame travels.
type Path uint8

const (
	// PathDatagram is best effort, unordered and bounded in size.
	PathDatagram Path = iota + 1
	// PathStream is reliable and ordered per peer.
	PathStream
)

// String is the path's name: datagram or stream.
func (p Path) String() string {
	switch p {
	case PathDatagram:
		return "datagram"
	case PathStream:
		return "stream"
	default:
		return fmt.Sprintf("path(%d)", uint8(p))
	}
}

// Message is a frame received from a peer.
type Message struct {
	// From is the sender's address: the LocalAddr of the transport that sent
	// it, so that a reply sent to From reaches the sender. (A stream
	// transport learns it in its connection handshake; the ephemeral port
	// of an outgoing connection is not an address.)
	From string
	// Data is the frame. It belongs to the receiver.
	Data []byte
	// Path is the path the frame arrived on.
	Path Path
	// Identity is the sender's authenticated identity: with TLS (tcp) and
	// QUIC, the name in the peer's verified certificate (for certificates
	// from transport/devcert, the node name given to Issue). Empty when the
	// transport does not authenticate its peers: a transport fills it only
	// if it implements Authenticator and Authenticates reports true, and the
	// gossip core reads it only from such a transport. The core can refuse
	// a frame whose sender ID does not match it (gossip.Options.Authenticate).
	Identity string
}

// Transport is what every transport has: an address and a way to stop.
type Transport interface {
	// LocalAddr is the address peers send to in order to reach this transport.
	LocalAddr() string
	// Close releases sockets and goroutines, unblocks every blocked call and
	// closes the receive channels. It is idempotent.
	Close() error
}

// Datagram is the best-effort path.
type Datagram interface {
	Transport
	// SendDatagram sends b to addr. It must not block on a slow or unreachable
	// receiver: a datagram that cannot be queued is dropped and counted, and
	// SendDatagram still returns nil. A frame longer than MaxDatagramSize fails
	// with a *TooLargeError; after Close it fails with an error wrapping
	// ErrClosed. ctx bounds any setup the transport does first (a handshake,
	// say); a transport that has none may ignore it.
	SendDatagram(ctx context.Context, addr string, b []byte) error
	// MaxDatagramSize is the largest frame SendDatagram accepts.
	MaxDatagramSize() int
	// Datagrams delivers received datagrams. It is closed by Close.
	Datagrams() <-chan Message
}

// Stream is the reliable path.
type Stream interface {
	Transport
	// SendFrame sends b to addr, whole and in order with the other frames sent
	// to the same addr: a frame sent after an earlier SendFrame to addr
	// returned arrives after it. It blocks while the send queue towards addr
	// is full (backpressure) until ctx is done, and then returns ctx's error
	// with the frame not sent: a frame goes whole or not at all. A frame
	// longer than MaxFrameSize fails with a *TooLargeError; after Close it
	// fails with an error wrapping ErrClosed, and Close unblocks a waiting
	// SendFrame the same way; an address nobody listens on fails with an
	// error wrapping ErrUnreachable (a transport that dials in the
	// background may report it on a later call).
	//
	// nil means the frame was queued, not that it was delivered: a peer that
	// crashes loses what was in flight, as with any connection.
	SendFrame(ctx context.Context, addr string, b []byte) error
	// MaxFrameSize is the largest frame SendFrame accepts.
	MaxFrameSize() int
	// Frames delivers received frames. It is closed by Close.
	Frames() <-chan Message
}

// ErrClosed is returned (wrapped) by operations on a closed transport.
var ErrClosed = errors.New("transport closed")

// ErrUnreachable is returned (wrapped) when a peer cannot be reached.
var ErrUnreachable = errors.New("peer unreachable")

// TooLargeError reports a frame longer than the path allows.
type TooLargeError struct {
	Path  Path // the path that refused it
	Size  int  // length of the refused frame
	Limit int  // the largest length the path accepts
}

// Error gives the path, the size and the limit.
func (e *TooLargeError) Error() string {
	return fmt.Sprintf("transport: %s frame of %d bytes exceeds the limit of %d", e.Path, e.Size, e.Limit)
}

// Stats are a transport's counters since it was created. They keep their
// values after Close.
type Stats struct {
	// DatagramsSent counts datagrams handed to the network (or queued for
	// it). DatagramsDropped counts datagrams this transport lost: accepted
	// by SendDatagram but never sent (a full send queue, Close), or
	// received with no room in the receive queue. Every datagram
	// SendDatagram accepted is counted as sent or dropped (a transport
	// that counts at queueing may count one as both). DatagramsReceived
	// counts datagrams queued for Datagrams, counted before the reader can
	// see them. Counters never go down: observers export them as monotonic
	// counters.
	DatagramsSent, DatagramsReceived, DatagramsDropped uint64
	// Frames are counted the same way on the stream path; FramesDropped
	// counts frames lost inside the transport (a connection that failed with
	// frames queued, frames refused by the receiving side).
	FramesSent, FramesReceived, FramesDropped uint64
	// Bytes count payload bytes (frames and datagrams, without the
	// transport's own headers) sent and received.
	BytesSent, BytesReceived uint64
	// Connections is the number of open connections to peers (0 for a
	// connectionless transport, and after Close).
	Connections int
	// ConnectionsRefused counts inbound connections refused before they
	// carried anything: a handshake that failed (a certificate that does
	// not verify, a hello without a valid proof, a timeout) or a
	// connection over the transport's inbound cap.
	ConnectionsRefused uint64
}

// Add returns the sum of s and o, field by field: the counters of several
// transports (the parts of a Joined, every transport an observer watches)
// as one.
func (s Stats) Add(o Stats) Stats {
	return Stats{
		DatagramsSent:      s.DatagramsSent + o.DatagramsSent,
		DatagramsReceived:  s.DatagramsReceived + o.DatagramsReceived,
		DatagramsDropped:   s.DatagramsDropped + o.DatagramsDropped,
		FramesSent:         s.FramesSent + o.FramesSent,
		FramesReceived:     s.FramesReceived + o.FramesReceived,
		FramesDropped:      s.FramesDropped + o.FramesDropped,
		BytesSent:          s.BytesSent + o.BytesSent,
		BytesReceived:      s.BytesReceived + o.BytesReceived,
		Connections:        s.Connections + o.Connections,
		ConnectionsRefused: s.ConnectionsRefused + o.ConnectionsRefused,
	}
}

// Authenticator is an optional interface: a transport that authenticates its
// peers says so. A transport without it, or whose Authenticates reports
// false, must leave Message.Identity empty; an identity from it would be a
// claim nothing verified, and the gossip core ignores it.
type Authenticator interface {
	// Authenticates reports whether a non-empty Message.Identity on this
	// transport's messages was verified (a certificate checked in a TLS
	// handshake, say). It does not change while the transport is open.
	Authenticates() bool
}

// Authenticates reports whether tr declares, through Authenticator, that it
// authenticates its peers.
func Authenticates(tr Transport) bool {
	a, ok := tr.(Authenticator)
	return ok && a.Authenticates()
}

// DatagramAuthenticator is an optional interface: an Authenticator whose
// datagrams ride its authenticated connections (QUIC's RFC 9221 datagrams,
// StreamDatagrams' tagged frames) says so, and then its datagrams carry a
// verified Message.Identity as its frames do. Without it a datagram's
// identity is taken as unverified: Joined's UDP datagrams, for one, carry
// none, whatever the stream transport beside them verifies.
type DatagramAuthenticator interface {
	// AuthenticatesDatagrams reports whether a non-empty Message.Identity
	// on this transport's datagrams was verified. It does not change while
	// the transport is open, and implies Authenticates.
	AuthenticatesDatagrams() bool
}

// AuthenticatesDatagrams reports whether tr declares, through
// DatagramAuthenticator, that its datagrams carry a verified identity too.
func AuthenticatesDatagrams(tr Transport) bool {
	a, ok := tr.(DatagramAuthenticator)
	return ok && a.AuthenticatesDatagrams() && Authenticates(tr)
}

// StatsReporter is an optional interface: a transport that counts its traffic.
type StatsReporter interface {
	// Stats returns the counters now.
	Stats() Stats
}

// HelloAuthenticator proves, and checks the proof, that the dialer of a
// connection holds a key the cluster shares. A stream transport whose
// connections open with a handshake of its own, claiming the dialer's
// address, asks the dialer for a proof over a fresh challenge of the
// listener's and both addresses, so that a connection that claims a
// member's address takes nothing of that member's (a reader slot, say)
// before it has proven the claim. Package seal implements it and hands it
// to the transport it wraps (see HelloAuthenticating).
type HelloAuthenticator interface {
	// ProveHello appends to dst the proof that the dialer at from, talking
	// to to, holds the key, for the listener's challenge.
	ProveHello(dst, challenge []byte, from, to string) []byte
	// VerifyHello reports whether proof is one ProveHello made with a key
	// this side holds for the same challenge and addresses.
	VerifyHello(proof, challenge []byte, from, to string) bool
}

// HelloAuthenticating is an optional interface: a transport that can make
// its connections prove their hello with a HelloAuthenticator (package tcp,
// and the combinators around it). Once set, every connection accepted must
// prove itself before it is served, and every connection dialed proves
// itself when asked. Set it before peers know the transport's address: it
// cannot be unset.
type HelloAuthenticating interface {
	AuthenticateHellos(HelloAuthenticator)
}
