package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/plumtree-go/plumtree/internal/bench"
)

// memberlistDriver broadcasts through hashicorp/memberlist's gossip: each
// node's Delegate hands memberlist the broadcasts of a
// memberlist.TransmitLimitedQueue, which memberlist piggybacks on its
// gossip packets (GossipNodes random nodes every GossipInterval) and
// probes, each broadcast sent RetransmitMult*ceil(log10(n+1)) times. A
// node that receives a payload for the first time delivers it and queues
// it once for its own retransmission, as serf does with user events, so
// the payload spreads epidemically. This is the broadcast path of serf and
// Consul.
//
// Each node runs memberlist.DefaultLANConfig() with only what loopback
// needs changed: bind and advertise 127.0.0.1 on a port the system picks,
// a unique node name, and logs discarded. Timing, retransmission,
// compression and the 1400-byte UDPBufferSize stay LAN defaults.
//
// Broadcasts travel only inside gossip and probe datagrams, which are
// limited to UDPBufferSize (1400): a broadcast larger than what is left of
// a datagram is never sent and stays queued. At most
// memberlistMaxPayload(UDPBufferSize) = 1395 bytes fit, in a gossip
// datagram that carries nothing else; a 1 KiB payload fits one per
// datagram. Start refuses a MaxPayload above that bound with an error
// saying so, rather than start a cluster that would deliver nothing (the
// harness's warm-up would only time out).
//
// Payloads are told apart by their first 8 bytes, which the benchmark's
// workload makes unique (its sequence number); a payload shorter than 8
// bytes is its own key.
//
// Wire counts what every node writes to its sockets: each datagram (bytes,
// one packet) and, on the TCP streams memberlist opens for joins,
// push-pull state sync and fallback probes, bytes and write calls. It
// wraps memberlist's NetTransport.
//
// Delivery is probabilistic, as in serf: a payload that every informed
// node has sent its RetransmitMult*ceil(log10(n+1)) times without reaching
// some node never reaches it, and nothing repairs that later.
type memberlistDriver struct {
	// retransmitMult overrides the LAN default RetransmitMult (4) if not
	// 0. Only tests set it, to make a miss too unlikely to see.
	retransmitMult int
}

var _ bench.Driver = memberlistDriver{}

// Name returns "memberlist".
func (memberlistDriver) Name() string { return "memberlist" }

