package transport

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// Joined is a datagram transport and a stream transport used as one: it
// implements Datagram, Stream and StatsReporter. Build it with Join.
type Joined struct {
	dg   Datagram
	st   Stream
	once sync.Once
	err  error
}

var (
	_ Datagram      = (*Joined)(nil)
	_ Stream        = (*Joined)(nil)
	_ StatsReporter = (*Joined)(nil)
)

// Join joins dg and st into one transport: datagrams go through dg, frames
// through st. Both must have the same LocalAddr, so that one peer address
// reaches both paths (UDP and TCP on the same port, as memberlist does). The
// Joined value owns both: its Close closes them.
func Join(dg Datagram, st Stream) (*Joined, error) {
	if dg == nil || st == nil {
		return nil, errors.New("transport: join: nil transport")
	}
	if a, b := dg.LocalAddr(), st.LocalAddr(); a != b {
		return nil, fmt.Errorf("transport: join: datagram address %q differs from stream address %q", a, b)
	}
	return &Joined{dg: dg, st: st}, nil
}

// Datagram returns the datagram transport.
func (j *Joined) Datagram() Datagram { return j.dg }

// Stream returns the stream transport.
func (j *Joined) Stream() Stream { return j.st }

// LocalAddr is the address both paths share.
func (j *Joined) LocalAddr() string { return j.st.LocalAddr() }

// SendDatagram sends through the datagram transport.
func (j *Joined) SendDatagram(ctx context.Context, addr string, b []byte) error {
	return j.dg.SendDatagram(ctx, addr, b)
}

// MaxDatagramSize is the datagram transport's limit.
func (j *Joined) MaxDatagramSize() int { return j.dg.MaxDatagramSize() }

// Datagrams is the datagram transport's receive channel.
func (j *Joined) Datagrams() <-chan Message { return j.dg.Datagrams() }

// SendFrame sends through the stream transport.
func (j *Joined) SendFrame(ctx context.Context, addr string, b []byte) error {
	return j.st.SendFrame(ctx, addr, b)
}

// MaxFrameSize is the stream transport's limit.
func (j *Joined) MaxFrameSize() int { return j.st.MaxFrameSize() }

// Frames is the stream transport's receive channel.
func (j *Joined) Frames() <-chan Message { return j.st.Frames() }

// PeerIdentity forwards to the stream transport's PeerIdentity method, if it
// has one (an authenticating transport such as TCP with TLS); otherwise it
// reports no identity.
func (j *Joined) PeerIdentity(from string) (string, bool) {
	if pi, ok := j.st.(interface {
		PeerIdentity(string) (string, bool)
	}); ok {
		return pi.PeerIdentity(from)
	}
	return "", false
}

// Authenticates reports whether the stream transport authenticates its
// peers. The datagram transport's messages carry an Identity only if it
// authenticates too (it leaves Identity empty otherwise).
func (j *Joined) Authenticates() bool { return Authenticates(j.st) }

// Stats adds the counters of the parts that implement StatsReporter.
func (j *Joined) Stats() Stats {
	var s Stats
	if r, ok := j.dg.(StatsReporter); ok {
		s = s.Add(r.Stats())
	}
	if r, ok := j.st.(StatsReporter); ok {
		s = s.Add(r.Stats())
	}
	return s
}

// AuthenticateHellos hands a to the stream transport, if it can use one
// (see HelloAuthenticating).
func (j *Joined) AuthenticateHellos(a HelloAuthenticator) {
	if h, ok := j.st.(HelloAuthenticating); ok {
		h.AuthenticateHellos(a)
	}
}

// Close closes both transports. It is idempotent and returns their errors
// (the first time).
func (j *Joined) Close() error {
	j.once.Do(func() {
		j.err = errors.Join(j.dg.Close(), j.st.Close())
	})
	return j.err
}

// Tags of the frames a StreamDatagrams sends on its stream.
const (
	tagDatagram byte = 'D'
	tagFrame    byte = 'F'
)

// Queue bounds of a StreamDatagrams.
const (
	// streamDatagramQueue is how many datagrams may wait towards one
	// address before new ones are dropped.
	streamDatagramQueue = 64
	// streamDatagramRecvQueue is the length of the Datagrams channel.
	streamDatagramRecvQueue = 1024
	// streamFrameRecvQueue is the length of the Frames channel.
	streamFrameRecvQueue = 256
)

