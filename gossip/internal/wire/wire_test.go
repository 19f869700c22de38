package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"
)

func sampleFrames() []Frame {
	id := [IDSize]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	small := [IDSize]byte{1, 2, 3, 4, 5, 6, 7, 8, 15: 200} // sequence number 200
	other := [IDSize]byte{8, 7, 6, 5, 4, 3, 2, 1, 15: 1}
	return []Frame{
		{Type: TypeGossip, Sender: []byte("10.0.0.1:7946"), ID: small, Round: 1, Origin: []byte("10.0.0.2:7946"),
			Timestamp: 1_700_000_000_000_000_000, Payload: make([]byte, 1024)},
		{Type: TypeIHave, Sender: []byte("node-2"), Announcements: []Announcement{
			{ID: small, Round: 1}, {ID: id, Round: 2}, {ID: other, Round: 3}, {ID: small, Round: 4}, {ID: other, Round: 5}}},
		{Type: TypeGossip, Sender: []byte("node-1"), ID: id, Round: 3, Origin: []byte("node-0"),
			Timestamp: 1_700_000_000_000_000_000, Compressor: 0, Payload: []byte("hello")},
		{Type: TypeGossip, Sender: []byte("n"), ID: id, Round: 0, Origin: []byte("n"),
			Timestamp: -5, Trace: []byte{0, 1, 2, 3}, Compressor: 7, Payload: []byte{}, Recovered: true},
		{Type: TypeIHave, Sender: []byte("node-2"), Announcements: []Announcement{{ID: id, Round: 1}, {ID: [IDSize]byte{9}, Round: 300}}},
		{Type: TypeExchange, Sender: []byte("node-3"), Ranges: []Range{{Prefix: [PrefixSize]byte{1, 2}, First: 1, N: 300}, {First: 1 << 40, N: 1}}},
		{Type: TypeGraft, Sender: []byte("node-4"), ID: id, Round: 2, WantPayload: true},
		{Type: TypeGraft, Sender: []byte("node-4"), ID: id, Round: 9},
		{Type: TypePrune, Sender: []byte("node-5")},
		{Type: TypePrune, Sender: []byte("node-5"), Origin: []byte("node-0")},
		{Type: TypeNack, Sender: []byte("node-6"), ID: id},
		{Type: TypeNack, Sender: []byte("node-6"), ID: id, Retry: 1500},
	}
}

// normalize makes empty and nil slices compare equal.
func normalize(f Frame) Frame {
	for _, p := range []*[]byte{&f.Sender, &f.Origin, &f.Trace, &f.Payload} {
		if len(*p) == 0 {
			*p = nil
		}
	}
	if len(f.Announcements) == 0 {
		f.Announcements = nil
	}
	if len(f.Ranges) == 0 {
		f.Ranges = nil
	}
	return f
}

