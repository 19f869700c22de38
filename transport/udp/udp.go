// Package udp is the datagram path (transport.Datagram) over one UDP socket.
//
// Use it like this:
//
//	tr, err := udp.Listen("10.0.0.5:7946", udp.Config{})
//	if err != nil { ... }
//	defer tr.Close()
//	go func() {
//		for m := range tr.Datagrams() { // m.From is the sender's LocalAddr()
//			handle(m.From, m.Data)
//		}
//	}()
//	err = tr.SendDatagram(ctx, "10.0.0.6:7946", payload)
//
// Listen on a concrete IP address: LocalAddr is what peers send to, and a
// wildcard address such as ":7946" is not reachable from elsewhere. Peers'
// addresses should be IP literals ("ip:port"); a host name is looked up
// on the first send to it and again every 30 seconds, and such a lookup
// blocks the send.
//
// The datagram path is best effort. SendDatagram writes straight to the
// socket from the calling goroutine: a UDP send never waits for the
// receiver (the kernel drops what a slow receiver cannot take), it only waits
// for room in the local socket buffer, so SendDatagram never blocks on a slow
// or unreachable peer. A datagram the kernel refuses is dropped and counted.
// Received datagrams go into a bounded queue (Config.ReceiveQueueSize); when
// the reader of Datagrams falls behind, new datagrams are dropped and counted
// in Stats().DatagramsDropped. Received datagrams longer than
// MaxDatagramSize are dropped and counted too.
//
// The default MaxDatagramSize is 1232 bytes: the IPv6 minimum MTU (1280)
// less the IPv6 and UDP headers. It fits every IPv4 and IPv6 path, tunnels
// (WireGuard, VXLAN, PPPoE) included, so datagrams are never fragmented; a
// lost fragment loses the whole datagram, and fragments are often filtered.
// DNS chose the same size in 2020. On a network known to carry 1500-byte
// packets end to end, 1400 (memberlist's choice) or 1472 is safe; the limit
// goes up to 65507, the largest UDP payload over IPv4.
//
// Reads are batched: the read loop takes every datagram waiting, up to 16
// (readBatchBytes of buffers) per system call (recvmmsg on Linux, through
// golang.org/x/net's ipv4 and ipv6 ReadBatch; one datagram per call
// elsewhere). A datagram arriving alone still costs one call, and the call
// that finds the socket empty another, as before; a burst costs one call
// for up to 16. At saturation on loopback the gain is inside the noise of
// the shared 2-core machine (BenchmarkDatagram against
// BenchmarkDatagramSingleRead: the median of 8 runs 3-6% faster at 64 B and
// 1 KiB, single runs either way): what it saves is the system calls of a
// burst, which a node meets when it falls behind. Writes are
// one sendto per datagram from the caller's goroutine: sending the same
// datagrams to 8 peers in one sendmmsg was no faster on loopback
// (BenchmarkSendDatagramBatch: the kernel's per-packet work, not the system
// call, is the cost), and batching would need a send queue and a goroutine
// in front of the socket, which direct writes avoid.
//
// This package must never import the gossip core: it moves opaque bytes.
package udp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/plumtree-go/plumtree/transport"
	"github.com/plumtree-go/plumtree/transport/internal/resolve"
)

// Defaults and limits of Config.
const (
	// DefaultMaxDatagramSize fits the IPv6 minimum MTU: 1280 − 40 − 8.
	DefaultMaxDatagramSize = 1232
	// MaxDatagramSizeLimit is the largest UDP payload over IPv4: 65535 − 20 − 8.
	MaxDatagramSizeLimit = 65507
	// DefaultReceiveQueueSize is the default length of the Datagrams queue.
	DefaultReceiveQueueSize = 1024
)

// Config sets up a Transport. The zero value is usable.
type Config struct {
	// MaxDatagramSize is the largest datagram sent or accepted; default
	// DefaultMaxDatagramSize (1232), at most MaxDatagramSizeLimit (65507).
	// Every peer should use the same value: a peer drops datagrams longer
	// than its own limit.
	MaxDatagramSize int
	// ReceiveQueueSize is how many received datagrams wait for the reader of
	// Datagrams before new ones are dropped; default 1024.
	ReceiveQueueSize int
	// ReadBufferSize and WriteBufferSize set the socket's SO_RCVBUF and
	// SO_SNDBUF in bytes; 0 keeps the operating system's default. A larger
	// read buffer absorbs bursts while the read loop is descheduled.
	ReadBufferSize, WriteBufferSize int
	// Logger receives rare events (a failed read); nil logs nothing.
	Logger *slog.Logger
}

