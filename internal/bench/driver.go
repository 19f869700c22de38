// Package bench runs the same paced broadcast workload over several
// broadcast systems in one process on loopback and reports what each costs:
// delivery ratio, latency, wire bytes per ideal payload byte, packets, CPU,
// goroutines and heap. It is the engine of `plumtree bench`; the reference
// systems that need dependencies the library does not carry (gossipsub,
// memberlist's TransmitLimitedQueue) register their drivers from the
// separate module in bench/.
//
// Main is the command; Run and Sweep measure one Driver; Floor and Plumtree
// are the builtin drivers. The package must never import what only the
// reference systems need (libp2p, gossipsub): those stay in bench/'s own
// go.mod, so that the library's requirements stay the library's.
package bench

import (
	"context"
	"errors"
)

// ErrUnsupported is wrapped by the error of a Start that refuses a workload
// the system cannot carry at all (memberlist's queue and payloads larger
// than one gossip datagram): the report shows the reason, and the command
// does not count it as a failure.
var ErrUnsupported = errors.New("not supported by this system")

// Driver starts one broadcast system. Drivers are registered by name and
// run one after another in one invocation, so their numbers share a machine
// and a moment.
type Driver interface {
	// Name identifies the system in reports and on the command line, such
	// as "plumtree/quic", "floor", "gossipsub", "memberlist".
	Name() string
	// Start starts n nodes on loopback (127.0.0.1, ports chosen by the
	// system) and returns once membership has converged, so that the first
	// broadcast can reach every node. deliver is called once per payload
	// delivered to a node's application (node is 0..n-1); a call at the
	// origin is allowed and ignored, and a second call for the same payload
	// at the same node is counted as a duplicate delivery. deliver may be
	// called from any goroutine; it must not be called after Close returns.
	// The payload handed to deliver may be reused after deliver returns.
	Start(ctx context.Context, cfg StartConfig, deliver func(node int, payload []byte)) (Cluster, error)
}

// StartConfig is what a driver needs to start a cluster.
type StartConfig struct {
	// Nodes is the cluster size.
	Nodes int
	// MaxPayload is the largest payload the workload will broadcast.
	MaxPayload int
	// Seed makes any randomness of the driver repeatable.
	Seed int64
}

// Cluster is a running system.
type Cluster interface {
	// Publish broadcasts payload from node from (0..n-1). It must not keep
	// payload after it returns.
	Publish(ctx context.Context, from int, payload []byte) error
	// Wire is the traffic the cluster's transports have sent so far, from
	// their own counters (bytes the system wrote to its sockets: frames and
	// datagrams with the system's own framing, without IP/UDP/TCP headers).
	Wire() Wire
	// Close stops every node and releases sockets and goroutines.
	Close() error
}

// PayloadCounter is a Cluster that counts, over every node, the payloads
// that reached a node for the first time (deliveries) and again
// (duplicates), and the grafts sent: the harness reports RMR, duplicates
// over deliveries, over the measured window.
type PayloadCounter interface {
	Payloads() (deliveries, duplicates, grafts uint64)
}

// Wire counts traffic.
type Wire struct {
	// Bytes and Packets written to sockets (for a stream transport, Packets
	// counts frames).
	Bytes, Packets uint64
}