func TestRoundTripEveryType(t *testing.T) {
	for _, want := range sampleFrames() {
		t.Run(want.Type.String(), func(t *testing.T) {
			prefix := []byte("prefix")
			b, err := Append(append([]byte(nil), prefix...), &want)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(b, prefix) {
				t.Fatalf("Append changed the buffer's prefix: %q", b)
			}
			var got Frame
			if err := Decode(b[len(prefix):], &got, DefaultLimits); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(normalize(got), normalize(want)) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	good, _ := Append(nil, &sampleFrames()[0])
	ihave, _ := Append(nil, &sampleFrames()[4])
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"one byte", []byte{Version}, ErrTruncated},
		{"unknown version", append([]byte{9}, good[1:]...), &VersionError{Version: 9}},
		{"unknown type", []byte{Version, 77, 0}, &TypeError{}},
		{"trailing byte", append(append([]byte(nil), good...), 0), ErrTrailing},
		{"truncated gossip", good[:len(good)-1], ErrTruncated},
		{"truncated ihave", ihave[:len(ihave)-3], ErrTruncated},
		{"version 1", append([]byte{1}, good[1:]...), &VersionError{Version: 1}},
		{"version 2", append([]byte{2}, good[1:]...), &VersionError{Version: 2}},
		{"empty announcement group", []byte{Version, byte(TypeIHave), 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0}, ErrMalformed},
		{"announcement group beyond input", []byte{Version, byte(TypeIHave), 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 0xff, 0x01, 1, 1}, ErrTruncated},
		{"id cut in its sequence number", []byte{Version, byte(TypeNack), 0, 1, 2, 3, 4, 5, 6, 7, 8, 0x80}, ErrTruncated},
		{"empty range", func() []byte {
			b, _ := Append(nil, &Frame{Type: TypeExchange, Sender: []byte("x"), Ranges: []Range{{First: 3, N: 0}}})
			return b
		}(), ErrMalformed},
		{"range past 2^64", func() []byte {
			b, _ := Append(nil, &Frame{Type: TypeExchange, Sender: []byte("x"), Ranges: []Range{{First: 1 << 63, N: 1 << 63}}})
			return b
		}(), ErrMalformed},
		{"unknown gossip flag", func() []byte {
			f := sampleFrames()[0]
			b, _ := Append(nil, &f)
			// version, type, sender len, sender, id, round, origin len, origin, timestamp varint
			i := 2 + 1 + len(f.Sender) + idSize(&f.ID) + 1 + 1 + len(f.Origin)
			for b[i]&0x80 != 0 {
				i++
			}
			b[i+1] = 0x80
			return b
		}(), ErrMalformed},
		{"announcement count beyond input", []byte{Version, byte(TypeIHave), 0, 0xff, 0xff, 0x03}, ErrTruncated},
		{"oversized sender", append([]byte{Version, byte(TypePrune), 0xff, 0x03}, make([]byte, 511)...), ErrTooLarge},
		{"varint overflow", []byte{Version, byte(TypePrune), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var f Frame
			err := Decode(c.in, &f, DefaultLimits)
			if err == nil {
				t.Fatalf("Decode accepted %x", c.in)
			}
			switch want := c.want.(type) {
			case *VersionError:
				var ve *VersionError
				if !errors.As(err, &ve) || ve.Version != want.Version {
					t.Fatalf("got %v, want a VersionError for version %d", err, want.Version)
				}
			case *TypeError:
				var te *TypeError
				if !errors.As(err, &te) {
					t.Fatalf("got %v, want a TypeError", err)
				}
			default:
				if !errors.Is(err, want) {
					t.Fatalf("got %v, want %v", err, want)
				}
			}
		})
	}
}

func TestDecodeLimits(t *testing.T) {
	f := sampleFrames()[0]
	f.Payload = make([]byte, 100)
	b, _ := Append(nil, &f)
	lim := DefaultLimits
	lim.MaxPayload = 99
	if err := Decode(b, &Frame{}, lim); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("payload over the limit: got %v, want ErrTooLarge", err)
	}
	lim = DefaultLimits
	lim.MaxAnnouncements = 1
	b, _ = Append(nil, &sampleFrames()[4])
	if err := Decode(b, &Frame{}, lim); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("announcements over the limit: got %v, want ErrTooLarge", err)
	}
}

// FitAnnouncements must pick the longest prefix of the announcements whose
// IHave frame fits: never one past the room, and not one fewer than fits.
func TestFitAnnouncements(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 2000 {
		anns := make([]Announcement, 1+rng.IntN(60))
		for i := range anns {
			anns[i].ID[0] = byte(rng.IntN(3)) // runs of one incarnation, and breaks
			binary.BigEndian.PutUint64(anns[i].ID[PrefixSize:], rng.Uint64()>>(rng.IntN(64)))
			anns[i].Round = rng.Uint32() >> rng.IntN(32)
		}
		sender := make([]byte, rng.IntN(40))
		room := rng.IntN(400)
		n := FitAnnouncements(anns, room)
		limit := AnnouncementsHeaderSize(len(sender)) + room
		size := func(k int) int {
			return Size(&Frame{Type: TypeIHave, Sender: sender, Announcements: anns[:k]})
		}
		if size(n) > limit {
			t.Fatalf("trial %d: %d announcements take %d bytes, limit %d", trial, n, size(n), limit)
		}
		// The next one must not fit even with the header's spare count
		// bytes (AnnouncementsHeaderSize allows 5 for the group count).
		if n < len(anns) {
			groupsBytes := uvarintLen(uint64(groups(anns[:n+1])))
			if size(n+1)-groupsBytes+binary.MaxVarintLen32 <= limit {
				t.Fatalf("trial %d: FitAnnouncements gave %d, but %d take %d bytes of %d", trial, n, n+1, size(n+1), limit)
			}
		}
	}
}

