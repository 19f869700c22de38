package gossip

// Protocol messages and wire frames, both ways, in one place.

import (
	"fmt"
	"time"

	"github.com/plumtree-go/plumtree/gossip/internal/wire"
	"github.com/plumtree-go/plumtree/transport"
)

// encode encodes m into a pooled buffer holding one reference, the
// caller's: the inverse of frameMsg.
func (p *Plumtree[ID, M]) encode(m *Msg[ID]) (*frameBuf, error) {
	f := wire.Frame{Type: wire.Type(m.Kind), Sender: p.selfWire, ID: m.ID, Round: m.Round,
		Announcements: m.Announcements, Ranges: m.Ranges, WantPayload: m.WantPayload}
	if m.Kind == KindNack {
		// Rounded up: a wait of less than a millisecond is still a wait.
		f.Retry = uint64((m.Retry + time.Millisecond - 1) / time.Millisecond)
	}
	if m.Kind == KindGossip || (m.Kind == KindPrune && !m.Shared) {
		var err error
		if f.Origin, err = p.idWire(m.Origin); err != nil {
			return nil, err
		}
	}
	if m.Kind == KindGossip {
		f.Timestamp, f.Trace = m.Timestamp, m.Trace
		f.Compressor, f.Payload = m.Payload.Compressor, m.Payload.Data
		f.Recovered = m.Recovered
	}
	fb := getFrame(wire.Size(&f))
	var err error
	if fb.b, err = wire.Append(fb.b, &f); err != nil {
		fb.release()
		return nil, err
	}
	return fb, nil
}

// decodeFrame reads a frame from the network into the loop's frame (valid
// until the next one) and decodes its sender.
func (p *Plumtree[ID, M]) decodeFrame(tm transport.Message) (*wire.Frame, ID, error) {
	f := &p.frame
	if err := wire.Decode(tm.Data, f, p.limits); err != nil {
		var zero ID
		return nil, zero, err
	}
	from, err := p.decodeID(f.Sender)
	if err != nil {
		return nil, from, fmt.Errorf("sender ID: %w", err)
	}
	return f, from, nil
}

// frameMsg is the engine's message for a decoded frame: the inverse of
// encode.
func (p *Plumtree[ID, M]) frameMsg(f *wire.Frame) (Msg[ID], error) {
	m := Msg[ID]{Kind: Kind(f.Type), ID: f.ID, Round: f.Round}
	var err error
	switch f.Type {
	case wire.TypeGossip:
		if m.Origin, err = p.decodeID(f.Origin); err != nil {
			return m, fmt.Errorf("origin ID: %w", err)
		}
		m.Timestamp, m.Trace = f.Timestamp, f.Trace
		m.Payload = Payload{Compressor: f.Compressor, Data: f.Payload}
		m.Recovered = f.Recovered
	case wire.TypeIHave:
		m.Announcements = f.Announcements
	case wire.TypeExchange:
		m.Ranges = f.Ranges
	case wire.TypeGraft:
		m.WantPayload = f.WantPayload
	case wire.TypePrune:
		if len(f.Origin) == 0 {
			m.Shared = true
		} else if m.Origin, err = p.decodeID(f.Origin); err != nil {
			return m, fmt.Errorf("origin ID: %w", err)
		}
	case wire.TypeNack:
		m.Retry = time.Duration(min(f.Retry, uint64(time.Hour/time.Millisecond))) * time.Millisecond
	}
	return m, nil
}

// idWire is id's wire form: a member's or this node's as already encoded,
// any other encoded now.
func (p *Plumtree[ID, M]) idWire(id ID) ([]byte, error) {
	if pr := p.peers[id]; pr != nil {
		return pr.idWire, nil
	}
	if id == p.o.ID {
		return p.selfWire, nil
	}
	return p.o.IDCodec.Append(nil, id)
}

// decodeID decodes a node ID from the wire. A member's is looked up, which
// does not allocate; the codec decodes any other.
func (p *Plumtree[ID, M]) decodeID(b []byte) (ID, error) {
	if id, ok := p.byWire[string(b)]; ok {
		return id, nil
	}
	if string(b) == string(p.selfWire) {
		return p.o.ID, nil
	}
	return p.o.IDCodec.Decode(b)
}
