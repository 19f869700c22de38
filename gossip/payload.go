package gossip

// Messages and payloads: the codec and the compressor, both ways, in one place.

import (
	"fmt"

	"github.com/plumtree-go/plumtree/compressor"
)

// setupCompression picks the compressor Broadcast writes with and the
// registry the node reads with.
func (p *Plumtree[ID, M]) setupCompression() error {
	o := &p.o
	switch {
	case o.Compressor != nil:
		if o.Compressor.ID() != 0 {
			p.comp = o.Compressor
		}
	case p.cfg.Compression.enabled():
		c := p.cfg.Compression
		return &ConfigError{Field: "Compression.Algorithm", Reason: fmt.Sprintf(
			"is %q but Options.Compressor is nil: package gossip builds no compressor by name; pass Options.Compressor and Options.Compressors (builtin.Resolve(%q, %d) of package compressor/builtin gives both), or build the node with package stack, which does",
			c.Algorithm, c.Algorithm, c.Level)}
	}
	if p.comps == nil {
		var cs []compressor.Compressor
		if p.comp != nil {
			cs = append(cs, p.comp)
		}
		reg, err := compressor.NewRegistry(cs...)
		if err != nil {
			return fmt.Errorf("gossip: Options.Compressor: %w", err)
		}
		p.comps = reg
		return nil
	}
	if p.comp != nil {
		if c, ok := p.comps.ByID(p.comp.ID()); !ok || c.Name() != p.comp.Name() {
			return fmt.Errorf("gossip: compressor %q (ID %d) is not in Options.Compressors %q, so this node could not read its own messages",
				p.comp.Name(), p.comp.ID(), p.comps.Names())
		}
	}
	return nil
}

// encodePayload is a message's payload: encoded by the codec, compressed
// when the compressor makes it smaller. The inverse of decodePayload.
func (p *Plumtree[ID, M]) encodePayload(m M) (Payload, error) {
	raw, err := p.o.Codec.Append(nil, m)
	if err != nil {
		return Payload{}, fmt.Errorf("gossip: encoding message: %w", err)
	}
	if len(raw) > p.cfg.MaxMessageSize {
		return Payload{}, &MessageTooLargeError{Size: len(raw), Limit: p.cfg.MaxMessageSize}
	}
	pl := Payload{Data: raw}
	if c := p.comp; c != nil && len(raw) >= p.cfg.Compression.MinSize {
		if z, err := c.Compress(nil, raw); err == nil && len(z) < len(raw) {
			pl = Payload{Compressor: c.ID(), Data: z}
		}
	}
	return pl, nil
}

// decodePayload decompresses and decodes a delivered payload; a payload
// that does not read is counted and reported (false).
func (p *Plumtree[ID, M]) decodePayload(d RawDelivery[ID]) (m M, ok bool) {
	raw := d.Payload.Data
	if d.Payload.Compressor != 0 {
		c, known := p.comps.ByID(d.Payload.Compressor)
		if !known {
			err := &UnknownCompressorError{ID: d.Payload.Compressor, Known: p.comps.Names()}
			p.decodeErrs.Add(1)
			p.emit(Event{Kind: EventDecodeError, Message: d.ID, Bytes: len(raw), Err: err})
			// Warn: a sender configured with a compressor this node cannot
			// read loses every message it sends here until fixed.
			// Once per compressor ID: a peer sending many such payloads
			// must not flood the log.
			if !p.warnedComp[d.Payload.Compressor] {
				p.warnedComp[d.Payload.Compressor] = true
				p.log.Warn("gossip: payload refused (logged once per compressor ID; all are counted)", "id", d.ID, "from", d.From, "origin", d.Origin, "err", err)
			}
			return m, false
		}
		var err error
		p.decodeBuf, err = c.Decompress(p.decodeBuf[:0], raw, p.cfg.MaxMessageSize)
		if err != nil {
			p.decodeErrs.Add(1)
			p.emit(Event{Kind: EventDecodeError, Message: d.ID, Bytes: len(raw), Err: err})
			p.log.Debug("gossip: payload does not decompress", "compressor", c.Name(), "from", d.From, "err", err)
			return m, false
		}
		raw = p.decodeBuf
	}
	m, err := p.o.Codec.Decode(raw)
	if err != nil {
		p.decodeErrs.Add(1)
		p.log.Debug("gossip: payload does not decode", "from", d.From, "err", err)
		return m, false
	}
	return m, true
}
