//go:build unix

// Package unixsock is a transport written from scratch over Unix domain
// sockets: the example to follow when you bring a transport of your own.
//
// An address is a file path, say "/run/app/n1". A transport listening there
// makes two sockets beside it:
//
//   - "/run/app/n1.d", a unixgram socket, for the datagram path. The kernel
//     tells the receiver the path of the sending socket, so From needs no
//     header: it is that path without its ".d".
//   - "/run/app/n1.s", a unix stream socket, for the stream path. A dialer
//     first sends its own address (2-byte length, then the bytes), because
//     the receiver cannot learn it otherwise (the dialing end of a Unix
//     stream connection has no name); then frames, each a 4-byte big-endian
//     length followed by the bytes.
//
// How it meets the contract of package transport (each point is a rule the
// conformance suite checks):
//
//   - SendDatagram never blocks: it makes one non-blocking send, and a
//     datagram the kernel cannot take at once (the receiver's queue is full,
//     nobody listens) is dropped and counted. The kernel's socket buffer is
//     the queue.
//   - SendFrame puts a copy of the frame on a bounded queue per peer; one
//     writer goroutine per peer writes the queue in order. When the receiver
//     stops reading, its socket buffer fills, the writer blocks, the queue
//     fills and SendFrame blocks until its ctx is done: the frame then was
//     never queued, so it goes whole or not at all.
//   - Dialing a Unix socket either connects or fails at once, so SendFrame
//     dials itself and reports an address nobody listens on with
//     transport.ErrUnreachable on the same call.
//   - A connection whose write fails is forgotten, with the frames queued on
//     it counted as dropped; the next SendFrame dials again (a peer that
//     restarted is reachable again).
//   - Close closes the sockets, which unblocks every goroutine reading or
//     writing them, waits for those goroutines, then closes the channels.
//
// Unix sockets reach only processes on the same machine, and a path is
// limited to about 100 bytes (sun_path): keep directories short.
//
// Like every transport, this package must never import the gossip core.
package unixsock

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/plumtree-go/plumtree/transport"
)

// Defaults of Config.
const (
	// DefaultMaxDatagramSize fits macOS's default limit for a Unix datagram
	// (net.local.dgram.maxdgram, 2048 bytes); Linux allows far more.
	DefaultMaxDatagramSize = 2048
	DefaultMaxFrameSize    = 4 << 20
	DefaultSendQueueSize   = 64
	DefaultReceiveQueue    = 256
)

// maxPath is the longest socket path every Unix accepts (sun_path is 104
// bytes on macOS and the BSDs, 108 on Linux, including a terminating NUL).
const maxPath = 103

// Config tunes a Transport. Zero fields take the defaults above.
type Config struct {
	MaxDatagramSize int // the largest datagram SendDatagram accepts
	MaxFrameSize    int // the largest frame sent or received
	SendQueueSize   int // frames that may wait per peer before SendFrame blocks
	ReceiveQueue    int // capacity of the Datagrams and Frames channels
}

// Transport is both paths over Unix domain sockets.
type Transport struct {
	addr string
	cfg  Config

	dgConn   *net.UnixConn     // the unixgram socket
	dgRaw    syscall.RawConn   // its descriptor, for sends that never wait
	listener *net.UnixListener // the stream socket

	datagrams chan transport.Message
	frames    chan transport.Message
	closing   chan struct{} // closed by Close: every goroutine watches it
	wg        sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	peers    map[string]*peer      // outgoing connections, by address
	incoming map[net.Conn]struct{} // accepted connections

	stats counters
}

// peer is an outgoing connection and the queue its writer drains.
type peer struct {
	conn  net.Conn
	queue chan []byte
}

var (
	_ transport.Datagram      = (*Transport)(nil)
	_ transport.Stream        = (*Transport)(nil)
	_ transport.StatsReporter = (*Transport)(nil)
)

