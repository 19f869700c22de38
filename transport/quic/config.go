package quic

import (
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	qgo "github.com/quic-go/quic-go"
)

// ALPN is the TLS application protocol both ends of a connection must
// offer. It names the framing, so that a peer speaking anything else is
// refused during the handshake.
const ALPN = "plumtree/1"

// MaxDatagramSize is the largest datagram SendDatagram accepts. A QUIC
// packet is at least 1200 bytes on every path; quic-go reserves up to 37 of
// them for the short header and the AEAD tag (it assumes a 20-byte connection
// ID) and 3 for the DATAGRAM frame's type and length, leaving 1160. The limit
// keeps 10 bytes of margin below that, so a datagram within it always fits,
// whatever path MTU discovery finds.
const MaxDatagramSize = 1150

// Defaults used when a Config field is zero.
const (
	DefaultKeepAliveInterval       = 15 * time.Second
	DefaultIdleTimeout             = 30 * time.Second
	DefaultMaxStreamsPerConnection = 100
	DefaultHandshakeTimeout        = 5 * time.Second
	DefaultMaxFrameSize            = 4 << 20
	DefaultSendQueueSize           = 256
	DefaultDatagramQueueSize       = 256
	// DefaultMaxInboundConnections is MaxInboundConnections' default.
	DefaultMaxInboundConnections = 1024
)

// maxMaxFrameSize bounds Config.MaxFrameSize: the length prefix is 4 bytes,
// and a frame that large is a mistake in any case.
const maxMaxFrameSize = 1 << 30

// Config configures a Transport. Only TLS is required; every other zero field
// takes the default named in its comment. The QUIC options are those of the
// tuning guide's QuicConfig.
type Config struct {
	// TLS is the TLS configuration of both the server and the client side:
	// it must hold a certificate (Certificates or GetCertificate) and the
	// roots that verify peers (RootCAs). Mutual authentication is on when it
	// asks for client certificates (ClientAuth, ClientCAs), as the configs
	// of devcert.UnsafeCA.UnsafeMutualTLS do. TLS 1.3 is always used
	// (QUIC requires it); NextProtos is replaced by ALPN. When dialing,
	// ServerName is set to the dialed IP unless it is set here. Required.
	TLS *tls.Config

	// Enable0RTT turns on TLS session resumption with 0-RTT: the client
	// side keeps session tickets per peer (in TLS.ClientSessionCache if set,
	// else in a cache of its own) and dials with DialEarly, and the server
	// side accepts 0-RTT. Default false. With quic-go v0.66 frames still
	// wait for the handshake to complete; see the package documentation.
	Enable0RTT bool

	// KeepAliveInterval is how often a keep-alive is sent on an otherwise
	// quiet connection, so that connections to live peers stay open. quic-go
	// sends one at least every IdleTimeout/2 in any case. Default 15 s;
	// negative disables keep-alives, so that quiet connections close after
	// IdleTimeout and are redialed on demand.
	KeepAliveInterval time.Duration

	// IdleTimeout closes a connection that received nothing for this long
	// (the smaller of the two peers' values applies). Default 30 s.
	IdleTimeout time.Duration

	// MaxStreamsPerConnection is how many concurrent unidirectional streams
	// a peer may open on a connection. This transport opens one per
	// connection (a new one only if the previous failed), so the limit only
	// bounds what a misbehaving peer can make us hold. Default 100.
	MaxStreamsPerConnection int

	// MaxStreamData is the receive flow-control window of a stream in bytes:
	// how much a peer may send on its stream before this side has read it.
	// Smaller values push back on fast senders sooner; larger ones help
	// throughput on long fat paths. Default: quic-go's auto-tuned window
	// (512 KiB growing to 6 MiB).
	MaxStreamData uint64

	// HandshakeTimeout bounds a dial: the handshake fails if the peer sends
	// nothing for this long, or if it takes twice this long in all. Unless
	// an ICMP port unreachable comes back (see the package documentation),
	// this is how long SendFrame takes to report ErrUnreachable for an
	// address that does not answer. Default 5 s.
	HandshakeTimeout time.Duration

	// MaxFrameSize is the largest stream frame sent or received; a peer
	// announcing a larger one has its connection closed. Default 4 MiB; at
	// most 1 GiB.
	MaxFrameSize int

	// SendQueueSize is how many frames may wait, per peer, for the
	// connection's writer. SendFrame blocks while the queue is full.
	// Default 256.
	SendQueueSize int

	// DatagramQueueSize is how many datagrams may wait, per peer, to be
	// handed to the connection (or for the connection to be dialed), and
	// how many received datagrams Datagrams buffers. Beyond that datagrams
	// are dropped and counted. Default 256.
	DatagramQueueSize int

	// MaxInboundConnections caps the connections peers have open to this
	// transport at once, handshakes in progress included; one more is
	// closed as soon as it is accepted and counted in
	// Stats.ConnectionsRefused. Default 1024. Each holds quic-go's state
	// and a few goroutines, so without a cap anyone who can reach the port
	// could exhaust memory (as with package tcp's cap of the same name).
	MaxInboundConnections int

	// StatelessResetKey lets this node answer packets of connections it
	// no longer knows (after a crash and restart) with a stateless reset,
	// so that peers drop their dead connection at once and redial, instead
	// of sending into it until IdleTimeout. It must be secret and the same
	// across restarts of a node. Default: derived (one-way) from the
	// private key of TLS.Certificates[0] and the bound address, which does
	// this for a node that keeps its certificate key; a node whose key is
	// made anew at each start (or that uses GetCertificate) gets no reset
	// unless this is set, and so does one bound to a wildcard address.
	// Nodes that share a certificate key (a cluster-wide certificate) must
	// each set a key of their own: a reset key shared by two nodes lets an
	// attacker have one node reset the other's connections. (A clean Close
	// already tells every peer.)
	StatelessResetKey *qgo.StatelessResetKey
}

