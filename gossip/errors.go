package gossip

import (
	"errors"
	"fmt"
)

// The errors a node and an engine return, and those they report in Events.

// ErrClosed is returned by the methods of a closed node.
var ErrClosed = errors.New("gossip: node closed")

// ConfigError names the Config field that is wrong and why.
type ConfigError struct {
	Field  string
	Reason string
}

// Error names the field and the reason.
func (e *ConfigError) Error() string { return "gossip: Config." + e.Field + " " + e.Reason }

// MessageTooLargeError is returned by Broadcast for a message over
// Config.MaxMessageSize.
type MessageTooLargeError struct {
	Size, Limit int
}

// Error gives the size and the limit.
func (e *MessageTooLargeError) Error() string {
	return fmt.Sprintf("gossip: message of %d bytes exceeds MaxMessageSize %d", e.Size, e.Limit)
}

// ErrBusy is what a *BusyError is (errors.Is): the node's send queues are too
// full to take a local broadcast now.
var ErrBusy = errors.New("gossip: node busy")

// BusyError says why TryBroadcast refused a message: which queue is full.
type BusyError struct {
	// Peer is the address of the peer whose stream queue is full, or "" for
	// the node's total (PublishPendingBytes) or for publishers already
	// waiting in Broadcast (Waiting > 0), who go first.
	Peer    string
	Queued  int64 // bytes queued (for Peer, or in total)
	Frames  int   // frames queued for Peer
	Limit   int64 // the limit reached, in bytes
	Waiting int   // Broadcast calls already waiting for room
}

func (e *BusyError) Error() string {
	switch {
	case e.Waiting > 0:
		return fmt.Sprintf("gossip: node busy: %d broadcasts already waiting for room", e.Waiting)
	case e.Peer != "":
		return fmt.Sprintf("gossip: node busy: stream queue to %s holds %d bytes in %d frames (publish limit %d bytes)", e.Peer, e.Queued, e.Frames, e.Limit)
	}
	return fmt.Sprintf("gossip: node busy: send queues hold %d bytes (publish limit %d bytes)", e.Queued, e.Limit)
}

// Is makes errors.Is(err, ErrBusy) true.
func (e *BusyError) Is(target error) bool { return target == ErrBusy }

// UnknownCompressorError refuses a payload whose frame names a compressor
// the node does not have.
type UnknownCompressorError struct {
	ID    byte     // the wire ID the frame names
	Known []string // the names of the compressors the node reads
}

// Error names the ID and the compressors the node reads.
func (e *UnknownCompressorError) Error() string {
	return fmt.Sprintf("gossip: payload compressed with unknown compressor ID %d; this node reads %q (Options.Compressors)", e.ID, e.Known)
}

// AuthError refuses a frame whose sender ID the transport's authenticated
// identity does not vouch for (see Options.Authenticate).
type AuthError struct {
	Sender   string // the sender ID the frame names
	Identity string // what the transport authenticated ("" for nothing)
	Err      error  // what Options.Authenticate returned
}

// Error names the sender, the identity and the reason.
func (e *AuthError) Error() string {
	return fmt.Sprintf("gossip: frame from %q refused: authenticated identity %q: %v", e.Sender, e.Identity, e.Err)
}

// Unwrap returns the reason Authenticate gave.
func (e *AuthError) Unwrap() error { return e.Err }

// ErrNotAuthenticated is returned (wrapped) by MatchIdentity for a frame
// that came with no authenticated identity.
var ErrNotAuthenticated = errors.New("no authenticated identity (a transport without TLS?)")

// ErrIdentityMismatch is returned (wrapped) by MatchIdentity for a frame
// whose sender ID differs from its authenticated identity.
var ErrIdentityMismatch = errors.New("sender ID does not match the authenticated identity")
