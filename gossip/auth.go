package gossip

import (
	"errors"
	"fmt"
)

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

// MatchIdentity is an Options.Authenticate check for IDs that are the names
// in the nodes' certificates: the sender ID, formatted with fmt.Sprint, must
// equal the authenticated identity, and there must be one. With
// transport/devcert, issue each node's certificate under its ID.
func MatchIdentity[ID comparable](sender ID, identity string) error {
	if identity == "" {
		return ErrNotAuthenticated
	}
	if fmt.Sprint(sender) != identity {
		return ErrIdentityMismatch
	}
	return nil
}
