package topic

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cespare/xxhash/v2"
)

// HostVersion is the first byte of every frame a Host sends: the version
// of the host framing (the topic tag and the control frames). A frame with
// another first byte is refused and counted.
const HostVersion = 0xA1

// PrefixLen is the bytes a Host puts before each topic frame: HostVersion
// and the 8-byte topic tag. A topic's transport offers its Plumtree the
// real transport's limits minus PrefixLen.
const PrefixLen = 1 + 8

// controlTag is the tag of the host's own control frames (subscription
// announcements). No topic name hashes to it: Subscribe refuses such a name.
const controlTag = 0

// Control frame kinds, after the prefix.
const (
	ctlAnnounce = 1
)

// announce flags.
const (
	flagWantReply = 1 << 0 // the receiver answers with its own set
)

// Limits on control frames from the network.
const (
	maxIDLen = 255
	// MaxTopics is the most topics one host may subscribe to at once, and
	// the most tags an announcement from a peer may carry.
	MaxTopics = 4096
)

// Tag is the 8-byte tag of a topic name on the wire: the xxhash64 of the
// name.
func Tag(name string) uint64 { return xxhash.Sum64String(name) }

// appendPrefix appends the host prefix of a frame for tag.
func appendPrefix(dst []byte, tag uint64) []byte {
	dst = append(dst, HostVersion)
	return binary.BigEndian.AppendUint64(dst, tag)
}

// FrameError is a frame from the network the host could not read.
type FrameError struct{ Reason string }

// Error says why.
func (e *FrameError) Error() string { return "topic: refused frame: " + e.Reason }

var errShort = &FrameError{Reason: "shorter than the host prefix"}

// splitPrefix reads the host prefix of b: the tag and the rest.
func splitPrefix(b []byte) (tag uint64, rest []byte, err error) {
	if len(b) < PrefixLen {
		return 0, nil, errShort
	}
	if b[0] != HostVersion {
		return 0, nil, &FrameError{Reason: fmt.Sprintf("unknown host frame version %#x (this host reads %#x)", b[0], HostVersion)}
	}
	return binary.BigEndian.Uint64(b[1:9]), b[9:], nil
}

// announcement is a host's subscription set as it travels.
type announcement struct {
	want        bool   // the receiver should answer with its own set
	sender      []byte // the sender's node ID, encoded by the IDCodec
	incarnation uint64 // drawn when the host starts: a restart is a new set
	version     uint64 // grows with each change of the set
	tags        []uint64
}

// appendAnnouncement appends the whole control frame (prefix included).
func appendAnnouncement(dst []byte, a *announcement) []byte {
	dst = appendPrefix(dst, controlTag)
	var flags byte
	if a.want {
		flags |= flagWantReply
	}
	dst = append(dst, ctlAnnounce, flags)
	dst = binary.AppendUvarint(dst, uint64(len(a.sender)))
	dst = append(dst, a.sender...)
	dst = binary.BigEndian.AppendUint64(dst, a.incarnation)
	dst = binary.AppendUvarint(dst, a.version)
	dst = binary.AppendUvarint(dst, uint64(len(a.tags)))
	for _, t := range a.tags {
		dst = binary.BigEndian.AppendUint64(dst, t)
	}
	return dst
}

// announcementSize is the length of the frame appendAnnouncement makes.
func announcementSize(idLen, tags int, version uint64) int {
	return PrefixLen + 2 + uvarintLen(uint64(idLen)) + idLen + 8 + uvarintLen(version) + uvarintLen(uint64(tags)) + 8*tags
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// decodeControl reads a control frame (after the prefix). It never panics
// and never allocates more than the frame's own length justifies.
func decodeControl(b []byte) (*announcement, error) {
	if len(b) < 2 {
		return nil, &FrameError{Reason: "control frame too short"}
	}
	if b[0] != ctlAnnounce {
		return nil, &FrameError{Reason: fmt.Sprintf("unknown control frame kind %d", b[0])}
	}
	a := &announcement{want: b[1]&flagWantReply != 0}
	b = b[2:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n == 0 || n > maxIDLen || uint64(len(b)-k) < n {
		return nil, &FrameError{Reason: "bad sender ID length"}
	}
	b = b[k:]
	a.sender, b = b[:n:n], b[n:]
	if len(b) < 8 {
		return nil, &FrameError{Reason: "missing incarnation"}
	}
	a.incarnation, b = binary.BigEndian.Uint64(b), b[8:]
	if a.version, k = binary.Uvarint(b); k <= 0 {
		return nil, &FrameError{Reason: "bad version"}
	}
	b = b[k:]
	count, k := binary.Uvarint(b)
	if k <= 0 || count > MaxTopics {
		return nil, &FrameError{Reason: "bad topic count"}
	}
	b = b[k:]
	if uint64(len(b)) != 8*count {
		return nil, &FrameError{Reason: fmt.Sprintf("%d topics announced in %d bytes", count, len(b))}
	}
	a.tags = make([]uint64, count)
	for i := range a.tags {
		a.tags[i] = binary.BigEndian.Uint64(b[8*i:])
	}
	return a, nil
}

var errTagZero = errors.New("topic: the name hashes to the tag reserved for the host's control frames; choose another name")
