// Package wire is the binary frame format of the broadcast protocol.
//
// Every frame starts with a version byte and a type byte, then the sender's
// identity (length-prefixed bytes, encoded by the node's ID codec), then the
// fields of its type:
//
//	Gossip:   id round:uvarint origin:bytes timestamp:varint flags:u8 (FlagTrace, FlagRecovered)
//	          [trace:bytes if flags&FlagTrace] compressor:u8 payload:bytes
//	IHave:    groups:uvarint { prefix[8] n:uvarint { seq:uvarint round:uvarint } * n } * groups
//	Exchange: count:uvarint { prefix[8] first:uvarint n:uvarint } * count
//	Graft:    id round:uvarint flags:u8 (FlagWantPayload)
//	Prune:    origin:bytes (empty: the shared tree only)
//	Nack:     id retry:uvarint (milliseconds; 0: not here)
//
// A message ID is the origin's incarnation (8 random bytes drawn when the
// node starts) followed by its sequence number (8 bytes, big-endian), so
// an Exchange summarizes the messages a node caches as runs of sequence
// numbers per incarnation: Range{Prefix, First, N} covers the IDs
// Prefix||First to Prefix||First+N-1. On the wire an id is the prefix
// followed by the sequence number as a uvarint (id = prefix[8] seq:uvarint),
// 9 to 18 bytes instead of 16 (10 for the first 16,383 broadcasts of an
// incarnation). An IHave groups consecutive announcements of one
// incarnation, so the prefix goes once per group (n >= 1).
//
// Version 3 (this one) made ids prefix plus uvarint and grouped IHave's
// announcements by prefix; version 2 added the origin to Prune, the Nack
// type and the Exchange's ranges. A frame of any other version is refused
// with a VersionError.
//
// where bytes is a uvarint length followed by that many bytes. Decode rejects
// an unknown version, an unknown type, truncated or trailing bytes, lengths
// past the Limits and flags it does not know, always with an error and never
// a panic, and never allocates in proportion to a length it has not checked
// against the input's size.
//
// This package must never import anything outside the standard library.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Version is the frame format version this package writes and reads.
const Version = 3

// Type is a frame type.
type Type uint8

// The frame types.
const (
	TypeGossip   Type = 1
	TypeIHave    Type = 2
	TypeGraft    Type = 3
	TypePrune    Type = 4
	TypeExchange Type = 5
	TypeNack     Type = 6
)

func (t Type) String() string {
	switch t {
	case TypeGossip:
		return "gossip"
	case TypeIHave:
		return "ihave"
	case TypeGraft:
		return "graft"
	case TypePrune:
		return "prune"
	case TypeExchange:
		return "exchange"
	case TypeNack:
		return "nack"
	default:
		return fmt.Sprintf("type(%d)", uint8(t))
	}
}

// Flags of a Gossip or Graft frame.
const (
	FlagTrace       = 1 << 0 // Gossip: a trace context follows
	FlagRecovered   = 1 << 1 // Gossip: the payload passed through a graft on its way
	FlagWantPayload = 1 << 0 // Graft: answer with the payload
)

// IDSize is the length of a message ID.
const IDSize = 16

// Announcement names a message and the hop count at which the announcer's
// peer would receive it.
type Announcement struct {
	ID    [IDSize]byte
	Round uint32
}

// announcementMinSize is the smallest encoding of an Announcement inside
// a group: a one-byte sequence number and a one-byte round.
const announcementMinSize = 2

// groupMinSize is the smallest encoding of a group of announcements: the
// prefix, its count and one announcement.
const groupMinSize = PrefixSize + 1 + announcementMinSize

// PrefixSize is the length of a message ID's incarnation prefix.
const PrefixSize = 8

// Range names the message IDs Prefix||First .. Prefix||First+N-1, the
// sequence numbers big-endian.
type Range struct {
	Prefix [PrefixSize]byte
	First  uint64
	N      uint64
}

// rangeMinSize is the smallest encoding of a Range.
const rangeMinSize = PrefixSize + 2