// A 1 KiB payload with loopback addresses as identities must fit the UDP
// transport's default datagram (1232 bytes) with room to spare, and an
// announcement of an early message costs a few bytes.
func TestCompactSizes(t *testing.T) {
	f := sampleFrames()[0]
	// Version 2 wrote 1084 bytes: a 16-byte ID.
	if got := Size(&f); got > 1078 {
		t.Errorf("a gossip frame of 1024 payload bytes is %d bytes; version 3 writes 1078", got)
	}
	anns := sampleFrames()[1].Announcements
	f = Frame{Type: TypeIHave, Sender: []byte("10.0.0.1:7946"), Announcements: []Announcement{anns[0], anns[0], anns[0]}}
	if got := Size(&f) - Size(&Frame{Type: TypeIHave, Sender: f.Sender}); got != PrefixSize+1+3*3 {
		t.Errorf("three announcements of one incarnation take %d bytes, want %d (version 2: 54)", got, PrefixSize+1+3*3)
	}
}

func FuzzDecode(f *testing.F) {
	for _, fr := range sampleFrames() {
		b, err := Append(nil, &fr)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	// Version 3's grouped announcements: long runs of one incarnation,
	// alternating ones, and sequence numbers of every length.
	var anns []Announcement
	for i := range 40 {
		var a Announcement
		a.ID[0] = byte(i / 10 % 2)
		binary.BigEndian.PutUint64(a.ID[PrefixSize:], uint64(1)<<(i*3%64))
		a.Round = uint32(i)
		anns = append(anns, a)
	}
	b, err := Append(nil, &Frame{Type: TypeIHave, Sender: []byte("x"), Announcements: anns})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Fuzz(func(t *testing.T, in []byte) {
		var fr Frame
		if err := Decode(in, &fr, DefaultLimits); err != nil {
			return
		}
		out, err := Append(nil, &fr)
		if err != nil {
			t.Fatalf("re-encode of a decoded frame failed: %v", err)
		}
		var again Frame
		if err := Decode(out, &again, DefaultLimits); err != nil {
			t.Fatalf("decode of a re-encoded frame failed: %v", err)
		}
		if !reflect.DeepEqual(normalize(fr), normalize(again)) {
			t.Fatalf("round trip changed the frame:\n%+v\n%+v", fr, again)
		}
	})
}

// Size must be exactly what Append writes, or buffers sized by it grow.
func TestSizeIsAppendLength(t *testing.T) {
	frames := sampleFrames()
	for _, ts := range []int64{0, 1, -1, 63, -64, 64, -65, 1 << 40, -(1 << 40), 1<<63 - 1, -1 << 63} {
		frames = append(frames, Frame{Type: TypeGossip, Sender: make([]byte, 200), Round: 1 << 30,
			Origin: make([]byte, 127), Timestamp: ts, Trace: make([]byte, 128), Payload: make([]byte, 70000)})
	}
	many := make([]Announcement, 300)
	for i := range many {
		many[i].Round = uint32(i) << (i % 32)
		many[i].ID[i%7/3] = byte(i % 5)
		binary.BigEndian.PutUint64(many[i].ID[PrefixSize:], uint64(i)<<(i%64))
	}
	frames = append(frames, Frame{Type: TypeIHave, Sender: []byte("x"), Announcements: many},
		Frame{Type: TypeExchange}, Frame{Type: TypeIHave})
	for _, f := range frames {
		b, err := Append([]byte("prefix"), &f)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := Size(&f), len(b)-len("prefix"); got != want {
			t.Errorf("%s frame: Size %d, Append wrote %d", f.Type, got, want)
		}
	}
}
