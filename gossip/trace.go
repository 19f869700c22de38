package gossip

import (
	"context"
	"time"
)

// Tracer carries a trace of each broadcast across the cluster: the origin
// starts one, and every node that delivers the message records its part
// with the part of the node it received the payload from as parent, so one
// trace draws the dissemination tree. The core only moves the bytes:
// observe.Tracer implements this with OpenTelemetry.
//
// A trace context is at most MaxTraceSize bytes; a longer one is not sent.
type Tracer interface {
	// Broadcast is called at the origin for each broadcast the node
	// accepted, on the protocol loop, with the context given to
	// Plumtree.Broadcast. It returns the trace context to send with the
	// message, or nil to send none (not sampled, say). It must be quick.
	Broadcast(ctx context.Context) []byte
	// Deliver is called on the protocol loop for each message delivered
	// here that arrived with a trace context, and returns the context this
	// node forwards with it (nil: none). It must be quick.
	Deliver(d TraceDelivery) []byte
}

// TraceDelivery is what a Tracer learns of a delivered message.
type TraceDelivery struct {
	ID        MessageID // the broadcast's ID
	Trace     []byte    // the context the message arrived with
	Hops      uint32    // hops from the origin
	Timestamp time.Time // the origin's clock at broadcast
	Recovered bool      // the payload passed through a graft on its way here
}

// MaxTraceSize is the longest trace context a message carries.
const MaxTraceSize = 128
