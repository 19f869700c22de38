package gossip

// The way in: frames from the transport to the engine, deliveries from the engine to the application.

import (
	"fmt"
	"log/slog"

	"github.com/plumtree-go/plumtree/transport"
)

// receive decodes a frame from the network and feeds it to the engine.
func (p *Plumtree[ID, M]) receive(tm transport.Message) {
	f, from, err := p.decodeFrame(tm)
	if err != nil {
		p.decodeError(tm, err)
		return
	}
	if from == p.o.ID {
		return
	}
	if p.o.Authenticate != nil {
		identity := tm.Identity
		if !p.authenticated || tm.Path == transport.PathDatagram && !p.dgAuthenticated {
			identity = "" // nothing verified it
		}
		if err := p.o.Authenticate(from, identity); err != nil {
			p.decodeError(tm, &AuthError{Sender: fmt.Sprint(from), Identity: identity, Err: err})
			return
		}
	}
	p.emit(Event{Kind: EventReceived, Type: Kind(f.Type), Path: tm.Path, Bytes: len(tm.Data)})
	m, err := p.frameMsg(f)
	if err != nil {
		p.decodeError(tm, err)
		return
	}
	if m.Kind == KindGossip && !m.Recovered {
		p.noteLateness(f.Origin, f.Timestamp)
	}
	p.eng.Receive(p.clock.Now(), from, &m)
}

func (p *Plumtree[ID, M]) decodeError(tm transport.Message, err error) {
	p.decodeErrs.Add(1)
	p.emit(Event{Kind: EventDecodeError, Path: tm.Path, Bytes: len(tm.Data), Err: err})
	p.log.Debug("gossip: dropping unreadable frame", "from", tm.From, "path", tm.Path, "err", err)
}

// deliver is the engine's Deliver hook: decompress and decode
// (decodePayload), validate, hand to the application.
func (p *Plumtree[ID, M]) deliver(d RawDelivery[ID]) bool {
	m, ok := p.decodePayload(d)
	if !ok {
		return false
	}
	if p.o.Validate != nil {
		if err := p.o.Validate(d.From, m); err != nil {
			p.log.Debug("gossip: message rejected", "id", d.ID, "from", d.From, "err", err)
			return false
		}
	}
	dl := Delivery[ID, M]{ID: d.ID, Origin: d.Origin, From: d.From, Hops: d.Hops, Timestamp: d.Timestamp, Value: m}
	if p.held != nil {
		p.held[d.ID] = dl // until the engine releases it in order
		return true
	}
	p.handOver(dl)
	return true
}

// release is the engine's Release hook (Config.Ordered): a held message's
// turn has come, or it came too late for it.
func (p *Plumtree[ID, M]) release(r Release[ID]) {
	dl, ok := p.held[r.ID]
	if !ok {
		return
	}
	delete(p.held, r.ID)
	if r.Stale {
		return
	}
	dl.Skipped = r.Skipped
	p.handOver(dl)
}

// handOver gives a delivery to the application, or drops it if the
// application is behind.
func (p *Plumtree[ID, M]) handOver(dl Delivery[ID, M]) {
	dl.Lagged = p.lagged
	select {
	case p.deliveries <- dl:
		p.lagged = 0
	default:
		// Never block the protocol on a slow application: count, report,
		// and tell it with the next delivery it gets (Delivery.Lagged).
		p.lagged++
		p.dropped.Add(1)
		p.emit(Event{Kind: EventDeliveryDropped, Message: dl.ID})
		// Checked first: the arguments would allocate even for a logger
		// that discards, on a path taken once per message under overload.
		if p.log.Enabled(p.ctx, slog.LevelWarn) {
			p.log.Warn("gossip: delivery buffer full, message dropped for the application", "id", dl.ID)
		}
	}
}

// retrace is the engine's Retrace hook: the Tracer records this node's part
// and names what to forward.
func (p *Plumtree[ID, M]) retrace(d RawDelivery[ID]) []byte {
	tc := p.o.Tracer.Deliver(TraceDelivery{ID: d.ID, Trace: d.Trace, Hops: d.Hops, Timestamp: d.Timestamp, Recovered: d.Recovered})
	if len(tc) > MaxTraceSize {
		return nil
	}
	return tc
}
