package memberlist

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hashicorp/memberlist"
)

// The adapter's configuration, its defaults and checks.

// DefaultEventBuffer is the capacity of the Events channel when
// Config.EventBuffer is 0.
const DefaultEventBuffer = 1024

// DefaultLeaveTimeout is Config.LeaveTimeout when it is 0.
const DefaultLeaveTimeout = 5 * time.Second

// DefaultRejoinTimeout is Config.RejoinTimeout when it is 0: serf's
// reconnect timeout.
const DefaultRejoinTimeout = 24 * time.Hour

// Config configures a Membership.
type Config[ID comparable] struct {
	// Memberlist is memberlist's configuration for New: start from
	// memberlist.DefaultLANConfig, DefaultWANConfig or DefaultLocalConfig and
	// set Name, BindAddr and BindPort (0 picks a free port), and SecretKey or
	// Keyring for encryption. New works on a copy, in which it sets Events
	// and Delegate: Delegate must be nil (the adapter's own delegate
	// provides the node metadata); an Events delegate already set is called
	// after the adapter's, with memberlist's Node unchanged. If Logger and
	// LogOutput are both nil, memberlist logs to Config.Logger. Prepare
	// requires this field to be nil.
	Memberlist *memberlist.Config
	// Addr is the address of this node's broadcast transport as the others
	// should reach it. Required; at most 255 bytes.
	Addr string
	// Join lists memberlist addresses ("host:port" or "name/host:port") to
	// join on start. New or Attach fails if none of them (nor any saved
	// peer) can be reached. Empty for the first node of a cluster.
	Join []string
	// ParseID maps a memberlist node name to an ID. nil is allowed only for
	// string IDs, which are the names themselves.
	ParseID func(name string) (ID, error)
	// PeersFile, if set, is where known peers are saved and read on start
	// (see the package doc). Unreachable saved peers are logged, not an
	// error.
	PeersFile string
	// LeaveTimeout bounds each of the three waits of Close (the leaving
	// metadata going out, the acknowledgements of the leaving notice, which
	// a node sends once memberlist has brought it the leaving metadata,
	// memberlist's Leave), and the wait of SetAddr. 0 means
	// DefaultLeaveTimeout.
	LeaveTimeout time.Duration
	// EventBuffer is the capacity of the Events channel. 0 means
	// DefaultEventBuffer.
	EventBuffer int
	// RejoinInterval, if positive, is how often the adapter joins again one
	// address: of a node that failed and is still missing, or of Join when
	// no other node is alive, each in turn, so that the two sides of a
	// partition that outlasted failure detection find each other again when
	// it heals (see the package doc). serf's reconnect uses 30 seconds. 0
	// turns rejoining off, as memberlist alone behaves.
	//
	// Each attempt is one memberlist Join of one address, on a goroutine of
	// the adapter. memberlist's Join cannot be interrupted, so Close and
	// Shutdown wait for the attempt in progress: for an unreachable IP
	// address, one memberlist TCPTimeout (10 s with DefaultLANConfig), the
	// bound of its TCP connect. A node that accepts the connection but does
	// not answer holds it for up to two more TCPTimeouts (memberlist bounds
	// the push/pull's send and its reply by one each), and a Join entry
	// that is a host name is resolved by memberlist, which tries every IP
	// address it resolves to, each with its own TCPTimeout: give IP
	// addresses in Join to keep the wait at one TCPTimeout.
	//
	// Clusters that share a network must set a different memberlist Label,
	// or a different SecretKey, each: a failed node's address is retried
	// until RejoinTimeout, and may by then belong to another cluster, which
	// the join would merge with this one.
	RejoinInterval time.Duration
	// RejoinTimeout is how long a failed node is tried again before it is
	// forgotten. 0 means DefaultRejoinTimeout.
	RejoinTimeout time.Duration
	// Logger receives the adapter's messages (malformed metadata, dropped
	// events, peers file problems). nil discards them.
	Logger *slog.Logger
}

// withDefaults checks cfg and fills in its defaults, as every adapter's
// Config does. The address and the memberlist configuration are checked by
// prepare and New.
func (cfg Config[ID]) withDefaults() (Config[ID], error) {
	if cfg.ParseID == nil {
		p, ok := any(func(name string) (string, error) { return name, nil }).(func(string) (ID, error))
		if !ok {
			var zero ID
			return cfg, fmt.Errorf("memberlist: Config.ParseID is required for ID type %T", zero)
		}
		cfg.ParseID = p
	}
	if cfg.EventBuffer < 0 {
		return cfg, errors.New("memberlist: Config.EventBuffer is negative")
	}
	if cfg.EventBuffer == 0 {
		cfg.EventBuffer = DefaultEventBuffer
	}
	if cfg.RejoinInterval < 0 || cfg.RejoinTimeout < 0 {
		return cfg, errors.New("memberlist: Config.RejoinInterval and RejoinTimeout must not be negative")
	}
	if cfg.RejoinTimeout == 0 {
		cfg.RejoinTimeout = DefaultRejoinTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = discardLogger
	}
	if cfg.LeaveTimeout <= 0 {
		cfg.LeaveTimeout = DefaultLeaveTimeout
	}
	return cfg, nil
}
