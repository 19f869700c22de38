// Package seal secures a transport without TLS with a cluster secret: a
// decorator that seals every datagram and every stream frame with AES-GCM
// under a key every node holds, and refuses what does not open.
//
//	kr, err := seal.NewKeyring(key)                    // 16, 24 or 32 random bytes
//	inner, err := udptcp.Listen(addr, udp.Config{}, tcp.Config{})
//	tr, err := seal.Wrap(inner, kr)                    // owns inner from now on
//	defer tr.Close()
//	node, err := gossip.New(cfg, gossip.Options[string, []byte]{Transport: tr, ...})
//
// The result implements the same paths as the inner transport
// (transport.Datagram, transport.Stream), with limits Overhead (41) bytes
// smaller, and transport.StatsReporter. Keys rotate without a restart: see
// Keyring.
//
// # What it protects
//
// Only holders of a key can send anything that is delivered: a frame from
// anyone else, a frame with a byte changed, or a frame sealed by another
// sender address, for another destination or for the other path is
// refused, and so is a second copy of a frame within the replay window
// (see Replay). Refused frames are counted by reason (SealStats) and never
// logged, so that a flood does not flood the logs. Payloads are encrypted,
// so their content is hidden from observers of the network; their sizes
// and timing are not.
//
// Connections too: Wrap hands the inner transport a hello authenticator
// if it takes one (transport.HelloAuthenticating: package tcp, and udptcp
// and DatagramsOverStream around it), and from then on every connection
// accepted must answer a fresh challenge with a proof made with a key of
// the keyring, over the challenge and both addresses, before it is served.
// A connection from an outsider that claims a member's address in its
// hello is closed at the handshake and counted
// (transport.Stats.ConnectionsRefused): it takes nothing of the member's
// (the reader slot of that address) and cannot hold up its frames.
//
// The seal authenticates the cluster, not the node: any key holder can
// claim any sender ID in the frames it seals. Where nodes must not
// impersonate each other, use mutual TLS (package quic, or tcp with TLS)
// and gossip.Options.Authenticate = gossip.MatchIdentity, which binds each
// sender ID to a certificate.
//
// # Replay
//
// An observer can capture a sealed frame and send it again, under the
// sender's address: a spoofed source address over UDP, say. Each frame
// carries its send time, sealed; a frame more than the replay window away
// from the receiver's clock (2 minutes by default, WithWindow) is refused
// (Refused.Window), so clocks must agree within the window (NTP does).
// Within the window, a replay cache remembers the key ID and nonce of
// every frame that opened, and refuses a second copy (Refused.Replay):
// each sealed frame opens at most once, whatever it carries: data, or
// control frames (Prune, Graft, IHave) that the gossip layer does not
// deduplicate. It opens only at its destination: the destination address
// is sealed into every frame, so a frame captured on its way to one node
// is refused by any other (Refused.Auth). The cache is bounded
// (WithReplayCache: 1<<20 frames, about 55 MB when full, by default); when
// full it forgets the earliest frames and refuses every frame sent as
// early as those (counted as Window), so replays stay refused and the
// window shrinks instead. Window 0 turns the window and the replay cache
// off: replay protection is then off too, and only the gossip layer's seen
// set drops repeated data messages.
//
// # Frame format and associated data
//
// A sealed frame is a version byte (2), the 4-byte ID of the key that sealed
// it (so the receiver picks the key at once, see Keyring), a 12-byte nonce,
// and the AES-GCM ciphertext of the 8-byte send time and the payload with
// its 16-byte tag. The tag also covers, without sending them, the path
// (datagram or stream), the sender's address and the destination's: the
// sender seals with its own LocalAddr and the address it sends to, and the
// receiver opens with the Message.From its transport reports and its own
// LocalAddr, which the transport contract makes the same strings (UDP: the
// packet's source address; TCP: the address given in the connection's
// handshake, itself proven with the key). Neither address is proof of
// anything on its own; binding them stops a captured frame from being
// passed off as another node's, or delivered to another node. It does not
// stop a replay to the same node under the same address: the replay cache
// does. Where From differs from the sender's LocalAddr, or the address
// senders use differs from the receiver's LocalAddr (NAT, a wildcard
// listen address, a host name), use WithoutAddressBinding on every node.
//
// # Nonces: a counter, with no rotation rule
//
// A nonce is the sealing key's 4-byte random prefix, drawn when the key is
// installed in this process, followed by a 64-bit counter that starts at a
// random value and goes up by one per frame sealed. Within a process a
// nonce never repeats under a key. Two processes repeat one only if they
// drew the same prefix and their counter runs overlap: for N processes
// sealing L frames each under a key, the odds are below N²·L/2⁹⁶, e.g.
// 2⁻³⁶ for 1,000 nodes sealing 2⁴⁰ frames each (a year at 35,000 frames a
// second per node). Random 96-bit nonces, which this package used before,
// collide at odds (N·L)²/2⁹⁷, which forced a rotation rule (2³² frames per
// key across the cluster, days at a busy cluster's rate); the counter
// removes it while keeping AES-GCM (hardware-accelerated, the keys
// memberlist uses, no new dependency). XChaCha20-Poly1305's 192-bit random
// nonces would also do, but it takes 32-byte keys only and a new
// dependency. Keys still rotate for the usual reasons (a node that left, a
// leaked key): see Keyring.
//
// This package must never import the gossip core: it moves opaque bytes.
package seal
