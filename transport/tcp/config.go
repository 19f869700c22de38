package tcp

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"time"

	"github.com/plumtree-go/plumtree/transport"
)

// The transport's configuration, its defaults and checks.

// Config sets up a Transport. The zero value is usable.
type Config struct {
	// MaxFrameSize is the largest frame sent or accepted; default 4 MiB, at
	// most MaxFrameSizeLimit. A peer that sends a longer frame has its
	// connection closed.
	MaxFrameSize int
	// MaxInboundConnections caps the connections peers have open to this
	// transport at once; one more is closed as soon as it is accepted.
	// Default 1024. Each holds a goroutine and a read buffer, so without a
	// cap anyone who can reach the port could exhaust memory.
	MaxInboundConnections int
	// MaxConnectionsPerPeer is the number of connections used to send to one
	// peer. It must be 0 or 1: frames stay in order because they share one
	// connection (see the package doc).
	MaxConnectionsPerPeer int
	// IdleTimeout closes a connection that has had nothing to send for this
	// long; default 60s, negative never closes idle connections.
	IdleTimeout time.Duration
	// DialTimeout bounds connecting to a peer, TLS and protocol handshakes
	// included, on both sides; default 5s.
	DialTimeout time.Duration
	// WriteTimeout, if positive, fails a connection whose write of queued
	// frames does not finish within it (a peer that stopped reading). By
	// default a stalled peer keeps its connection and its senders block
	// (backpressure).
	WriteTimeout time.Duration
	// SendQueueSize bounds the frames queued towards one peer; default 256.
	SendQueueSize int
	// SendQueueBytes bounds the bytes queued towards one peer; default 8 MiB.
	// A single frame larger than this is accepted into an empty queue.
	SendQueueBytes int
	// ReceiveQueueSize is how many received frames wait for the reader of
	// Frames before the read loops stop reading (and TCP pushes back on the
	// senders); default 256.
	ReceiveQueueSize int
	// TLS, if set, wraps every connection in TLS with this configuration, as
	// the server for accepted connections and as the client for dialed ones
	// (ServerName defaults to the dialed host).
	TLS *tls.Config
	// PeerName maps a verified peer certificate to the identity reported by
	// PeerIdentity; default transport.PeerName (the "plumtree:<name>" URI SAN,
	// else the common name).
	PeerName func(*x509.Certificate) string
	// Logger receives connection failures and protocol errors; nil logs
	// nothing.
	Logger *slog.Logger
}

// PeerIdentifier is implemented by transports that authenticate their peers.
type PeerIdentifier interface {
	// PeerIdentity returns the authenticated identity of the peer whose
	// frames arrive with Message.From == from, and whether there is one.
	PeerIdentity(from string) (string, bool)
}

// withDefaults checks cfg and fills in its defaults, as every adapter's
// Config does.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.MaxFrameSize == 0 {
		cfg.MaxFrameSize = DefaultMaxFrameSize
	}
	if cfg.MaxFrameSize < 0 || cfg.MaxFrameSize > MaxFrameSizeLimit {
		return cfg, fmt.Errorf("tcp: MaxFrameSize %d out of range [1, %d]", cfg.MaxFrameSize, MaxFrameSizeLimit)
	}
	if cfg.MaxConnectionsPerPeer < 0 || cfg.MaxConnectionsPerPeer > 1 {
		return cfg, fmt.Errorf("tcp: MaxConnectionsPerPeer %d: only 1 is supported, since frames to a peer must stay in order", cfg.MaxConnectionsPerPeer)
	}
	cfg.MaxConnectionsPerPeer = 1
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.SendQueueSize <= 0 {
		cfg.SendQueueSize = DefaultSendQueueSize
	}
	if cfg.SendQueueBytes <= 0 {
		cfg.SendQueueBytes = DefaultSendQueueBytes
	}
	if cfg.MaxInboundConnections <= 0 {
		cfg.MaxInboundConnections = DefaultMaxInboundConnections
	}
	if cfg.ReceiveQueueSize <= 0 {
		cfg.ReceiveQueueSize = DefaultReceiveQueueSize
	}
	if cfg.PeerName == nil {
		cfg.PeerName = transport.PeerName
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg, nil
}
