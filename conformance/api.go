package conformance

import (
	"testing"

	"github.com/plumtree-go/plumtree/membership"
	"github.com/plumtree-go/plumtree/transport"
)

// ListenFunc opens a transport at addr on the network under test. An empty
// addr picks a fresh address; a non-empty one is an address the suite got
// from LocalAddr earlier (to restart a peer on the same address).
type ListenFunc func(addr string) (transport.Transport, error)

// MakeNetwork prepares a fresh network for one subtest and returns how to
// open transports on it. The suite calls it once per subtest; it may use t
// for cleanups (t.Cleanup) and temporary files (t.TempDir). The suite closes
// every transport it opens.
type MakeNetwork func(t testing.TB) ListenFunc

// MemberNode is one running node of a membership under test: its local view
// of the cluster, and who it is.
type MemberNode[ID comparable] interface {
	membership.Membership[ID]
	// Self is the local node as the others should see it.
	Self() membership.Member[ID]
}

// Cluster runs the nodes of a membership under test.
type Cluster[ID comparable] interface {
	// Start starts a new node that joins the cluster and returns its view.
	// Its ID and address are new to the cluster.
	Start() (MemberNode[ID], error)
	// Leave makes n leave gracefully and stops it. The others must report a
	// Leave for it.
	Leave(n MemberNode[ID]) error
	// Crash stops n without a goodbye. The others must report a Fail for it
	// (after their failure detection, however long that takes).
	Crash(n MemberNode[ID]) error
	// Close stops every node still running.
	Close() error
}

// MakeCluster returns an empty cluster for one subtest; it may use t as
// MakeNetwork does. The suite closes the cluster.
type MakeCluster[ID comparable] func(t testing.TB) Cluster[ID]