// Frame is one decoded frame. Which fields mean something depends on Type.
// After Decode, the byte slices alias the decoded input.
type Frame struct {
	Type   Type
	Sender []byte

	ID    [IDSize]byte // Gossip, Graft
	Round uint32       // Gossip, Graft

	Origin     []byte // Gossip
	Timestamp  int64  // Gossip: origin's wall clock at broadcast, Unix nanoseconds
	Trace      []byte // Gossip: optional trace context
	Compressor byte   // Gossip: wire ID of the payload's compressor
	Payload    []byte // Gossip
	Recovered  bool   // Gossip: FlagRecovered

	Announcements []Announcement // IHave
	Ranges        []Range        // Exchange

	WantPayload bool // Graft

	Retry uint64 // Nack: milliseconds until a graft may be answered; 0: the message is not here
}

// Limits bound what Decode accepts.
type Limits struct {
	MaxIDLen         int // sender and origin identity
	MaxPayload       int // compressed payload
	MaxTrace         int
	MaxAnnouncements int
}

// DefaultLimits are generous bounds for any deployment.
var DefaultLimits = Limits{MaxIDLen: 255, MaxPayload: 64 << 20, MaxTrace: 128, MaxAnnouncements: 1 << 16}

// Errors returned (wrapped) by Decode.
var (
	ErrTruncated = errors.New("wire: truncated frame")
	ErrTrailing  = errors.New("wire: trailing bytes after frame")
	ErrMalformed = errors.New("wire: malformed frame")
	ErrTooLarge  = errors.New("wire: field exceeds limit")
)

// VersionError reports a frame of a version this package cannot read.
type VersionError struct{ Version byte }

func (e *VersionError) Error() string {
	return fmt.Sprintf("wire: unknown frame version %d (this node reads version %d)", e.Version, Version)
}

// TypeError reports an unknown frame type.
type TypeError struct{ Type byte }

func (e *TypeError) Error() string { return fmt.Sprintf("wire: unknown frame type %d", e.Type) }

// Append appends the encoding of f to dst.
func Append(dst []byte, f *Frame) ([]byte, error) {
	dst = append(dst, Version, byte(f.Type))
	dst = appendBytes(dst, f.Sender)
	switch f.Type {
	case TypeGossip:
		dst = appendID(dst, &f.ID)
		dst = binary.AppendUvarint(dst, uint64(f.Round))
		dst = appendBytes(dst, f.Origin)
		dst = binary.AppendVarint(dst, f.Timestamp)
		var flags byte
		if len(f.Trace) > 0 {
			flags |= FlagTrace
		}
		if f.Recovered {
			flags |= FlagRecovered
		}
		dst = append(dst, flags)
		if flags&FlagTrace != 0 {
			dst = appendBytes(dst, f.Trace)
		}
		dst = append(dst, f.Compressor)
		dst = appendBytes(dst, f.Payload)
	case TypeIHave:
		anns := f.Announcements
		dst = binary.AppendUvarint(dst, uint64(groups(anns)))
		for len(anns) > 0 {
			n := groupLen(anns)
			dst = append(dst, anns[0].ID[:PrefixSize]...)
			dst = binary.AppendUvarint(dst, uint64(n))
			for i := range n {
				a := &anns[i]
				dst = binary.AppendUvarint(dst, seqOf(&a.ID))
				dst = binary.AppendUvarint(dst, uint64(a.Round))
			}
			anns = anns[n:]
		}
	case TypeExchange:
		dst = binary.AppendUvarint(dst, uint64(len(f.Ranges)))
		for i := range f.Ranges {
			r := &f.Ranges[i]
			dst = append(dst, r.Prefix[:]...)
			dst = binary.AppendUvarint(dst, r.First)
			dst = binary.AppendUvarint(dst, r.N)
		}
	case TypeGraft:
		dst = appendID(dst, &f.ID)
		dst = binary.AppendUvarint(dst, uint64(f.Round))
		var flags byte
		if f.WantPayload {
			flags |= FlagWantPayload
		}
		dst = append(dst, flags)
	case TypePrune:
		dst = appendBytes(dst, f.Origin)
	case TypeNack:
		dst = appendID(dst, &f.ID)
		dst = binary.AppendUvarint(dst, f.Retry)
	default:
		return dst, &TypeError{Type: byte(f.Type)}
	}
	return dst, nil
}