// Transport is a UDP socket that implements transport.Datagram and
// transport.StatsReporter. It is safe for concurrent use.
type Transport struct {
	conn    *net.UDPConn
	addr    string
	max     int
	log     *slog.Logger
	dgrams  chan transport.Message
	closed  atomic.Bool
	once    sync.Once
	wg      sync.WaitGroup
	sent    atomic.Uint64
	recvd   atomic.Uint64
	dropped atomic.Uint64
	bytesIn atomic.Uint64
	bytesOu atomic.Uint64
	// hookBatch, if set (by tests, before the read loop starts), is told
	// how many datagrams each read returned.
	hookBatch func(int)
}

var (
	_ transport.Datagram      = (*Transport)(nil)
	_ transport.StatsReporter = (*Transport)(nil)
)

// withDefaults checks cfg and fills in its defaults, as every adapter's
// Config does.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.MaxDatagramSize == 0 {
		cfg.MaxDatagramSize = DefaultMaxDatagramSize
	}
	if cfg.MaxDatagramSize < 0 || cfg.MaxDatagramSize > MaxDatagramSizeLimit {
		return cfg, fmt.Errorf("udp: MaxDatagramSize %d out of range [1, %d]", cfg.MaxDatagramSize, MaxDatagramSizeLimit)
	}
	if cfg.ReceiveQueueSize <= 0 {
		cfg.ReceiveQueueSize = DefaultReceiveQueueSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg, nil
}

// Listen opens a UDP socket at addr ("ip:port"; port 0 picks a free port)
// and starts its read loop.
func Listen(addr string, cfg Config) (*Transport, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("udp: listen %s: %w", addr, err)
	}
	conn, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("udp: listen %s: %w", addr, err)
	}
	if cfg.ReadBufferSize > 0 {
		if err := conn.SetReadBuffer(cfg.ReadBufferSize); err != nil {
			conn.Close()
			return nil, fmt.Errorf("udp: listen %s: set read buffer: %w", addr, err)
		}
	}
	if cfg.WriteBufferSize > 0 {
		if err := conn.SetWriteBuffer(cfg.WriteBufferSize); err != nil {
			conn.Close()
			return nil, fmt.Errorf("udp: listen %s: set write buffer: %w", addr, err)
		}
	}
	t := &Transport{
		conn:   conn,
		addr:   conn.LocalAddr().String(),
		max:    cfg.MaxDatagramSize,
		log:    cfg.Logger,
		dgrams: make(chan transport.Message, cfg.ReceiveQueueSize),
	}
	t.wg.Add(1)
	go t.readLoop()
	return t, nil
}

// LocalAddr returns the address the socket is bound to, "ip:port".
func (t *Transport) LocalAddr() string { return t.addr }

// MaxDatagramSize returns the largest datagram SendDatagram accepts.
func (t *Transport) MaxDatagramSize() int { return t.max }

// Datagrams delivers received datagrams; From is the sender's LocalAddr.
// It is closed by Close; datagrams already queued can still be read.
func (t *Transport) Datagrams() <-chan transport.Message { return t.dgrams }

// Stats returns the counters. A datagram SendDatagram accepted (returned
// nil) counts once, as sent or as dropped. Connections is always 0.
func (t *Transport) Stats() transport.Stats {
	return transport.Stats{
		DatagramsSent:     t.sent.Load(),
		DatagramsReceived: t.recvd.Load(),
		DatagramsDropped:  t.dropped.Load(),
		BytesSent:         t.bytesOu.Load(),
		BytesReceived:     t.bytesIn.Load(),
	}
}