// Start starts n memberlist nodes, joins nodes 1..n-1 to node 0 and
// returns once every node sees all n alive.
func (d memberlistDriver) Start(ctx context.Context, cfg bench.StartConfig, deliver func(node int, payload []byte)) (bench.Cluster, error) {
	if cfg.Nodes < 1 {
		return nil, fmt.Errorf("memberlist: %d nodes", cfg.Nodes)
	}
	udp := memberlist.DefaultLANConfig().UDPBufferSize
	if limit := memberlistMaxPayload(udp); cfg.MaxPayload > limit {
		return nil, fmt.Errorf("memberlist: %d-byte payloads would never be sent: a broadcast travels only inside one gossip datagram of UDPBufferSize %d bytes, which carries at most %d bytes of payload: %w", cfg.MaxPayload, udp, limit, bench.ErrUnsupported)
	}
	c := &memberlistCluster{}
	ok := false
	defer func() {
		if !ok {
			_ = c.Close()
		}
	}()
	for i := range cfg.Nodes {
		nd, err := newMemberlistNode(i, d.retransmitMult, deliver)
		if err != nil {
			return nil, fmt.Errorf("memberlist: node %d: %w", i, err)
		}
		c.nodes = append(c.nodes, nd)
	}
	if len(c.nodes) > 1 {
		seed := c.nodes[0].list.LocalNode().Address()
		for i, nd := range c.nodes[1:] {
			if _, err := nd.list.Join([]string{seed}); err != nil {
				return nil, fmt.Errorf("memberlist: join node %d to %s: %w", i+1, seed, err)
			}
		}
	}
	err := poll(ctx, func() bool {
		for _, nd := range c.nodes {
			if nd.list.NumMembers() < cfg.Nodes {
				return false
			}
		}
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("memberlist: membership not converged: %w", err)
	}
	ok = true
	return c, nil
}

// memberlistMaxPayload is the largest broadcast memberlist can send with
// datagrams of udpBufferSize bytes, without encryption or label: its gossip
// takes a compound header (2 bytes) off the datagram, and the
// TransmitLimitedQueue must fit the broadcast with its compound entry
// overhead (2) and user-message type byte (1) into the rest
// (memberlist's gossip and getBroadcasts).
func memberlistMaxPayload(udpBufferSize int) int { return udpBufferSize - 2 - 2 - 1 }

// memberlistCluster is a running memberlist cluster.
type memberlistCluster struct {
	nodes     []*memberlistNode
	closeOnce sync.Once
	closeErr  error
}

// memberlistNode is one memberlist with its delegate and queue.
type memberlistNode struct {
	index   int
	list    *memberlist.Memberlist
	queue   *memberlist.TransmitLimitedQueue
	packets *wireCounter // datagrams
	stream  *wireCounter // TCP stream writes
	deliver func(int, []byte)

	// mu guards seen, and closed against deliveries: Close takes it for
	// writing, so that no delivery runs after Close returns.
	mu     sync.RWMutex
	closed bool
	seenMu sync.Mutex
	seen   map[string]struct{}
}

func newMemberlistNode(i, retransmitMult int, deliver func(int, []byte)) (*memberlistNode, error) {
	nd := &memberlistNode{
		index:   i,
		packets: &wireCounter{},
		stream:  &wireCounter{},
		deliver: deliver,
		seen:    make(map[string]struct{}),
	}
	conf := memberlist.DefaultLANConfig()
	conf.Name = "node-" + strconv.Itoa(i)
	conf.BindAddr = "127.0.0.1"
	conf.BindPort = 0
	conf.AdvertisePort = 0
	conf.LogOutput = io.Discard
	conf.Delegate = (*memberlistDelegate)(nd)
	if retransmitMult != 0 {
		conf.RetransmitMult = retransmitMult
	}
	inner, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{conf.BindAddr},
		BindPort:  conf.BindPort,
		Logger:    log.New(io.Discard, "", 0),
	})
	if err != nil {
		return nil, err
	}
	conf.Transport = newCountingTransport(inner, nd.packets, nd.stream)
	// NumNodes is called from memberlist's gossip goroutine, which Create
	// starts: the list is read through an atomic pointer.
	var list atomic.Pointer[memberlist.Memberlist]
	nd.queue = &memberlist.TransmitLimitedQueue{
		NumNodes: func() int {
			if l := list.Load(); l != nil {
				return l.NumMembers()
			}
			return 1
		},
		RetransmitMult: conf.RetransmitMult,
	}
	l, err := memberlist.Create(conf)
	if err != nil {
		_ = conf.Transport.Shutdown()
		return nil, err
	}
	list.Store(l)
	nd.list = l
	return nd, nil
}

// firstSeen records key and reports whether it was new.
func (nd *memberlistNode) firstSeen(payload []byte) bool {
	key := string(payload[:min(len(payload), 8)])
	nd.seenMu.Lock()
	defer nd.seenMu.Unlock()
	if _, ok := nd.seen[key]; ok {
		return false
	}
	nd.seen[key] = struct{}{}
	return true
}

// memberlistDelegate is a node's memberlist.Delegate.
type memberlistDelegate memberlistNode

var _ memberlist.Delegate = (*memberlistDelegate)(nil)

// NodeMeta returns no metadata.
func (d *memberlistDelegate) NodeMeta(limit int) []byte { return nil }

// NotifyMsg delivers a payload received for the first time and queues it
// once for retransmission from this node.
func (d *memberlistDelegate) NotifyMsg(b []byte) {
	nd := (*memberlistNode)(d)
	if !nd.firstSeen(b) {
		return
	}
	// memberlist may reuse b after NotifyMsg returns.
	payload := append([]byte(nil), b...)
	nd.mu.RLock()
	defer nd.mu.RUnlock()
	if nd.closed {
		return
	}
	nd.deliver(nd.index, payload)
	nd.queue.QueueBroadcast(memberlistBroadcast(payload))
}

// GetBroadcasts draws from the node's queue.
func (d *memberlistDelegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.queue.GetBroadcasts(overhead, limit)
}

// LocalState has nothing to sync.
func (d *memberlistDelegate) LocalState(join bool) []byte { return nil }

// MergeRemoteState has nothing to merge.
func (d *memberlistDelegate) MergeRemoteState(buf []byte, join bool) {}

// memberlistBroadcast is a queued payload. Like serf's user events it
// invalidates no other broadcast.
type memberlistBroadcast []byte

// Invalidates returns false.
func (b memberlistBroadcast) Invalidates(memberlist.Broadcast) bool { return false }

// Message returns the payload.
func (b memberlistBroadcast) Message() []byte { return b }

// Finished does nothing.
func (b memberlistBroadcast) Finished() {}

