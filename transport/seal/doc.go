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
// sender address or for the other path is refused. Refused frames are
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
// An observer can capture a sealed frame and send it again. Each frame
// carries its send time, sealed; a frame more than the replay window away
// from the receiver's clock (2 minutes by default, WithWindow) is refused,
// so clocks must agree within the window (NTP does). A frame replayed within
// the window opens, and the gossip layer drops it as a duplicate: it carries
// a message ID the node has seen, as long as the gossip layer's seen-set
// TTL (gossip.Config.SeenTTL) is longer than the window plus the largest
// clock difference between nodes: the presets' are 3 minutes or more
// against the default window of 2. Window 0 turns the check off, leaving
// only the seen set.
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
// stops a captured frame from being replayed as if another node sent it.
// Where From differs from the sender's LocalAddr (NAT, a wildcard listen
// address), use WithoutAddressBinding on every node.
//
// With random nonces, a key should seal fewer than 2³² frames across the
// whole cluster (the AES-GCM bound for random nonces); rotate keys well
// before that.
//
// This package must never import the gossip core: it moves opaque bytes.
package seal
