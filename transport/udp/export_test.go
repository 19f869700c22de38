package udp

import (
	"net"
	"net/netip"

	"golang.org/x/net/ipv4"

	"github.com/plumtree-go/plumtree/transport"
)

// ListenBatchRead is Listen with a read loop that takes up to 64 datagrams
// per system call (recvmmsg through golang.org/x/net/ipv4), for
// BenchmarkDatagramBatchRead: the experiment that decides whether batched
// reads earn a place in the package. IPv4 only.
func ListenBatchRead(addr string, cfg Config) (*Transport, error) {
	t, err := Listen(addr, cfg)
	if err != nil {
		return nil, err
	}
	// Replace the read loop: stop it by a closed-then-reopened socket
	// would be intrusive, so open a second transport on a fresh socket.
	t.Close()
	ua, _ := net.ResolveUDPAddr("udp4", t.addr)
	conn, err := net.ListenUDP("udp4", ua)
	if err != nil {
		return nil, err
	}
	if cfg.ReadBufferSize > 0 {
		conn.SetReadBuffer(cfg.ReadBufferSize)
	}
	if cfg.WriteBufferSize > 0 {
		conn.SetWriteBuffer(cfg.WriteBufferSize)
	}
	b := &Transport{conn: conn, addr: t.addr, max: t.max, log: t.log, dgrams: make(chan transport.Message, cap(t.dgrams))}
	b.wg.Add(1)
	go b.readLoopBatch(64)
	return b, nil
}

func (t *Transport) readLoopBatch(batch int) {
	defer t.wg.Done()
	pc := ipv4.NewPacketConn(t.conn)
	msgs := make([]ipv4.Message, batch)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{make([]byte, t.max+1)}
	}
	for {
		k, err := pc.ReadBatch(msgs, 0)
		if err != nil {
			if t.closed.Load() {
				return
			}
			continue
		}
		for _, m := range msgs[:k] {
			if m.N > t.max {
				t.dropped.Add(1)
				continue
			}
			ua := m.Addr.(*net.UDPAddr)
			ap := ua.AddrPort()
			msg := transport.Message{
				From: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String(),
				Data: append([]byte{}, m.Buffers[0][:m.N]...),
				Path: transport.PathDatagram,
			}
			if len(t.dgrams) == cap(t.dgrams) {
				t.dropped.Add(1)
				continue
			}
			t.recvd.Add(1)
			t.bytesIn.Add(uint64(m.N))
			t.dgrams <- msg
		}
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
