// Package quic carries both transport paths over QUIC (github.com/quic-go/quic-go):
// the stream path on QUIC streams and the datagram path on RFC 9221
// unreliable datagrams, with TLS 1.3 (optionally mutual) on every connection.
//
// # Usage
//
//	tlsConf, err := ca.UnsafeMutualTLS("node-1", "127.0.0.1") // devcert, tests only
//	...
//	t, err := quic.Listen("127.0.0.1:7946", quic.Config{TLS: tlsConf, Enable0RTT: true})
//	if err != nil { ... }
//	defer t.Close()
//	err = t.SendFrame(ctx, "127.0.0.1:7947", frame)   // reliable, ordered
//	err = t.SendDatagram(ctx, "127.0.0.1:7947", small) // best effort
//	for m := range t.Frames() { ... }                  // m.From is the sender's LocalAddr
//
// A Transport implements transport.Stream, transport.Datagram and
// transport.StatsReporter. Production code brings its own certificates in
// Config.TLS; package devcert makes throwaway ones for tests.
//
// # Design
//
// One UDP socket per Transport, driven by one quic-go Transport, both accepts
// and dials. Because outgoing connections leave from the listening socket, the
// remote UDP address of an incoming connection is the dialer's listening
// address, so Message.From is simply the connection's remote address and no
// handshake of our own is needed. (This assumes no NAT between peers, and a
// Transport bound to a specific IP rather than a wildcard, so that LocalAddr
// is an address peers can send to.)
//
// Connections: there is at most one sending connection per peer address,
// reused for every frame and datagram to it. A connection accepted from a peer
// is used to send back to that peer too, so normally a pair of peers shares one
// connection. While a connection the peer dialed is in its handshake, it
// stands for a dial (for up to a second): what is sent to the peer waits
// for it rather than dialing a second one. If two peers dial each other
// before either has heard from the other, both
// connections stay open, each carrying one direction; when the sending
// connection dies another live connection to the same peer is adopted, and
// only if there is none is the peer redialed (in the background when frames
// are waiting, so frames already accepted are not stranded).
//
// Stream path: each sending connection has one long-lived unidirectional
// stream carrying frames as a 4-byte big-endian length followed by the bytes,
// written by one writer goroutine from a bounded per-peer queue
// (Config.SendQueueSize). QUIC orders bytes within a stream, so frames arrive
// whole and in order; backpressure runs from the receiver's reader through
// QUIC flow control (Config.MaxStreamData) to the writer, then the queue, then
// SendFrame, which blocks until ctx is done. A received length above
// MaxFrameSize closes the connection and counts a dropped frame; the receiver
// grows a frame's buffer as its bytes arrive, so it never holds more than
// about twice what the peer actually sent, plus 64 KiB. Across a
// reconnect, frames still queued go to the new connection in order; frames
// written on the dead connection may be lost (as with TCP), never duplicated.
// Frames waiting together are written in one stream write (up to 32 KiB), so
// that small frames share packets.
//
// Dialing: SendFrame towards a peer with no connection dials it (one dial at a
// time per peer, shared by concurrent callers) and fails with an error
// wrapping transport.ErrUnreachable if the handshake fails. quic-go dials over
// the transport's unconnected UDP socket, which never sees ICMP errors, so on
// its own a dial to an address nobody listens on fails only when
// Config.HandshakeTimeout runs out (5 s by default). To fail at once where
// the network says so, each dial also sends one non-QUIC byte from a
// connected socket of its own and aborts the dial if that socket reports an
// ICMP port unreachable (ECONNREFUSED); QUIC endpoints drop such a byte.
// Hosts that are down or behind filters still take the handshake timeout.
//
// 0-RTT: with Config.Enable0RTT the client side keeps TLS session tickets per
// peer address and dials with DialEarly, and the server side accepts 0-RTT, so
// a reconnect to a known peer resumes the TLS session (no certificate
// exchange) with early data accepted. This transport does not yet put frames
// or datagrams into the 0-RTT flight, though: quic-go (still at v0.66) has a
// data race between opening a stream (or sending a datagram) and the handshake that
// installs the server's transport parameters (quic-go issue #4303), so the
// writers wait for the handshake to complete. A reconnect thus still waits one
// round trip before its first frame, as a full handshake does, but skips the
// certificate chain and signature checks; dropping the wait in writeFrames and
// writeDatagrams once quic-go is fixed sends the first frames in 0-RTT. Were
// 0-RTT data sent, an attacker could replay it; frames carry message IDs the
// core deduplicates. Received frames and datagrams are delivered only once the
// handshake has completed, so nothing is delivered from a peer whose
// certificate has not been verified.
//
// Datagram path: SendDatagram never blocks. It puts a copy of the datagram on
// the peer's bounded queue (Config.DatagramQueueSize), drained by a writer
// goroutine of the sending connection; with no connection it starts a
// background dial and the queue holds the datagrams meanwhile. A full queue
// drops the datagram and counts it. The size limit, MaxDatagramSize, is
// conservative: it fits a QUIC packet of the minimum size every QUIC path
// carries (1200 bytes), whatever the path MTU turns out to be.
//
// Identity: every frame and datagram carries, in Message.Identity, the name
// in the peer's verified certificate (transport.PeerName: the "plumtree:<name>"
// URI SAN, else the common name), which gossip.Options.Authenticate checks
// against the frame's sender ID; PeerCertificate returns the certificate
// itself. Because datagrams carry it too (the transport says so with
// AuthenticatesDatagrams), the gossip core keeps sending small payloads and
// announcements by datagram with Authenticate set, where over UDP it sends
// everything by stream.
//
// Impersonation and inbound connections: this transport has no hello of its
// own in which a peer could claim an address: Message.From is the remote
// address of a connection whose handshake completed, and a QUIC handshake
// takes round trips, so a peer that spoofs another's source address never
// completes one. A peer with a certificate of its own sends from its own
// address, and its frames carry its own Message.Identity. Accepted
// connections, handshakes included, are capped (Config.MaxInboundConnections,
// 1024 by default); a handshake that fails (a client certificate from a
// foreign CA, say) or a connection over the cap is counted in
// Stats.ConnectionsRefused.
//
// Like package transport, this package must never import the gossip core.
package quic