// StreamDatagrams carries both paths over one stream transport, for networks
// where no datagram path exists: it implements Datagram, Stream and
// StatsReporter. Build it with DatagramsOverStream.
//
// Every frame on the underlying stream starts with a tag byte, 'D' for a
// datagram and 'F' for a frame, so the receiver (which must be a
// StreamDatagrams too) tells them apart; the frame limit is one byte less
// than the stream's. Datagrams are best effort: each destination has a
// queue of 64 datagrams served by a goroutine that lives while the queue is
// not empty; when the queue is full (the stream is slow or dialing) a new
// datagram is dropped and counted, so SendDatagram never blocks.
//
// On the receiving side, one goroutine splits the stream: datagrams go to
// Datagrams (dropped and counted when its 1024 places are full), frames to
// Frames (256 places). Both kinds share one ordered stream, so when Frames
// is full and nobody reads it, the datagrams behind the waiting frame wait
// too (and the stream pushes back on its senders): read both channels.
//
// Datagrams ride the stream's connections, so whatever the stream proves of
// a sender's address holds for them too: AuthenticateHellos is handed on to
// the stream (package seal calls it when it wraps a StreamDatagrams over
// package tcp, so that a connection must prove its hello with the key
// before it carries anything), and Message.From and Identity are the
// stream's. Nothing here picks a slot or bucket by a value a peer chooses:
// the send queues are per destination, chosen by the sender.
//
// The StreamDatagrams owns the stream: do not send on it or read its
// Frames directly, and Close the StreamDatagrams (which closes the stream).
type StreamDatagrams struct {
	st     Stream
	max    int
	dgrams chan Message
	frames chan Message
	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	once   sync.Once
	err    error
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
	queues map[string][][]byte

	dgSent, dgRecv, dgDropped atomic.Uint64
	frSent, frRecv, frDropped atomic.Uint64
	bytesSent, bytesRecv      atomic.Uint64
}

var (
	_ HelloAuthenticating = (*StreamDatagrams)(nil)
	_ HelloAuthenticating = (*Joined)(nil)
	_ Datagram            = (*StreamDatagrams)(nil)
	_ Stream              = (*StreamDatagrams)(nil)
	_ StatsReporter       = (*StreamDatagrams)(nil)
)

// DatagramsOverStream wraps st so that it offers a datagram path too, with
// datagrams of at most maxDatagram bytes (clamped to st.MaxFrameSize()-1; 0
// or less means that). It takes ownership of st and starts one goroutine
// that reads st.Frames.
func DatagramsOverStream(st Stream, maxDatagram int) *StreamDatagrams {
	limit := st.MaxFrameSize() - 1
	if maxDatagram <= 0 || maxDatagram > limit {
		maxDatagram = limit
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &StreamDatagrams{
		st:     st,
		max:    maxDatagram,
		dgrams: make(chan Message, streamDatagramRecvQueue),
		frames: make(chan Message, streamFrameRecvQueue),
		ctx:    ctx,
		cancel: cancel,
		queues: make(map[string][][]byte),
	}
	s.wg.Add(1)
	go s.demux()
	return s
}

// LocalAddr is the stream's address.
func (s *StreamDatagrams) LocalAddr() string { return s.st.LocalAddr() }

// MaxDatagramSize is the largest datagram SendDatagram accepts.
func (s *StreamDatagrams) MaxDatagramSize() int { return s.max }

// MaxFrameSize is the stream's limit less the tag byte.
func (s *StreamDatagrams) MaxFrameSize() int { return s.st.MaxFrameSize() - 1 }

// Datagrams delivers received datagrams. It is closed by Close.
func (s *StreamDatagrams) Datagrams() <-chan Message { return s.dgrams }

// Frames delivers received frames. It is closed by Close.
func (s *StreamDatagrams) Frames() <-chan Message { return s.frames }

// Authenticates reports whether the stream authenticates its peers: both
// paths carry its Message.Identity.
func (s *StreamDatagrams) Authenticates() bool { return Authenticates(s.st) }

// AuthenticatesDatagrams reports the same as Authenticates: datagrams ride
// the stream's connections (DatagramAuthenticator).
func (s *StreamDatagrams) AuthenticatesDatagrams() bool { return s.Authenticates() }

// Stats reports the datagrams and frames that went through s, and the
// stream's Connections. FramesDropped adds the frames received without a
// known tag to the stream's own count (if it reports one), which includes
// frames that carried datagrams.
func (s *StreamDatagrams) Stats() Stats {
	st := Stats{
		DatagramsSent:     s.dgSent.Load(),
		DatagramsReceived: s.dgRecv.Load(),
		DatagramsDropped:  s.dgDropped.Load(),
		FramesSent:        s.frSent.Load(),
		FramesReceived:    s.frRecv.Load(),
		FramesDropped:     s.frDropped.Load(),
		BytesSent:         s.bytesSent.Load(),
		BytesReceived:     s.bytesRecv.Load(),
	}
	if r, ok := s.st.(StatsReporter); ok {
		inner := r.Stats()
		st.FramesDropped += inner.FramesDropped
		st.Connections = inner.Connections
		st.ConnectionsRefused = inner.ConnectionsRefused
	}
	return st
}

// AuthenticateHellos hands a to the stream, if it can use one (see
// HelloAuthenticating): datagrams ride the stream's connections, so they
// are proven with them.
func (s *StreamDatagrams) AuthenticateHellos(a HelloAuthenticator) {
	if h, ok := s.st.(HelloAuthenticating); ok {
		h.AuthenticateHellos(a)
	}
}

func tagged(tag byte, b []byte) []byte {
	buf := make([]byte, 1+len(b))
	buf[0] = tag
	copy(buf[1:], b)
	return buf
}

// SendFrame sends b through the stream, tagged as a frame; it blocks as the
// stream's SendFrame does.
func (s *StreamDatagrams) SendFrame(ctx context.Context, addr string, b []byte) error {
	if s.isClosed() {
		return fmt.Errorf("transport: send frame to %s: %w", addr, ErrClosed)
	}
	if limit := s.MaxFrameSize(); len(b) > limit {
		return &TooLargeError{Path: PathStream, Size: len(b), Limit: limit}
	}
	// Counted before the send: the frame may arrive (and the caller may
	// read Stats) before the stream's SendFrame returns. A failed send
	// takes its count back.
	s.frSent.Add(1)
	s.bytesSent.Add(uint64(len(b)))
	if err := s.st.SendFrame(ctx, addr, tagged(tagFrame, b)); err != nil {
		s.frSent.Add(^uint64(0))
		s.bytesSent.Add(-uint64(len(b)))
		return err
	}
	return nil
}

// SendDatagram queues a copy of b for addr and returns at once; a full queue
// drops it (counted). It fails only above MaxDatagramSize (with a
// *TooLargeError) and after Close.
func (s *StreamDatagrams) SendDatagram(_ context.Context, addr string, b []byte) error {
	if len(b) > s.max {
		return &TooLargeError{Path: PathDatagram, Size: len(b), Limit: s.max}
	}
	buf := tagged(tagDatagram, b)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("transport: send datagram to %s: %w", addr, ErrClosed)
	}
	q, running := s.queues[addr]
	if len(q) >= streamDatagramQueue {
		s.dgDropped.Add(1)
		return nil
	}
	s.queues[addr] = append(q, buf)
	if !running {
		s.wg.Add(1)
		go s.sendDatagrams(addr)
	}
	return nil
}

