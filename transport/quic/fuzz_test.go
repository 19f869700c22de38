package quic

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"testing"
)

// FuzzReadStreamFrames reads arbitrary bytes as a stream's frames, as
// readStream does (a 4-byte big-endian length, refused past MaxFrameSize,
// then readFrame). It must never panic, return a frame of another length,
// or allocate ahead of the bytes that arrived by more than one readChunk:
// a peer that announces 4 GiB and sends nothing costs 64 KiB.
func FuzzReadStreamFrames(f *testing.F) {
	frame := func(b []byte) []byte { return append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...) }
	f.Add(frame([]byte("hello")))
	f.Add(append(frame([]byte("one")), frame(bytes.Repeat([]byte{2}, 17_000))...)) // past bufio's 16 KiB buffer
	f.Add(frame(nil))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1, 2, 3})
	f.Add([]byte{0, 0x0f, 0xff, 0xff, 1, 2, 3})
	f.Add([]byte{0, 0})
	const maxFrame = 1 << 20
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReaderSize(bytes.NewReader(in), 16<<10)
		var hdr [4]byte
		for {
			if _, err := io.ReadFull(r, hdr[:]); err != nil {
				return
			}
			n := binary.BigEndian.Uint32(hdr[:])
			if uint64(n) > maxFrame {
				return // readStream refuses it and closes the connection
			}
			data, err := readFrame(r, int(n))
			if err != nil {
				return
			}
			if len(data) != int(n) {
				t.Fatalf("frame of %d bytes for a header of %d", len(data), n)
			}
			if cap(data) > max(readChunk, 2*len(in)) {
				t.Fatalf("frame of %d bytes has capacity %d from %d bytes of input", len(data), cap(data), len(in))
			}
		}
	})
}