// Publish queues a copy of payload for broadcast at node from.
func (c *memberlistCluster) Publish(ctx context.Context, from int, payload []byte) error {
	if from < 0 || from >= len(c.nodes) {
		return fmt.Errorf("memberlist: publish from node %d of %d", from, len(c.nodes))
	}
	nd := c.nodes[from]
	if err := ctx.Err(); err != nil {
		return err
	}
	nd.mu.RLock()
	defer nd.mu.RUnlock()
	if nd.closed {
		return errors.New("memberlist: publish on a closed cluster")
	}
	data := append([]byte(nil), payload...)
	nd.firstSeen(data)
	nd.queue.QueueBroadcast(memberlistBroadcast(data))
	return nil
}

// Wire returns what every node has written to its sockets.
func (c *memberlistCluster) Wire() bench.Wire {
	counters := make([]*wireCounter, 0, 2*len(c.nodes))
	for _, nd := range c.nodes {
		counters = append(counters, nd.packets, nd.stream)
	}
	return sumWire(counters)
}

// Close stops delivering and shuts every node down.
func (c *memberlistCluster) Close() error {
	c.closeOnce.Do(func() {
		for _, nd := range c.nodes {
			nd.mu.Lock()
			nd.closed = true
			nd.mu.Unlock()
		}
		var errs []error
		for i, nd := range c.nodes {
			if err := nd.list.Shutdown(); err != nil {
				errs = append(errs, fmt.Errorf("memberlist: shut down node %d: %w", i, err))
			}
		}
		c.closeErr = errors.Join(errs...)
	})
	return c.closeErr
}

// countingTransport is memberlist's NetTransport with its writes counted:
// datagrams as they are sent, streams through a countingConn on both the
// dial and the accept side.
type countingTransport struct {
	inner   *memberlist.NetTransport
	packets *wireCounter // datagrams
	stream  *wireCounter // stream writes
	streams chan net.Conn
	// stopping ends forwarding: accepted streams are closed from then on.
	// done ends the accept loop, once the inner transport is shut down.
	stopping, done chan struct{}
	wg             sync.WaitGroup
	once           sync.Once
}

var _ memberlist.NodeAwareTransport = (*countingTransport)(nil)

func newCountingTransport(inner *memberlist.NetTransport, packets, stream *wireCounter) *countingTransport {
	t := &countingTransport{
		inner:    inner,
		packets:  packets,
		stream:   stream,
		streams:  make(chan net.Conn),
		stopping: make(chan struct{}),
		done:     make(chan struct{}),
	}
	t.wg.Add(1)
	go t.accept()
	return t
}

// accept wraps the inner transport's accepted streams and hands them to
// memberlist until Shutdown. It keeps receiving until the inner transport
// is shut down: NetTransport's listener blocks handing over a connection,
// and its Shutdown waits for the listener.
func (t *countingTransport) accept() {
	defer t.wg.Done()
	for {
		select {
		case conn := <-t.inner.StreamCh():
			select {
			case <-t.stopping:
				_ = conn.Close()
				continue
			default:
			}
			select {
			case t.streams <- &countingConn{Conn: conn, counter: t.stream}:
			case <-t.stopping:
				_ = conn.Close()
			}
		case <-t.done:
			return
		}
	}
}

// FinalAdvertiseAddr is the inner transport's.
func (t *countingTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	return t.inner.FinalAdvertiseAddr(ip, port)
}

// WriteTo sends a datagram and counts it.
func (t *countingTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	at, err := t.inner.WriteTo(b, addr)
	if err == nil {
		t.packets.add(len(b))
	}
	return at, err
}

// WriteToAddress sends a datagram and counts it.
func (t *countingTransport) WriteToAddress(b []byte, addr memberlist.Address) (time.Time, error) {
	at, err := t.inner.WriteToAddress(b, addr)
	if err == nil {
		t.packets.add(len(b))
	}
	return at, err
}

// PacketCh is the inner transport's.
func (t *countingTransport) PacketCh() <-chan *memberlist.Packet { return t.inner.PacketCh() }

// DialTimeout dials a stream whose writes are counted.
func (t *countingTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	conn, err := t.inner.DialTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: conn, counter: t.stream}, nil
}

// DialAddressTimeout dials a stream whose writes are counted.
func (t *countingTransport) DialAddressTimeout(addr memberlist.Address, timeout time.Duration) (net.Conn, error) {
	conn, err := t.inner.DialAddressTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: conn, counter: t.stream}, nil
}

// StreamCh delivers accepted streams whose writes are counted.
func (t *countingTransport) StreamCh() <-chan net.Conn { return t.streams }

// Shutdown stops the inner transport and the accept loop.
func (t *countingTransport) Shutdown() error {
	var err error
	t.once.Do(func() {
		close(t.stopping)
		err = t.inner.Shutdown()
		close(t.done)
		t.wg.Wait()
	})
	return err
}