// Size is the length of f's encoding: Append(dst, f) grows dst by exactly
// Size(f) bytes (for a type Append knows), so that a caller can give it a
// buffer that never has to grow.
func Size(f *Frame) int {
	n := 2 + bytesSize(f.Sender)
	switch f.Type {
	case TypeGossip:
		n += idSize(&f.ID) + uvarintLen(uint64(f.Round)) + bytesSize(f.Origin) + varintLen(f.Timestamp) + 1
		if len(f.Trace) > 0 {
			n += bytesSize(f.Trace)
		}
		n += 1 + bytesSize(f.Payload)
	case TypeIHave:
		anns := f.Announcements
		n += uvarintLen(uint64(groups(anns)))
		for len(anns) > 0 {
			k := groupLen(anns)
			n += PrefixSize + uvarintLen(uint64(k))
			for i := range k {
				n += AnnouncementSize(anns[i])
			}
			anns = anns[k:]
		}
	case TypeExchange:
		n += uvarintLen(uint64(len(f.Ranges)))
		for i := range f.Ranges {
			n += RangeSize(f.Ranges[i])
		}
	case TypeGraft:
		n += idSize(&f.ID) + uvarintLen(uint64(f.Round)) + 1
	case TypePrune:
		n += bytesSize(f.Origin)
	case TypeNack:
		n += idSize(&f.ID) + uvarintLen(f.Retry)
	}
	return n
}

func bytesSize(b []byte) int { return uvarintLen(uint64(len(b))) + len(b) }

// varintLen is the length of binary.AppendVarint's encoding of v.
func varintLen(v int64) int {
	u := uint64(v) << 1
	if v < 0 {
		u = ^u
	}
	return uvarintLen(u)
}

// AnnouncementSize is the encoded size of a inside a group of its
// incarnation: its sequence number and round, without the group's prefix.
func AnnouncementSize(a Announcement) int {
	return uvarintLen(seqOf(&a.ID)) + uvarintLen(uint64(a.Round))
}

// FitAnnouncements is how many of the leading announcements of anns fit in
// room bytes of an IHave frame's body, after the group count that
// AnnouncementsHeaderSize leaves room for: their sizes plus, for each group
// of one incarnation, its prefix and count.
func FitAnnouncements(anns []Announcement, room int) int {
	used, n := 0, 0
	for n < len(anns) {
		k := groupLen(anns[n:])
		used += PrefixSize
		for i := range k {
			// The group's count grows with its length: count it as if
			// this announcement were the group's last.
			c := used + uvarintLen(uint64(i+1)) + AnnouncementSize(anns[n+i])
			if c > room {
				return n + i
			}
			used += AnnouncementSize(anns[n+i])
		}
		used += uvarintLen(uint64(k))
		n += k
	}
	return n
}

// seqOf is the sequence number of an ID: its last 8 bytes, big-endian.
func seqOf(id *[IDSize]byte) uint64 { return binary.BigEndian.Uint64(id[PrefixSize:]) }

// appendID appends an ID's wire form: the prefix, then the sequence number
// as a uvarint.
func appendID(dst []byte, id *[IDSize]byte) []byte {
	dst = append(dst, id[:PrefixSize]...)
	return binary.AppendUvarint(dst, seqOf(id))
}

// idSize is the length of appendID's encoding of id.
func idSize(id *[IDSize]byte) int { return PrefixSize + uvarintLen(seqOf(id)) }

// groupLen is how many leading announcements of anns share the first's
// prefix.
func groupLen(anns []Announcement) int {
	n := 1
	for n < len(anns) && [PrefixSize]byte(anns[n].ID[:PrefixSize]) == [PrefixSize]byte(anns[0].ID[:PrefixSize]) {
		n++
	}
	return n
}

