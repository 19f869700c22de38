package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
)

// Floor returns the "floor" driver: no protocol at all, the cheapest
// broadcast this machine can do. n UDP sockets on 127.0.0.1 form a fixed
// tree, node i's neighbours being its parent (i-1)/3 and its children
// 3i+1..3i+3 (degree at most 4). The origin sends the bare payload to each
// of its neighbours; a node delivers what it receives and forwards it to
// its neighbours except the one it came from. There is no loss recovery, no
// deduplication (a tree needs none) and no header: what it writes is the
// payload, datagram by datagram.
func Floor() Driver { return floorDriver{} }

type floorDriver struct{}

func (floorDriver) Name() string { return "floor" }

// maxUDPPayload is the largest UDP payload over IPv4.
const maxUDPPayload = 65507

// floorNeighbours returns node i's neighbours in a tree of n nodes.
func floorNeighbours(i, n int) []int {
	var nb []int
	if i > 0 {
		nb = append(nb, (i-1)/3)
	}
	for c := 3*i + 1; c <= 3*i+3 && c < n; c++ {
		nb = append(nb, c)
	}
	return nb
}

func (floorDriver) Start(ctx context.Context, cfg StartConfig, deliver func(node int, payload []byte)) (Cluster, error) {
	if cfg.Nodes < 1 {
		return nil, fmt.Errorf("floor: need at least 1 node")
	}
	if cfg.MaxPayload > maxUDPPayload {
		return nil, fmt.Errorf("floor: payload of %d bytes exceeds a UDP datagram (%d)", cfg.MaxPayload, maxUDPPayload)
	}
	c := &floorCluster{byPort: map[int]int{}}
	for i := range cfg.Nodes {
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("floor: node %d: %w", i, err)
		}
		// Room for bursts while a reader is descheduled; the kernel caps
		// it at net.core.rmem_max.
		_ = conn.SetReadBuffer(4 << 20)
		c.conns = append(c.conns, conn)
		addr := conn.LocalAddr().(*net.UDPAddr)
		c.addrs = append(c.addrs, addr)
		c.byPort[addr.Port] = i
	}
	for i := range cfg.Nodes {
		c.neighbours = append(c.neighbours, floorNeighbours(i, cfg.Nodes))
	}
	for i := range cfg.Nodes {
		c.wg.Add(1)
		go c.read(i, max(cfg.MaxPayload, 1), deliver)
	}
	return c, nil
}

type floorCluster struct {
	conns      []*net.UDPConn
	addrs      []*net.UDPAddr
	byPort     map[int]int // read-only after Start
	neighbours [][]int
	wg         sync.WaitGroup
	bytes      atomic.Uint64
	packets    atomic.Uint64
	closeOnce  sync.Once
}

// read is node i's loop: deliver, then forward along the tree.
func (c *floorCluster) read(i, maxPayload int, deliver func(int, []byte)) {
	defer c.wg.Done()
	// One byte more than the largest payload, to see a datagram too long.
	buf := make([]byte, maxPayload+1)
	for {
		n, from, err := c.conns[i].ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		sender, ok := c.byPort[int(from.Port())]
		if !ok || n > maxPayload || !from.Addr().Is4() {
			continue // not from the tree, or too long: ignored
		}
		p := buf[:n]
		deliver(i, p)
		for _, nb := range c.neighbours[i] {
			if nb != sender {
				c.send(i, nb, p)
			}
		}
	}
}

// send counts the datagram before it writes it: the receiver can deliver
// it, and the harness read the counters after the last delivery, before
// WriteToUDP returned here (TestDriversDeliverEverything/floor saw 159
// packets for 160 deliveries).
func (c *floorCluster) send(from, to int, p []byte) error {
	c.bytes.Add(uint64(len(p)))
	c.packets.Add(1)
	if _, err := c.conns[from].WriteToUDP(p, c.addrs[to]); err != nil {
		c.bytes.Add(^uint64(len(p) - 1))
		c.packets.Add(^uint64(0))
		return err
	}
	return nil
}

// Publish sends payload from node from to each of its tree neighbours.
func (c *floorCluster) Publish(ctx context.Context, from int, payload []byte) error {
	if from < 0 || from >= len(c.conns) {
		return fmt.Errorf("floor: no node %d", from)
	}
	for _, nb := range c.neighbours[from] {
		if err := c.send(from, nb, payload); err != nil {
			return fmt.Errorf("floor: node %d to %d: %w", from, nb, err)
		}
	}
	return nil
}

// Wire counts the payload bytes and datagrams written.
func (c *floorCluster) Wire() Wire {
	return Wire{Bytes: c.bytes.Load(), Packets: c.packets.Load()}
}

// Close closes the sockets and waits for the readers.
func (c *floorCluster) Close() error {
	c.closeOnce.Do(func() {
		for _, conn := range c.conns {
			conn.Close()
		}
		c.wg.Wait()
	})
	return nil
}