// sendDatagrams sends the datagrams queued for addr, one at a time, and
// exits when the queue is empty.
func (s *StreamDatagrams) sendDatagrams(addr string) {
	defer s.wg.Done()
	for {
		s.mu.Lock()
		q := s.queues[addr]
		if len(q) == 0 || s.closed {
			s.dgDropped.Add(uint64(len(q)))
			delete(s.queues, addr)
			s.mu.Unlock()
			return
		}
		buf := q[0]
		q[0] = nil
		s.queues[addr] = q[1:]
		s.mu.Unlock()

		if err := s.st.SendFrame(s.ctx, addr, buf); err != nil {
			s.dgDropped.Add(1)
			continue
		}
		s.dgSent.Add(1)
		s.bytesSent.Add(uint64(len(buf) - 1))
	}
}

func (s *StreamDatagrams) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// demux splits the stream's frames into datagrams and frames.
func (s *StreamDatagrams) demux() {
	defer s.wg.Done()
	for m := range s.st.Frames() {
		if len(m.Data) == 0 {
			s.frDropped.Add(1) // not from a StreamDatagrams: no tag
			continue
		}
		tag, data := m.Data[0], m.Data[1:]
		switch tag {
		case tagDatagram:
			// Only demux sends on dgrams: room now is room at the send.
			if len(s.dgrams) == cap(s.dgrams) {
				s.dgDropped.Add(1)
				continue
			}
			s.dgRecv.Add(1)
			s.bytesRecv.Add(uint64(len(data)))
			s.dgrams <- Message{From: m.From, Data: data, Path: PathDatagram, Identity: m.Identity}
		case tagFrame:
			s.frRecv.Add(1)
			s.bytesRecv.Add(uint64(len(data)))
			select {
			case s.frames <- Message{From: m.From, Data: data, Path: PathStream, Identity: m.Identity}:
			case <-s.ctx.Done():
				return
			}
		default:
			s.frDropped.Add(1)
		}
	}
}

// Close closes the stream, waits for s's goroutines and closes Datagrams and
// Frames. Datagrams still queued are dropped and counted. It is idempotent
// and returns the stream's Close error the first time.
func (s *StreamDatagrams) Close() error {
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.cancel()
		s.err = s.st.Close()
		s.wg.Wait()
		close(s.dgrams)
		close(s.frames)
	})
	return s.err
}
