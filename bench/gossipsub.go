package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/transport"
	"github.com/libp2p/go-libp2p/gologshim"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"google.golang.org/protobuf/proto"

	"github.com/plumtree-go/plumtree/internal/bench"
)

func init() {
	// go-libp2p logs through gologshim, which writes to stderr unless given
	// a handler before its first log; the benchmark's output is its report.
	gossipsubQuiet()
}

// gossipsubQuiet silences go-libp2p's and pubsub's logs.
func gossipsubQuiet() {
	gologshim.SetDefaultHandler(slog.DiscardHandler)
}

// gossipsubTopic is the one topic every node joins.
const gossipsubTopic = "plumtree-bench"

// gossipsubDriver runs GossipSub (github.com/libp2p/go-libp2p-pubsub) with
// its default parameters over go-libp2p hosts on loopback TCP, with
// go-libp2p's default security (TLS 1.3 is negotiated first, Noise is the
// fallback) and default muxer (yamux), and no other transport: no QUIC,
// WebSocket, WebTransport or WebRTC listener, no relay, no NAT port mapping,
// no Prometheus metrics.
//
// Topology: every host dials every other (host i dials hosts 0..i-1), so
// each of the n-1 peers is connected and known to be in the topic, and
// GossipSub picks its mesh of D=6 (and gossip targets) from all of them.
// That is what a small cluster with a full membership list looks like,
// and it is the knowledge the other systems get (the plumtree drivers'
// membership over memberlist, memberlist's own full view). A few
// bootstraps plus discovery (a DHT or mDNS, outside go-libp2p-pubsub)
// would end at the same connected graph at n=20, later and with the
// discovery's traffic added.
//
// Wire counts everything every host writes to its TCP sockets, below TLS
// and yamux: GossipSub's RPCs (messages, IHAVE/IWANT gossip, GRAFT/PRUNE,
// heartbeats) and libp2p's own streams (identify, ping), in bytes, and
// write calls as packets (each write leaves as its own segment or
// segments, with TCP_NODELAY). It wraps the TCP transport's connections on
// both the dial and the accept side. go-libp2p's BandwidthCounter counts
// stream payload above yamux and TLS, without their framing, so it is not
// used.
type gossipsubDriver struct{}

var _ bench.Driver = gossipsubDriver{}

// Name returns "gossipsub".
func (gossipsubDriver) Name() string { return "gossipsub" }

// Start starts n hosts with one GossipSub router each, connects every host
// to every other and returns once every node's mesh for the topic is
// formed and a warm-up message from every node has reached every other.
func (gossipsubDriver) Start(ctx context.Context, cfg bench.StartConfig, deliver func(node int, payload []byte)) (bench.Cluster, error) {
	if cfg.Nodes < 1 {
		return nil, fmt.Errorf("gossipsub: %d nodes", cfg.Nodes)
	}
	psCtx, cancel := context.WithCancel(context.Background())
	c := &gossipsubCluster{cancel: cancel}
	ok := false
	defer func() {
		if !ok {
			_ = c.Close()
		}
	}()
	keys := rand.New(rand.NewSource(cfg.Seed))
	for i := range cfg.Nodes {
		nd, err := newGossipsubNode(psCtx, keys)
		if err != nil {
			return nil, fmt.Errorf("gossipsub: node %d: %w", i, err)
		}
		c.nodes = append(c.nodes, nd)
	}
	for i, nd := range c.nodes {
		c.wg.Add(1)
		go c.receive(psCtx, i, nd, deliver)
	}
	if err := c.connect(ctx); err != nil {
		return nil, err
	}
	if err := c.converge(ctx); err != nil {
		return nil, err
	}
	c.ready.Store(true)
	ok = true
	return c, nil
}