// withDefaults checks cfg and fills in its defaults.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.TLS == nil {
		return cfg, errors.New("quic: Config.TLS is required")
	}
	if cfg.TLS.MaxVersion != 0 && cfg.TLS.MaxVersion < tls.VersionTLS13 {
		return cfg, errors.New("quic: Config.TLS must allow TLS 1.3")
	}
	if cfg.MaxFrameSize > maxMaxFrameSize {
		return cfg, fmt.Errorf("quic: MaxFrameSize %d exceeds %d", cfg.MaxFrameSize, maxMaxFrameSize)
	}
	if cfg.KeepAliveInterval == 0 {
		cfg.KeepAliveInterval = DefaultKeepAliveInterval
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxStreamsPerConnection <= 0 {
		cfg.MaxStreamsPerConnection = DefaultMaxStreamsPerConnection
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.MaxFrameSize <= 0 {
		cfg.MaxFrameSize = DefaultMaxFrameSize
	}
	if cfg.SendQueueSize <= 0 {
		cfg.SendQueueSize = DefaultSendQueueSize
	}
	if cfg.DatagramQueueSize <= 0 {
		cfg.DatagramQueueSize = DefaultDatagramQueueSize
	}
	if cfg.MaxInboundConnections <= 0 {
		cfg.MaxInboundConnections = DefaultMaxInboundConnections
	}
	return cfg, nil
}

// quicConfig translates cfg into quic-go's configuration.
func (cfg Config) quicConfig() *qgo.Config {
	qc := &qgo.Config{
		HandshakeIdleTimeout:  cfg.HandshakeTimeout,
		MaxIdleTimeout:        cfg.IdleTimeout,
		MaxIncomingStreams:    -1, // no bidirectional streams: we use none
		MaxIncomingUniStreams: int64(cfg.MaxStreamsPerConnection),
		EnableDatagrams:       true,
		Allow0RTT:             cfg.Enable0RTT,
	}
	if cfg.KeepAliveInterval > 0 {
		qc.KeepAlivePeriod = cfg.KeepAliveInterval
	}
	if w := cfg.MaxStreamData; w > 0 {
		qc.InitialStreamReceiveWindow = w
		qc.MaxStreamReceiveWindow = w
		// The connection window must not be what limits the one stream.
		const quicDefaultConnWindow = 15 << 20
		if w > quicDefaultConnWindow/2 {
			qc.InitialConnectionReceiveWindow = 2 * w
			qc.MaxConnectionReceiveWindow = 2 * w
		}
	}
	return qc
}

// peerSessions keeps the TLS session tickets of one peer apart from those of
// others. crypto/tls keys a QUIC client's sessions by ServerName alone, and
// every peer on one host shares a ServerName (its IP), so without the prefix
// one peer's ticket would be offered to another, which cannot use it.
type peerSessions struct {
	cache  tls.ClientSessionCache
	prefix string
}

func (s peerSessions) Get(key string) (*tls.ClientSessionState, bool) {
	return s.cache.Get(s.prefix + key)
}

func (s peerSessions) Put(key string, cs *tls.ClientSessionState) {
	s.cache.Put(s.prefix+key, cs)
}
