package gossip

import (
	"fmt"
)

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
