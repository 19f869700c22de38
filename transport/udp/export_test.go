package udp

import (
	"net"
	"net/netip"

	"golang.org/x/net/ipv4"

	"github.com/plumtree-go/plumtree/transport"
)

// ListenSingleRead is Listen with the read loop the package had before
// batched reads: one datagram per system call (recvfrom), for
// BenchmarkDatagramSingleRead, the comparison that keeps batched reads
// earning their place.
func ListenSingleRead(addr string, cfg Config) (*Transport, error) {
	t, err := Listen(addr, cfg)
	if err != nil {
		return nil, err
	}
	// Replace the read loop: stopping it in place would be intrusive, so
	// open a second transport on a fresh socket at the same address.
	t.Close()
	ua, _ := net.ResolveUDPAddr("udp", t.addr)
	conn, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, err
	}
	if cfg.ReadBufferSize > 0 {
		conn.SetReadBuffer(cfg.ReadBufferSize)
	}
	if cfg.WriteBufferSize > 0 {
		conn.SetWriteBuffer(cfg.WriteBufferSize)
	}
	s := &Transport{conn: conn, addr: t.addr, max: t.max, log: t.log, dgrams: make(chan transport.Message, cap(t.dgrams))}
	s.wg.Add(1)
	go s.readLoopSingle()
	return s, nil
}

func (t *Transport) readLoopSingle() {
	defer t.wg.Done()
	buf := make([]byte, t.max+1)
	names := make(map[netip.AddrPort]string)
	for {
		n, from, err := t.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if t.closed.Load() {
				return
			}
			continue
		}
		t.handle(buf[:n], net.UDPAddrFromAddrPort(from), names)
	}
}

// SendBatchForBench sends b to every address of to in one system call
// (sendmmsg through golang.org/x/net/ipv4 WriteBatch), for
// BenchmarkSendDatagramBatch: the experiment that decides whether batched
// writes earn a place in the package. IPv4 only; counts like SendDatagram.
func (t *Transport) SendBatchForBench(to []*net.UDPAddr, b []byte, msgs []ipv4.Message) error {
	for i, a := range to {
		msgs[i].Buffers = [][]byte{b}
		msgs[i].Addr = a
	}
	pc := ipv4.NewPacketConn(t.conn)
	for sent := 0; sent < len(to); {
		k, err := pc.WriteBatch(msgs[sent:len(to)], 0)
		if err != nil {
			return err
		}
		sent += k
		t.sent.Add(uint64(k))
		t.bytesOu.Add(uint64(k * len(b)))
	}
	return nil
}

// ListenPaused is Listen with the read loop not started until start is
// called; batch receives the size of every batch read after that.
func ListenPaused(addr string, cfg Config, batch func(int)) (t *Transport, start func(), err error) {
	s, err := ListenSingleRead(addr, cfg) // a transport whose loop we replace
	if err != nil {
		return nil, nil, err
	}
	s.Close()
	ua, _ := net.ResolveUDPAddr("udp", s.addr)
	conn, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, nil, err
	}
	t = &Transport{conn: conn, addr: s.addr, max: s.max, log: s.log, dgrams: make(chan transport.Message, cap(s.dgrams)), hookBatch: batch}
	t.wg.Add(1)
	return t, func() { go t.readLoop() }, nil
}
