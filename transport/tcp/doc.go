// Package tcp is the stream path (transport.Stream) over TCP, optionally with
// TLS and mutual authentication.
//
// Use it like this:
//
//	tr, err := tcp.Listen("10.0.0.5:7946", tcp.Config{})
//	if err != nil { ... }
//	defer tr.Close()
//	go func() {
//		for m := range tr.Frames() { // m.From is the sender's LocalAddr()
//			handle(m.From, m.Data)
//		}
//	}()
//	err = tr.SendFrame(ctx, "10.0.0.6:7946", payload)
//
// Listen on a concrete IP address: LocalAddr is what peers dial, and the
// dialer announces it to the listener, so a wildcard address would not
// identify the sender.
//
// # Connections and pooling
//
// A connection carries frames one way, from the dialer to the listener. The
// first SendFrame towards an address dials it (DialTimeout covers TCP, TLS
// and the protocol handshake); if that fails, SendFrame returns an error
// wrapping transport.ErrUnreachable. Later frames reuse the connection until
// it fails or stays idle for IdleTimeout; the next SendFrame after that dials
// again. Two peers that talk both ways have two connections.
//
// MaxConnectionsPerPeer must be 1 (the default). The Stream interface
// promises that frames from one sender to one address arrive in the order
// they were sent; frames spread over several TCP connections would race each
// other at the receiver, and putting them back in order needs sequence
// numbers and retransmission after a failed connection — TCP's own job. So
// the pool keeps one ordered connection per peer; Listen refuses larger
// values instead of pretending to honour them.
//
// # Queues and backpressure
//
// Each peer has a send queue bounded by SendQueueSize frames and
// SendQueueBytes bytes (a frame larger than SendQueueBytes still goes when the
// queue is empty). SendFrame copies the frame into the queue and returns; it
// blocks while the queue is full, until there is room, ctx is done (the
// error wraps ctx.Err()) or the transport closes (ErrClosed). A frame is
// queued whole or not at all. A writer goroutine takes the whole queue at a
// time and writes it with one vectored write (with TLS, coalesced into 16
// KiB records), so at most twice the queue bounds are held per peer. It
// runs only while the queue holds frames: a SendFrame to an empty queue
// starts one, and it exits once the queue is empty, so an idle outgoing
// connection costs one goroutine (the reader that notices its end) and an
// incoming one one (its read loop). A receiver that stops reading Frames stops
// its read loop, TCP's flow control fills the socket buffers, the writer
// blocks, the queue fills and SendFrame blocks: backpressure reaches the
// sender. WriteTimeout (off by default) gives up on a connection whose
// writes make no progress for that long.
//
// When a connection fails, the frames still queued for it are dropped and
// counted (Stats().FramesDropped) and logged; a frame for which SendFrame
// returned nil is delivered only if its connection lives to carry it. The
// core's protocol recovers from such losses.
//
// # Wire format
//
// The dialer opens each connection (after TLS, if configured) with
//
//	"PLTS" version(1 byte) addrLen(1 byte) addr(addrLen bytes)
//
// where addr is the dialer's LocalAddr, which becomes Message.From for every
// frame on the connection. The listener answers
//
//	"PLTS" version(1 byte) flag(1 byte) [challenge(32 bytes) if flag is 1]
//
// and, if it sent a challenge, reads the dialer's proof, proofLen(1 byte)
// proof(proofLen bytes), before it serves the connection (see Proven
// hellos). A listener that does not speak the dialer's version logs it,
// answers "PLTS" and its own version and closes; the dialer then fails with
// an error naming both versions. After that, each frame is a uvarint length
// followed by that many bytes. A length above the receiver's MaxFrameSize
// closes the connection (logged, counted as a dropped frame). Memory for a
// frame grows with the bytes actually received (at most 64 KiB ahead of
// them), never with the announced length alone.
//
// # Proven hellos
//
// The address in the hello is a claim: without TLS or a key, anyone who can
// reach the port can claim any member's address. The listener reads one
// connection per claimed address at a time (so that frames from a sender
// that reconnected are not overtaken by those still in flight on its old
// connection), and a new connection waits up to 10 s for the old one before
// closing it. An unproven connection that claims a member's address and then
// stays silent would hold that member's frames back for those 10 s, again
// and again. So a connection must prove its claim before it takes anything
// that belongs to the member it names:
//
//   - With a cluster key (package seal wraps the transport, and calls
//     AuthenticateHellos), the listener sends a fresh random challenge, and
//     the dialer answers with a proof made with the key over the
//     challenge, its own address and the listener's. A connection without a
//     valid proof is closed at the handshake and counted
//     (Stats.ConnectionsRefused); it never reaches the reader slot. A proof
//     seen on the network is worth nothing on another connection (another
//     challenge).
//   - With TLS, the claimed address is bound to the verified certificate:
//     if the certificate names IP addresses (devcert's do), a hello that
//     claims another IP is refused at the handshake and counted; and since
//     ports are not in certificates, the reader slot is that of the address
//     as claimed by the certificate's holder (its PeerName): a peer with a
//     certificate of its own that claims another member's address gets a
//     slot of its own, and its frames carry its own Message.Identity, which
//     gossip.Options.Authenticate refuses.
//   - With neither, nothing is proven: use one of the two where outsiders
//     can reach the port.
//
// An unproven connection still holds one of MaxInboundConnections, for at
// most DialTimeout (the handshake's bound).
//
// # TLS and peer identity
//
// With Config.TLS set, every connection is TLS (use TLS 1.3; set ClientAuth
// to tls.RequireAndVerifyClientCert for mutual authentication). A peer whose
// certificate does not verify is refused, counted (Stats.ConnectionsRefused)
// and delivers nothing. Every frame carries, in Message.Identity, the name
// in the certificate verified on the connection it came on (by default the
// "plumtree:<name>" URI SAN, else the common name; see Config.PeerName):
// gossip.Options.Authenticate checks the frame's sender ID against it.
// PeerIdentity(from) also returns the name of the latest connection from an
// address, but two certificates on one IP can claim the same address: use
// Message.Identity, not PeerIdentity, to decide whom to trust.
//
// This package must never import the gossip core: it moves opaque bytes.
package tcp
