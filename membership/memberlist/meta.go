package memberlist

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"
)

// The node metadata this package advertises through memberlist, version 1:
//
//	byte 0     version (1)
//	byte 1     flags: bit 0 set means the node is leaving; other bits are
//	           reserved and ignored by readers of version 1
//	uvarint    length of the broadcast address, 1 or more
//	bytes      the broadcast address (UTF-8)
//	8 bytes    optional: the node's boot ID, random at each start, so that
//	           a node that restarts under the same name is told from the
//	           one that announced its departure (big endian; absent or 0
//	           means unknown)
//	...        anything after that is reserved for later fields of
//	           version 1 and ignored
//
// A reader refuses any other version, rather than guessing at its layout.
const (
	metaVersion      = 1
	metaFlagLeaving  = 1 << 0
	metaHeaderSize   = 2
	maxAddrLenInMeta = 255
)

// meta is the decoded node metadata.
type meta struct {
	addr    string
	leaving bool
	boot    uint64 // 0: unknown
}

var errMetaEmpty = errors.New("no metadata (not a node of this library?)")

// appendMeta appends the encoding of md to dst.
func appendMeta(dst []byte, md meta) []byte {
	var flags byte
	if md.leaving {
		flags |= metaFlagLeaving
	}
	dst = append(dst, metaVersion, flags)
	dst = binary.AppendUvarint(dst, uint64(len(md.addr)))
	dst = append(dst, md.addr...)
	return binary.BigEndian.AppendUint64(dst, md.boot)
}

// decodeMeta reads metadata received from a peer. It never panics and never
// allocates more than the input's size.
func decodeMeta(b []byte) (meta, error) {
	if len(b) == 0 {
		return meta{}, errMetaEmpty
	}
	if b[0] != metaVersion {
		return meta{}, fmt.Errorf("metadata version %d, this node reads version %d", b[0], metaVersion)
	}
	if len(b) < metaHeaderSize {
		return meta{}, errors.New("metadata truncated in its header")
	}
	md := meta{leaving: b[1]&metaFlagLeaving != 0}
	n, k := binary.Uvarint(b[metaHeaderSize:])
	if k <= 0 {
		return meta{}, errors.New("metadata address length unreadable")
	}
	rest := b[metaHeaderSize+k:]
	switch {
	case n == 0:
		return meta{}, errors.New("metadata carries an empty address")
	case n > uint64(len(rest)):
		return meta{}, fmt.Errorf("metadata address of %d bytes, only %d present", n, len(rest))
	}
	addr := rest[:n]
	if !utf8.Valid(addr) {
		return meta{}, errors.New("metadata address is not UTF-8")
	}
	md.addr = string(addr)
	if rest = rest[n:]; len(rest) >= 8 {
		md.boot = binary.BigEndian.Uint64(rest)
	}
	return md, nil
}

// checkAddr validates a broadcast address given by the local user.
func checkAddr(addr string) error {
	switch {
	case addr == "":
		return errors.New("memberlist: Config.Addr, the broadcast transport's address, is required")
	case len(addr) > maxAddrLenInMeta:
		return fmt.Errorf("memberlist: broadcast address of %d bytes, at most %d fit in the node metadata", len(addr), maxAddrLenInMeta)
	case !utf8.ValidString(addr):
		return errors.New("memberlist: broadcast address is not UTF-8")
	}
	return nil
}

// Messages between adapters, sent as memberlist user messages, version 1:
//
//	byte 0     version (1)
//	byte 1     type: msgLeaving or msgAck
//	uvarint    length of the sender's node name, then the name
//	uvarint    (msgLeaving only) length of the sender's memberlist address
//	           (host:port, where the acknowledgement goes), then the address
//
// A node that closes sends msgLeaving to every other adapter it knows and
// waits for their msgAck before it leaves memberlist (see Close).
const (
	msgVersion = 1
	msgLeaving = 1
	msgAck     = 2
)

type message struct {
	kind byte
	name string
	addr string // msgLeaving: where to send the acknowledgement
}

func appendMessage(dst []byte, msg message) []byte {
	dst = append(dst, msgVersion, msg.kind)
	dst = binary.AppendUvarint(dst, uint64(len(msg.name)))
	dst = append(dst, msg.name...)
	if msg.kind == msgLeaving {
		dst = binary.AppendUvarint(dst, uint64(len(msg.addr)))
		dst = append(dst, msg.addr...)
	}
	return dst
}

// decodeMessage reads a message from a peer. It never panics and never
// allocates more than the input's size.
func decodeMessage(b []byte) (message, error) {
	if len(b) < 2 {
		return message{}, errors.New("message truncated in its header")
	}
	if b[0] != msgVersion {
		return message{}, fmt.Errorf("message version %d, this node reads version %d", b[0], msgVersion)
	}
	msg := message{kind: b[1]}
	if msg.kind != msgLeaving && msg.kind != msgAck {
		return message{}, fmt.Errorf("unknown message type %d", msg.kind)
	}
	name, rest, err := readString(b[2:])
	if err != nil {
		return message{}, fmt.Errorf("node name: %w", err)
	}
	msg.name = name
	if msg.kind == msgLeaving {
		if msg.addr, _, err = readString(rest); err != nil {
			return message{}, fmt.Errorf("address: %w", err)
		}
	}
	return msg, nil
}

// readString reads a uvarint length and that many bytes of non-empty UTF-8.
func readString(b []byte) (s string, rest []byte, err error) {
	n, k := binary.Uvarint(b)
	switch {
	case k <= 0:
		return "", nil, errors.New("length unreadable")
	case n == 0:
		return "", nil, errors.New("empty")
	case n > uint64(len(b)-k):
		return "", nil, fmt.Errorf("%d bytes, only %d present", n, len(b)-k)
	}
	v := b[k : k+int(n)]
	if !utf8.Valid(v) {
		return "", nil, errors.New("not UTF-8")
	}
	return string(v), b[k+int(n):], nil
}
