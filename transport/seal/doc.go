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
// sender address or for the other path is refused, and so is a second
// copy of a frame within the replay window (see Replay). Refused frames are
// counted by reason (SealStats) and never logged, so that a flood does not
// flood the logs. Payloads are encrypted, so their content is hidden from
// observers of the network; their sizes and timing are not.
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
// sender's address: a spoofed source address over UDP, or any From address
// it claims in a TCP handshake. Each
// frame carries its send time, sealed; a frame more than the replay window
// away from the receiver's clock (2 minutes by default, WithWindow) is
// refused (Refused.Window), so clocks must agree within the window (NTP
// does). Within the window, a replay cache remembers the key ID and nonce
// of every frame that opened, and refuses a second copy (Refused.Replay):
// each sealed frame opens at most once per receiver, whatever it carries:
// data, or control frames (Prune, Graft, IHave) that the gossip layer does
// not deduplicate. Once per receiver: the destination is not sealed into a
// frame, so a frame captured on its way to one node opens once at any other
// node that has not seen it (as if its sender had sent it there too). The cache is bounded (WithReplayCache: 1<<20 frames,
// about 55 MB when full, by default); when full it forgets the earliest
// frames and refuses every frame sent as early as those (counted as
// Window), so replays stay refused and the window shrinks instead.
// Window 0 turns the window and the replay cache off: replay protection is
// then off too, and only the gossip layer's seen set drops repeated data
// messages.
//
// # Frame format and associated data
//
// A sealed frame is a version byte (1), the 4-byte ID of the key that sealed
// it (so the receiver picks the key at once, see Keyring), a random 12-byte
// nonce, and the AES-GCM ciphertext of the 8-byte send time and the payload
// with its 16-byte tag. The tag also covers, without sending them, the path
// (datagram or stream) and the sender's address: the sender seals with its
// own LocalAddr and the receiver opens with the Message.From its transport
// reports, which the transport contract makes the same string (UDP: the
// packet's source address; TCP: the address given in the connection's
// handshake). Neither address is proof of anything on its own; binding it
// stops a captured frame from being passed off as another node's. It does
// not stop a replay under the same address (a TCP handshake can claim any
// address): the replay cache does.
// Where From differs from the sender's LocalAddr (NAT, a wildcard listen
// address), use WithoutAddressBinding on every node.
//
// # Nonce budget
//
// Nonces are 96 random bits, drawn by each sender with no coordination.
// AES-GCM with random nonces stays within its bound (a nonce collision, which
// would leak the authentication key, at odds below 2⁻³²) for 2³² frames per
// key, counted across the whole cluster, since every node seals with the
// same key. At 10,000 frames a second across the cluster that is about 5
// days (at 1,000 a second, 50 days); rotate keys well before, e.g. at a
// quarter of it (see Keyring).
//
// This package must never import the gossip core: it moves opaque bytes.
package seal
