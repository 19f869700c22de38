package wire

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func sampleFrames() []Frame {
	id := [IDSize]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	return []Frame{
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
	ihave, _ := Append(nil, &sampleFrames()[2])
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
			i := 2 + 1 + len(f.Sender) + IDSize + 1 + 1 + len(f.Origin)
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
	b, _ = Append(nil, &sampleFrames()[2])
	if err := Decode(b, &Frame{}, lim); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("announcements over the limit: got %v, want ErrTooLarge", err)
	}
}

func TestAnnouncementSizes(t *testing.T) {
	anns := []Announcement{{Round: 0}, {Round: 127}, {Round: 128}, {Round: 1 << 30}}
	f := Frame{Type: TypeIHave, Sender: []byte("abc"), Announcements: anns}
	b, _ := Append(nil, &f)
	sum := 0
	for _, a := range anns {
		sum += AnnouncementSize(a)
	}
	if max := AnnouncementsHeaderSize(3) + sum; len(b) > max {
		t.Fatalf("frame is %d bytes, size helpers promise at most %d", len(b), max)
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