// SendDatagram sends b to addr in one UDP datagram. It does not keep b. It
// never waits for the receiver: a datagram the socket refuses is dropped,
// counted, and SendDatagram returns nil. It fails with a
// *transport.TooLargeError above MaxDatagramSize, with an error wrapping
// transport.ErrClosed after Close, and with an error for an address that
// cannot be parsed or resolved.
func (t *Transport) SendDatagram(_ context.Context, addr string, b []byte) error {
	if t.closed.Load() {
		return fmt.Errorf("udp: send to %s: %w", addr, transport.ErrClosed)
	}
	if len(b) > t.max {
		return &transport.TooLargeError{Path: transport.PathDatagram, Size: len(b), Limit: t.max}
	}
	dst, err := resolver.Resolve(addr)
	if err != nil {
		return fmt.Errorf("udp: send to %s: %w", addr, err)
	}
	_, err = t.conn.WriteToUDPAddrPort(b, dst)
	switch {
	case err == nil:
		t.sent.Add(1)
		t.bytesOu.Add(uint64(len(b)))
	case errors.Is(err, net.ErrClosed):
		return fmt.Errorf("udp: send to %s: %w", addr, transport.ErrClosed)
	default:
		// Best effort: an ICMP error reported late, a full buffer, a
		// firewall. The datagram is lost like any other.
		t.dropped.Add(1)
	}
	return nil
}

// resolver caches DNS answers for peers advertised by host name, so that
// a lookup is not made for every datagram.
var resolver resolve.Cache

// maxNames bounds the read loop's cache of sender address strings.
const maxNames = 4096

// readBatchBytes bounds the buffers of one batched read: 16 datagrams of the
// default size, fewer (down to one) of larger ones.
const (
	readBatchBytes = 16 * (DefaultMaxDatagramSize + 1)
	readBatchMax   = 16
)

// batchReader is ipv4.PacketConn or ipv6.PacketConn: ReadBatch, recvmmsg on
// Linux.
type batchReader interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
}

// readLoop reads datagrams, a batch per system call, until the socket
// closes.
func (t *Transport) readLoop() {
	defer t.wg.Done()
	var pc batchReader = ipv4.NewPacketConn(t.conn)
	if ua, ok := t.conn.LocalAddr().(*net.UDPAddr); ok && ua.IP.To4() == nil {
		pc = ipv6.NewPacketConn(t.conn)
	}
	// One byte more than the limit tells an over-long datagram (truncated by
	// the kernel) from one of exactly the limit.
	msgs := make([]ipv4.Message, max(1, min(readBatchMax, readBatchBytes/(t.max+1))))
	for i := range msgs {
		msgs[i].Buffers = [][]byte{make([]byte, t.max+1)}
	}
	// The sender's address as a string, for each sender: formatting it
	// for every datagram was one allocation per datagram.
	names := make(map[netip.AddrPort]string)
	for {
		k, err := pc.ReadBatch(msgs, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || t.closed.Load() {
				return
			}
			// Some platforms report ICMP errors of earlier sends on read
			// (Windows: WSAECONNRESET); they say nothing about this socket.
			t.log.Debug("udp: read", "addr", t.addr, "err", err)
			continue
		}
		if t.hookBatch != nil {
			t.hookBatch(k)
		}
		for i := range msgs[:k] {
			m := &msgs[i]
			t.handle(m.Buffers[0][:m.N], m.Addr, names)
			m.Addr = nil
		}
	}
}

// handle queues one received datagram b from the sender at addr.
func (t *Transport) handle(b []byte, addr net.Addr, names map[netip.AddrPort]string) {
	if len(b) > t.max {
		t.dropped.Add(1)
		return
	}
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		t.dropped.Add(1)
		return
	}
	from := ua.AddrPort()
	name, ok := names[from]
	if !ok {
		if len(names) >= maxNames {
			clear(names) // many senders: start over rather than grow without bound
		}
		name = netip.AddrPortFrom(from.Addr().Unmap(), from.Port()).String()
		names[from] = name
	}
	m := transport.Message{
		From: name,
		Data: append([]byte(nil), b...),
		Path: transport.PathDatagram,
	}
	if m.Data == nil {
		m.Data = []byte{}
	}
	// Only the read loop sends on dgrams, so room now is room at the send;
	// counting first lets a reader that got m see it counted.
	if len(t.dgrams) == cap(t.dgrams) {
		t.dropped.Add(1)
		return
	}
	t.recvd.Add(1)
	t.bytesIn.Add(uint64(len(b)))
	t.dgrams <- m
}

// Close closes the socket, waits for the read loop to stop and closes
// Datagrams. It is idempotent and returns the error of closing the socket
// the first time, nil after.
func (t *Transport) Close() error {
	var err error
	t.once.Do(func() {
		t.closed.Store(true)
		err = t.conn.Close()
		t.wg.Wait()
		close(t.dgrams)
	})
	return err
}