// Listen opens a transport at addr, a file path whose directory exists.
// It creates addr+".d" and addr+".s", and Close removes them.
func Listen(addr string, cfg Config) (*Transport, error) {
	if len(addr)+2 > maxPath {
		return nil, fmt.Errorf("unixsock: path %q is too long for a socket (at most %d bytes)", addr, maxPath-2)
	}
	cfg.MaxDatagramSize = orDefault(cfg.MaxDatagramSize, DefaultMaxDatagramSize)
	cfg.MaxFrameSize = orDefault(cfg.MaxFrameSize, DefaultMaxFrameSize)
	cfg.SendQueueSize = orDefault(cfg.SendQueueSize, DefaultSendQueueSize)
	cfg.ReceiveQueue = orDefault(cfg.ReceiveQueue, DefaultReceiveQueue)

	dg, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr + ".d", Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("unixsock: listen: %w", err)
	}
	raw, err := dg.SyscallConn()
	if err != nil {
		dg.Close()
		os.Remove(addr + ".d")
		return nil, fmt.Errorf("unixsock: listen: %w", err)
	}
	// net.ListenUnix removes the socket file when the listener closes.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: addr + ".s", Net: "unix"})
	if err != nil {
		dg.Close()
		os.Remove(addr + ".d")
		return nil, fmt.Errorf("unixsock: listen: %w", err)
	}
	t := &Transport{
		addr:      addr,
		cfg:       cfg,
		dgConn:    dg,
		dgRaw:     raw,
		listener:  ln,
		datagrams: make(chan transport.Message, cfg.ReceiveQueue),
		frames:    make(chan transport.Message, cfg.ReceiveQueue),
		closing:   make(chan struct{}),
		peers:     make(map[string]*peer),
		incoming:  make(map[net.Conn]struct{}),
	}
	t.wg.Add(2)
	go t.readDatagrams()
	go t.accept()
	return t, nil
}