// groups is how many groups Append writes for anns.
func groups(anns []Announcement) int {
	g := 0
	for len(anns) > 0 {
		anns = anns[groupLen(anns):]
		g++
	}
	return g
}

// RangeSize is the encoded size of r.
func RangeSize(r Range) int {
	return PrefixSize + uvarintLen(r.First) + uvarintLen(r.N)
}

// AnnouncementsHeaderSize is the size of an IHave or Exchange frame with no
// announcements from a sender whose identity is senderLen bytes long, plus
// room for the count.
func AnnouncementsHeaderSize(senderLen int) int {
	return 2 + uvarintLen(uint64(senderLen)) + senderLen + binary.MaxVarintLen32
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// Decode decodes src into f, reusing the storage of f.Announcements and
// f.Ranges. The byte slices of f alias src.
func Decode(src []byte, f *Frame, lim Limits) error {
	d := decoder{b: src}
	if len(src) < 2 {
		return ErrTruncated
	}
	if src[0] != Version {
		return &VersionError{Version: src[0]}
	}
	typ := Type(src[1])
	d.b = src[2:]
	anns, ranges := f.Announcements[:0], f.Ranges[:0]
	*f = Frame{Type: typ}
	var err error
	if f.Sender, err = d.bytes(lim.MaxIDLen, "sender"); err != nil {
		return err
	}
	switch typ {
	case TypeGossip:
		if err = d.id(&f.ID); err != nil {
			return err
		}
		if f.Round, err = d.round(); err != nil {
			return err
		}
		if f.Origin, err = d.bytes(lim.MaxIDLen, "origin"); err != nil {
			return err
		}
		if f.Timestamp, err = d.varint(); err != nil {
			return err
		}
		flags, err := d.byte()
		if err != nil {
			return err
		}
		if flags&^(FlagTrace|FlagRecovered) != 0 {
			return fmt.Errorf("%w: unknown gossip flags %#x", ErrMalformed, flags)
		}
		f.Recovered = flags&FlagRecovered != 0
		if flags&FlagTrace != 0 {
			if f.Trace, err = d.bytes(lim.MaxTrace, "trace"); err != nil {
				return err
			}
		}
		if f.Compressor, err = d.byte(); err != nil {
			return err
		}
		if f.Payload, err = d.bytes(lim.MaxPayload, "payload"); err != nil {
			return err
		}
	case TypeIHave:
		g, err := d.uvarint()
		if err != nil {
			return err
		}
		if g > uint64(len(d.b)/groupMinSize) {
			return fmt.Errorf("%w: %d announcement groups in %d bytes", ErrTruncated, g, len(d.b))
		}
		for range g {
			var a Announcement
			if len(d.b) < PrefixSize {
				return ErrTruncated
			}
			copy(a.ID[:PrefixSize], d.b[:PrefixSize])
			d.b = d.b[PrefixSize:]
			n, err := d.uvarint()
			if err != nil {
				return err
			}
			if n == 0 {
				return fmt.Errorf("%w: empty announcement group", ErrMalformed)
			}
			if n > uint64(lim.MaxAnnouncements-len(anns)) {
				return fmt.Errorf("%w: more than %d announcements", ErrTooLarge, lim.MaxAnnouncements)
			}
			if n > uint64(len(d.b)/announcementMinSize) {
				return fmt.Errorf("%w: %d announcements in %d bytes", ErrTruncated, n, len(d.b))
			}
			anns = slices.Grow(anns, int(n))
			for range n {
				seq, err := d.uvarint()
				if err != nil {
					return err
				}
				binary.BigEndian.PutUint64(a.ID[PrefixSize:], seq)
				if a.Round, err = d.round(); err != nil {
					return err
				}
				anns = append(anns, a)
			}
		}
		f.Announcements = anns
	case TypeExchange:
		n, err := d.uvarint()
		if err != nil {
			return err
		}
		if n > uint64(lim.MaxAnnouncements) {
			return fmt.Errorf("%w: %d ranges (limit %d)", ErrTooLarge, n, lim.MaxAnnouncements)
		}
		if n > uint64(len(d.b)/rangeMinSize) {
			return fmt.Errorf("%w: %d ranges in %d bytes", ErrTruncated, n, len(d.b))
		}
		if cap(ranges) < int(n) {
			ranges = make([]Range, 0, n)
		}
		for range n {
			var r Range
			if len(d.b) < PrefixSize {
				return ErrTruncated
			}
			copy(r.Prefix[:], d.b[:PrefixSize])
			d.b = d.b[PrefixSize:]
			if r.First, err = d.uvarint(); err != nil {
				return err
			}
			if r.N, err = d.uvarint(); err != nil {
				return err
			}
			if r.N == 0 || r.First+r.N < r.First {
				return fmt.Errorf("%w: range of %d from %d", ErrMalformed, r.N, r.First)
			}
			ranges = append(ranges, r)
		}
		f.Ranges = ranges
	case TypeGraft:
		if err = d.id(&f.ID); err != nil {
			return err
		}
		if f.Round, err = d.round(); err != nil {
			return err
		}
		flags, err := d.byte()
		if err != nil {
			return err
		}
		if flags&^FlagWantPayload != 0 {
			return fmt.Errorf("%w: unknown graft flags %#x", ErrMalformed, flags)
		}
		f.WantPayload = flags&FlagWantPayload != 0
	case TypePrune:
		if f.Origin, err = d.bytes(lim.MaxIDLen, "origin"); err != nil {
			return err
		}
	case TypeNack:
		if err = d.id(&f.ID); err != nil {
			return err
		}
		if f.Retry, err = d.uvarint(); err != nil {
			return err
		}
	default:
		return &TypeError{Type: byte(typ)}
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%w: %d bytes after %s frame", ErrTrailing, len(d.b), typ)
	}
	return nil
}

type decoder struct{ b []byte }

func (d *decoder) byte() (byte, error) {
	if len(d.b) < 1 {
		return 0, ErrTruncated
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c, nil
}

func (d *decoder) uvarint() (uint64, error) {
	v, n := binary.Uvarint(d.b)
	if n == 0 {
		return 0, ErrTruncated
	}
	if n < 0 {
		return 0, fmt.Errorf("%w: varint overflows 64 bits", ErrMalformed)
	}
	d.b = d.b[n:]
	return v, nil
}

func (d *decoder) varint() (int64, error) {
	v, n := binary.Varint(d.b)
	if n == 0 {
		return 0, ErrTruncated
	}
	if n < 0 {
		return 0, fmt.Errorf("%w: varint overflows 64 bits", ErrMalformed)
	}
	d.b = d.b[n:]
	return v, nil
}

func (d *decoder) round() (uint32, error) {
	v, err := d.uvarint()
	if err != nil {
		return 0, err
	}
	if v > math.MaxUint32 {
		return 0, fmt.Errorf("%w: round %d overflows 32 bits", ErrMalformed, v)
	}
	return uint32(v), nil
}

func (d *decoder) id(id *[IDSize]byte) error {
	if len(d.b) < PrefixSize {
		return ErrTruncated
	}
	copy(id[:PrefixSize], d.b[:PrefixSize])
	d.b = d.b[PrefixSize:]
	seq, err := d.uvarint()
	if err != nil {
		return err
	}
	binary.BigEndian.PutUint64(id[PrefixSize:], seq)
	return nil
}

func (d *decoder) bytes(limit int, what string) ([]byte, error) {
	n, err := d.uvarint()
	if err != nil {
		return nil, err
	}
	if n > uint64(limit) {
		return nil, fmt.Errorf("%w: %s of %d bytes (limit %d)", ErrTooLarge, what, n, limit)
	}
	if n > uint64(len(d.b)) {
		return nil, fmt.Errorf("%w: %s of %d bytes, %d left", ErrTruncated, what, n, len(d.b))
	}
	b := d.b[:n:n]
	d.b = d.b[n:]
	return b, nil
}