// gossipsubCluster is a running GossipSub cluster.
type gossipsubCluster struct {
	nodes  []*gossipsubNode
	cancel context.CancelFunc // stops every router and delivery loop
	wg     sync.WaitGroup     // delivery loops
	// ready is set once the warm-up is over: messages received before are
	// the driver's own and are not handed to deliver.
	ready     atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// gossipsubNode is one host with its router, topic and subscription.
type gossipsubNode struct {
	host   host.Host
	ps     *pubsub.PubSub
	topic  *pubsub.Topic
	sub    *pubsub.Subscription
	wire   *wireCounter
	tracer *meshTracer
	warm   atomic.Int64 // warm-up messages received from other nodes
}

func newGossipsubNode(psCtx context.Context, keys *rand.Rand) (*gossipsubNode, error) {
	priv, _, err := crypto.GenerateEd25519Key(keys)
	if err != nil {
		return nil, err
	}
	nd := &gossipsubNode{wire: &wireCounter{}, tracer: newMeshTracer()}
	h, err := libp2p.New(
		libp2p.Identity(priv),
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.Transport(countingTCPConstructor(nd.wire)),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
	)
	if err != nil {
		return nil, err
	}
	nd.host = h
	fail := func(err error) (*gossipsubNode, error) {
		_ = h.Close()
		return nil, err
	}
	quiet := slog.New(slog.DiscardHandler)
	nd.ps, err = pubsub.NewGossipSub(psCtx, h,
		pubsub.WithRawTracer(nd.tracer),
		pubsub.WithLogger(quiet),
		pubsub.WithRPCLogger(quiet),
	)
	if err != nil {
		return fail(err)
	}
	if nd.topic, err = nd.ps.Join(gossipsubTopic); err != nil {
		return fail(err)
	}
	if nd.sub, err = nd.topic.Subscribe(); err != nil {
		return fail(err)
	}
	return nd, nil
}

// receive hands node i's messages from other nodes to deliver, once the
// warm-up is over, until the routers stop.
func (c *gossipsubCluster) receive(psCtx context.Context, i int, nd *gossipsubNode, deliver func(int, []byte)) {
	defer c.wg.Done()
	self := nd.host.ID()
	for {
		m, err := nd.sub.Next(psCtx)
		if err != nil {
			return
		}
		if m.Local || m.ReceivedFrom == self {
			continue // the node's own publication
		}
		if !c.ready.Load() {
			nd.warm.Add(1)
			continue
		}
		deliver(i, m.Data)
	}
}

// connect has every host dial every host before it.
func (c *gossipsubCluster) connect(ctx context.Context) error {
	errs := make([]error, len(c.nodes))
	var wg sync.WaitGroup
	for i, nd := range c.nodes {
		wg.Go(func() {
			for j := range i {
				to := c.nodes[j].host
				info := peer.AddrInfo{ID: to.ID(), Addrs: to.Addrs()}
				if err := nd.host.Connect(ctx, info); err != nil {
					errs[i] = fmt.Errorf("gossipsub: connect node %d to node %d: %w", i, j, err)
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// converge waits until every node knows every other to be in the topic
// and has a mesh of at least min(n-1, Dlo) peers (GossipSub grafts up to D
// below Dlo at each heartbeat, and prunes down to D above Dhi, which can
// leave a node between Dlo and D), then has every node publish a warm-up
// message and waits until each has reached every other node.
func (c *gossipsubCluster) converge(ctx context.Context) error {
	n := len(c.nodes)
	want := min(n-1, pubsub.DefaultGossipSubParams().Dlo)
	err := poll(ctx, func() bool {
		for _, nd := range c.nodes {
			if len(nd.ps.ListPeers(gossipsubTopic)) < n-1 || nd.tracer.meshSize() < want {
				return false
			}
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("gossipsub: mesh not formed: %w", err)
	}
	for i, nd := range c.nodes {
		if err := nd.topic.Publish(ctx, fmt.Appendf(nil, "warm-up %d", i)); err != nil {
			return fmt.Errorf("gossipsub: warm-up from node %d: %w", i, err)
		}
	}
	// Wait for the warm-up messages, but not forever: at 50 nodes on two
	// cores some had not arrived minutes later (cause not established), and
	// the harness's own warm-up, which follows, reports what is lost rather
	// than failing the system.
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	err = poll(wctx, func() bool {
		for _, nd := range c.nodes {
			if nd.warm.Load() < int64(n-1) {
				return false
			}
		}
		return true
	})
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("gossipsub: warm-up not delivered everywhere: %w", ctx.Err())
	}
	return nil
}

// Publish publishes a copy of payload on node from's topic.
func (c *gossipsubCluster) Publish(ctx context.Context, from int, payload []byte) error {
	if from < 0 || from >= len(c.nodes) {
		return fmt.Errorf("gossipsub: publish from node %d of %d", from, len(c.nodes))
	}
	// Topic.Publish keeps data in the message it queues for sending.
	data := append([]byte(nil), payload...)
	if err := c.nodes[from].topic.Publish(ctx, data); err != nil {
		return fmt.Errorf("gossipsub: publish from node %d: %w", from, err)
	}
	return nil
}

// Wire returns what every host has written to its TCP sockets.
func (c *gossipsubCluster) Wire() bench.Wire {
	counters := make([]*wireCounter, len(c.nodes))
	for i, nd := range c.nodes {
		counters[i] = nd.wire
	}
	return sumWire(counters)
}

// Close stops the routers and delivery loops and closes every host.
func (c *gossipsubCluster) Close() error {
	c.closeOnce.Do(func() {
		for _, nd := range c.nodes {
			if nd.sub != nil {
				nd.sub.Cancel()
			}
		}
		c.cancel()
		c.wg.Wait()
		var errs []error
		for i, nd := range c.nodes {
			if err := nd.host.Close(); err != nil {
				errs = append(errs, fmt.Errorf("gossipsub: close node %d: %w", i, err))
			}
		}
		c.closeErr = errors.Join(errs...)
	})
	return c.closeErr
}

// poll calls done every 20 ms until it returns true or ctx ends.
func poll(ctx context.Context, done func() bool) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !done() {
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// meshTracer is a pubsub.RawTracer that keeps the node's mesh for the
// topic (grafts minus prunes) and counts what the router sent and dropped.
type meshTracer struct {
	mu   sync.Mutex
	mesh map[peer.ID]struct{}

	rpcBytes      atomic.Uint64 // sizes of the RPCs handed to streams
	dropped       atomic.Uint64 // RPCs dropped, their peer's queue full
	undeliverable atomic.Uint64 // messages dropped, the subscriber too slow
}

var _ pubsub.RawTracer = (*meshTracer)(nil)

func newMeshTracer() *meshTracer {
	return &meshTracer{mesh: make(map[peer.ID]struct{})}
}

func (t *meshTracer) meshSize() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.mesh)
}

// Graft records that p joined the mesh.
func (t *meshTracer) Graft(p peer.ID, topic string) {
	t.mu.Lock()
	t.mesh[p] = struct{}{}
	t.mu.Unlock()
}

// Prune records that p left the mesh.
func (t *meshTracer) Prune(p peer.ID, topic string) {
	t.mu.Lock()
	delete(t.mesh, p)
	t.mu.Unlock()
}

// SendRPCCompleted counts the RPC's size.
func (t *meshTracer) SendRPCCompleted(rpc *pubsub.RPC, p peer.ID, writeDuration time.Duration) {
	t.rpcBytes.Add(uint64(proto.Size(&rpc.RPC)))
}

// DropRPC counts an RPC dropped for a full queue.
func (t *meshTracer) DropRPC(rpc *pubsub.RPC, p peer.ID) { t.dropped.Add(1) }

// UndeliverableMessage counts a message the subscription dropped.
func (t *meshTracer) UndeliverableMessage(msg *pubsub.Message) { t.undeliverable.Add(1) }

// OnNewOutboundStream is not needed.
func (t *meshTracer) OnNewOutboundStream(p peer.ID, id protocol.ID) {}

// OnClosedOutboundStream is not needed.
func (t *meshTracer) OnClosedOutboundStream(p peer.ID) {}

// Join is not needed.
func (t *meshTracer) Join(topic string) {}

// Leave is not needed.
func (t *meshTracer) Leave(topic string) {}

// ValidateMessage is not needed.
func (t *meshTracer) ValidateMessage(msg *pubsub.Message) {}

// DeliverMessage is not needed.
func (t *meshTracer) DeliverMessage(msg *pubsub.Message) {}

// RejectMessage is not needed.
func (t *meshTracer) RejectMessage(msg *pubsub.Message, reason string) {}

// DuplicateMessage is not needed.
func (t *meshTracer) DuplicateMessage(msg *pubsub.Message) {}

// ThrottlePeer is not needed.
func (t *meshTracer) ThrottlePeer(p peer.ID) {}

// RecvRPC is not needed.
func (t *meshTracer) RecvRPC(rpc *pubsub.RPC) {}

// SendRPC is not needed.
func (t *meshTracer) SendRPC(rpc *pubsub.RPC, p peer.ID) {}

// countingTCPConstructor returns a go-libp2p transport constructor for
// TCP whose connections count their writes into counter, on both the dial
// and the listen side.
func countingTCPConstructor(counter *wireCounter) func(transport.Upgrader, network.ResourceManager) (*countingTCP, error) {
	return func(up transport.Upgrader, rcmgr network.ResourceManager) (*countingTCP, error) {
		dialer := &countingDialer{counter: counter}
		inner, err := tcp.NewTCPTransport(up, rcmgr, nil,
			// The transport's own dial goes through dialer; its own
			// listener (with SO_REUSEPORT, used to dial from the listening
			// port for NAT traversal) is replaced by Listen below, so port
			// reuse is off for dialing too.
			tcp.WithDialerForAddr(func(ma.Multiaddr) (tcp.ContextDialer, error) { return dialer, nil }),
			tcp.DisableReuseport(),
		)
		if err != nil {
			return nil, err
		}
		return &countingTCP{TcpTransport: inner, up: up, counter: counter}, nil
	}
}

// countingTCP is go-libp2p's TCP transport with counted connections.
type countingTCP struct {
	*tcp.TcpTransport
	up      transport.Upgrader
	counter *wireCounter
}

// Listen listens on laddr and upgrades the accepted connections, counted,
// as the TCP transport does.
func (t *countingTCP) Listen(laddr ma.Multiaddr) (transport.Listener, error) {
	ml, err := manet.Listen(laddr)
	if err != nil {
		return nil, err
	}
	return t.up.UpgradeGatedMaListener(t, t.up.GateMaListener(&countingListener{Listener: ml, counter: t.counter})), nil
}

// countingDialer dials TCP connections whose writes are counted.
type countingDialer struct {
	d       net.Dialer
	counter *wireCounter
}

// DialContext dials address and wraps the connection.
func (d *countingDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	conn, err := d.d.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: conn, counter: d.counter}, nil
}

// countingListener wraps each accepted connection.
type countingListener struct {
	manet.Listener
	counter *wireCounter
}

// Accept accepts a connection and wraps it.
func (l *countingListener) Accept() (manet.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		mc, err := manet.WrapNetConn(&countingConn{Conn: conn, counter: l.counter})
		if err != nil {
			// An address without a multiaddr form: refuse this connection,
			// keep listening.
			_ = conn.Close()
			continue
		}
		return mc, nil
	}
}