func orDefault(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// LocalAddr is the path peers send to.
func (t *Transport) LocalAddr() string { return t.addr }

// MaxDatagramSize is the largest datagram SendDatagram accepts.
func (t *Transport) MaxDatagramSize() int { return t.cfg.MaxDatagramSize }

// MaxFrameSize is the largest frame SendFrame accepts.
func (t *Transport) MaxFrameSize() int { return t.cfg.MaxFrameSize }

// Datagrams delivers received datagrams; Close closes it.
func (t *Transport) Datagrams() <-chan transport.Message { return t.datagrams }

// Frames delivers received frames; Close closes it.
func (t *Transport) Frames() <-chan transport.Message { return t.frames }

func (t *Transport) isClosing() bool {
	select {
	case <-t.closing:
		return true
	default:
		return false
	}
}

// ---- The datagram path ----

// SendDatagram sends b to addr without blocking: if the kernel cannot take it
// at once, it is dropped and counted.
func (t *Transport) SendDatagram(_ context.Context, addr string, b []byte) error {
	if len(b) > t.cfg.MaxDatagramSize {
		return &transport.TooLargeError{Path: transport.PathDatagram, Size: len(b), Limit: t.cfg.MaxDatagramSize}
	}
	if t.isClosing() {
		return fmt.Errorf("unixsock: send datagram: %w", transport.ErrClosed)
	}
	to := &syscall.SockaddrUnix{Name: addr + ".d"}
	var sendErr error
	// Go keeps its sockets in non-blocking mode, so the kernel takes the
	// datagram at once or fails (EAGAIN); returning true tells Go not to
	// wait for room and retry, as conn.WriteTo would.
	err := t.dgRaw.Write(func(fd uintptr) bool {
		sendErr = syscall.Sendto(int(fd), b, 0, to)
		return true
	})
	switch {
	case err != nil: // the socket is closed
		return fmt.Errorf("unixsock: send datagram: %w", transport.ErrClosed)
	case sendErr != nil:
		// EAGAIN (the receiver's queue is full), ENOENT or ECONNREFUSED
		// (nobody listens): best effort means dropped, not failed.
		t.stats.datagramsDropped.Add(1)
	default:
		t.stats.datagramsSent.Add(1)
		t.stats.bytesSent.Add(uint64(len(b)))
	}
	return nil
}

// readDatagrams reads the unixgram socket until Close.
func (t *Transport) readDatagrams() {
	defer t.wg.Done()
	buf := make([]byte, t.cfg.MaxDatagramSize+1)
	for {
		n, from, err := t.dgConn.ReadFromUnix(buf)
		if err != nil {
			if t.isClosing() {
				return
			}
			continue // a transient error: the socket is still open
		}
		if n > t.cfg.MaxDatagramSize || from == nil {
			continue // too large, or from an unnamed socket
		}
		sender, ours := strings.CutSuffix(from.Name, ".d")
		if !ours {
			continue // not from a transport of this package
		}
		m := transport.Message{
			From: sender,
			Data: bytes.Clone(buf[:n]), // never nil, even when empty
			Path: transport.PathDatagram,
		}
		if len(t.datagrams) == cap(t.datagrams) {
			t.stats.datagramsDropped.Add(1) // nobody reads fast enough: drop, never block
			continue
		}
		// Counted before the reader can see it, so that Stats never
		// reports fewer datagrams than were read. The send cannot block:
		// this goroutine is the channel's only sender.
		t.stats.datagramsReceived.Add(1)
		t.stats.bytesReceived.Add(uint64(n))
		t.datagrams <- m
	}
}

// ---- The stream path: sending ----

// SendFrame queues b for addr, dialing addr first if there is no connection.
// It blocks while the queue towards addr is full, until ctx is done.
func (t *Transport) SendFrame(ctx context.Context, addr string, b []byte) error {
	if len(b) > t.cfg.MaxFrameSize {
		return &transport.TooLargeError{Path: transport.PathStream, Size: len(b), Limit: t.cfg.MaxFrameSize}
	}
	p, err := t.peer(ctx, addr)
	if err != nil {
		return err
	}
	frame := bytes.Clone(b) // the caller keeps b
	select {
	case p.queue <- frame:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.closing:
		return fmt.Errorf("unixsock: send frame: %w", transport.ErrClosed)
	}
}

// peer returns the connection to addr, dialing it if there is none.
// Dialing a Unix socket is local and immediate, so it happens under the lock.
func (t *Transport) peer(ctx context.Context, addr string) (*peer, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, fmt.Errorf("unixsock: send frame: %w", transport.ErrClosed)
	}
	if p := t.peers[addr]; p != nil {
		return p, nil
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", addr+".s")
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("unixsock: dial %s: %w (%w)", addr, transport.ErrUnreachable, err)
	}
	// The handshake: tell the peer who we are, so that it can set From.
	hello := binary.BigEndian.AppendUint16(nil, uint16(len(t.addr)))
	if _, err := conn.Write(append(hello, t.addr...)); err != nil {
		conn.Close()
		return nil, fmt.Errorf("unixsock: dial %s: %w (%w)", addr, transport.ErrUnreachable, err)
	}
	p := &peer{conn: conn, queue: make(chan []byte, t.cfg.SendQueueSize)}
	t.peers[addr] = p
	t.stats.connections.Add(1)
	t.wg.Add(1)
	go t.write(addr, p)
	return p, nil
}

// write writes the frames queued for one peer, in order, until Close or a
// write error.
func (t *Transport) write(addr string, p *peer) {
	defer t.wg.Done()
	defer t.forget(addr, p)
	var header [4]byte
	for {
		select {
		case <-t.closing:
			return
		case frame := <-p.queue:
			binary.BigEndian.PutUint32(header[:], uint32(len(frame)))
			// One writev for header and frame: whole, or the connection fails.
			bufs := net.Buffers{header[:], frame}
			if _, err := bufs.WriteTo(p.conn); err != nil {
				t.stats.framesDropped.Add(1)
				return
			}
			t.stats.framesSent.Add(1)
			t.stats.bytesSent.Add(uint64(len(frame)))
		}
	}
}

// forget closes a peer's connection and removes it, so that the next
// SendFrame dials again; frames still queued are dropped and counted.
func (t *Transport) forget(addr string, p *peer) {
	p.conn.Close()
	t.mu.Lock()
	if t.peers[addr] == p {
		delete(t.peers, addr)
	}
	t.mu.Unlock()
	t.stats.connections.Add(-1)
	for {
		select {
		case <-p.queue:
			t.stats.framesDropped.Add(1)
		default:
			return
		}
	}
}

// ---- The stream path: receiving ----

// accept accepts connections until Close, with one reader each.
func (t *Transport) accept() {
	defer t.wg.Done()
	for {
		conn, err := t.listener.Accept()
		if err != nil {
			if t.isClosing() {
				return
			}
			continue
		}
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			conn.Close()
			return
		}
		t.incoming[conn] = struct{}{}
		t.stats.connections.Add(1)
		t.wg.Add(1)
		t.mu.Unlock()
		go t.read(conn)
	}
}

// read reads the handshake, then frames, until the connection ends.
func (t *Transport) read(conn net.Conn) {
	defer t.wg.Done()
	defer func() {
		conn.Close()
		t.mu.Lock()
		delete(t.incoming, conn)
		t.mu.Unlock()
		t.stats.connections.Add(-1)
	}()
	var n [4]byte
	if _, err := io.ReadFull(conn, n[:2]); err != nil {
		return
	}
	from := make([]byte, binary.BigEndian.Uint16(n[:2]))
	if _, err := io.ReadFull(conn, from); err != nil {
		return
	}
	for {
		if _, err := io.ReadFull(conn, n[:]); err != nil {
			return
		}
		size := binary.BigEndian.Uint32(n[:])
		if size > uint32(t.cfg.MaxFrameSize) {
			t.stats.framesDropped.Add(1)
			return // a peer that breaks the limit loses its connection
		}
		data := make([]byte, size)
		if _, err := io.ReadFull(conn, data); err != nil {
			return
		}
		t.stats.framesReceived.Add(1)
		t.stats.bytesReceived.Add(uint64(size))
		// Blocking here is the backpressure: the socket buffer fills, then
		// the sender's queue, then the sender's SendFrame waits.
		select {
		case t.frames <- transport.Message{From: string(from), Data: data, Path: transport.PathStream}:
		case <-t.closing:
			return
		}
	}
}

// ---- Close and statistics ----

// Close closes the sockets and every connection, waits for the goroutines
// and closes the channels. It is idempotent.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	close(t.closing)
	// Closing a socket unblocks whoever reads or writes it.
	for _, p := range t.peers {
		p.conn.Close()
	}
	for conn := range t.incoming {
		conn.Close()
	}
	t.mu.Unlock()

	err := errors.Join(t.listener.Close(), t.dgConn.Close())
	os.Remove(t.addr + ".d") // a unixgram socket's file outlives it
	t.wg.Wait()
	close(t.datagrams)
	close(t.frames)
	return err
}

type counters struct {
	datagramsSent, datagramsReceived, datagramsDropped atomic.Uint64
	framesSent, framesReceived, framesDropped          atomic.Uint64
	bytesSent, bytesReceived                           atomic.Uint64
	connections                                        atomic.Int64
}

// Stats reports the transport's counters.
func (t *Transport) Stats() transport.Stats {
	c := &t.stats
	return transport.Stats{
		DatagramsSent:     c.datagramsSent.Load(),
		DatagramsReceived: c.datagramsReceived.Load(),
		DatagramsDropped:  c.datagramsDropped.Load(),
		FramesSent:        c.framesSent.Load(),
		FramesReceived:    c.framesReceived.Load(),
		FramesDropped:     c.framesDropped.Load(),
		BytesSent:         c.bytesSent.Load(),
		BytesReceived:     c.bytesReceived.Load(),
		Connections:       int(c.connections.Load()),
	}
}
