// Package stack builds a running node from one Config: the broadcast
// transport chosen by name, a hashicorp/memberlist membership, and the
// gossip node over them, closed together by one Close.
//
//	s, err := stack.New(stack.Config{Listen: "10.0.0.5:7000", Join: []string{"10.0.0.4:7001"},
//		OnDeliver: func(d gossip.Delivery[string, []byte]) { fmt.Println(d.Origin, string(d.Value)) }})
//	if err != nil { ... }
//	defer s.Close()
//	_, err = s.Node.Broadcast(ctx, []byte("hello"))
//
// The node's ID is its memberlist name (Config.Name, by default the
// broadcast address): it is given once. Choosing adapters by name (the
// transport, the preset, the compressor) happens here, above the core, as
// the design's layering rule wants; gossip knows none of them. Building a
// stack by hand stays possible: examples/stack does it with the same parts.
//
// # Guardrails
//
// New refuses, with an error that says what to change, what would
// otherwise fail silently later:
//
//   - a wildcard listen address (":7000", "0.0.0.0:7000", "[::]:7000")
//     without Advertise: the others would be told an address they cannot
//     reach;
//   - a loopback advertised address while joining seeds that are not on
//     loopback: they could not reach this node;
//   - a node name that is already alive at another address in the
//     cluster (memberlist's conflict delegate reports it while joining);
//     the node shuts down without a goodbye, so the live node is not
//     dropped;
//   - seeds whose transport, secret or TLS CA differ from this node's: the
//     memberlist label carries the transport and a fingerprint of the
//     security setting (never a key), and memberlist's keyring checks the
//     secret, so the join fails; the error names the likely cause.
//
// The gossip core itself refuses an Options.ID that the membership does
// not list as this node (gossip.New).
//
// # Topics
//
// With Config.Topics the stack hosts any number of topics (package topic)
// instead of one node: Stack.Host is set, Stack.Node is nil, and Subscribe
// starts a topic with the stack's preset, compressors and authentication:
//
//	s, err := stack.New(stack.Config{Listen: "10.0.0.5:7000", Topics: true})
//	orders, err := stack.Subscribe(s, "orders", topic.Options[string, Order]{Codec: codec.JSON[Order]()})
//
// This package is above the core: the core, the ports and the adapters
// must never import it.
package stack

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	qgo "github.com/quic-go/quic-go"

	"github.com/plumtree-go/plumtree/codec"
	"github.com/plumtree-go/plumtree/compressor"
	"github.com/plumtree-go/plumtree/gossip"
	plummember "github.com/plumtree-go/plumtree/membership/memberlist"
	"github.com/plumtree-go/plumtree/topic"
	"github.com/plumtree-go/plumtree/transport"
	"github.com/plumtree-go/plumtree/transport/quic"
	"github.com/plumtree-go/plumtree/transport/seal"
	"github.com/plumtree-go/plumtree/transport/tcp"
	"github.com/plumtree-go/plumtree/transport/udp"
	"github.com/plumtree-go/plumtree/transport/udptcp"
)

// Transports are the transport names Config.Transport takes. An in-memory
// network (transport/mem) is not among them: memberlist needs real
// sockets; tests build mem with membership/static by hand.
var Transports = []string{"udp+tcp", "tcp", "quic"}

// Presets are the preset names Config.Preset takes.
var Presets = []string{"default", "lan", "wan", "large"}

// Config is everything New needs. The zero value of every field but
// Listen is usable.
type Config struct {
	// Name is the node's memberlist name and its gossip ID, unique in the
	// cluster. Default: the broadcast transport's address.
	Name string
	// Listen is the broadcast transport's address, "ip:port" (port 0 picks
	// one). A wildcard IP needs Advertise.
	Listen string
	// Advertise is the IP the others reach this node at. When set, the
	// broadcast transport binds it (its handshakes and seals name the bound
	// address) with Listen's port, and memberlist binds Listen's IP and
	// advertises this one.
	Advertise string
	// ClusterListen is memberlist's address. Default: Listen's IP, port+1
	// (port 0 when Listen's port is 0).
	ClusterListen string
	// Join lists memberlist addresses of nodes to join; empty for the
	// first node.
	Join []string
	// Transport names the broadcast transport: "udp+tcp" (default), "tcp"
	// or "quic" (which needs TLS).
	Transport string
	// Preset names the gossip preset: "default", "lan" (default), "wan",
	// "large". Ignored when Gossip is set.
	Preset string
	// Gossip, if set, is the gossip configuration, instead of Preset's.
	// Its Compression is resolved by name (Compressors); the node reads
	// every built-in compressor whatever it writes with.
	Gossip *gossip.Config
	// TLS is the mutual TLS configuration of quic (required) and tcp
	// (optional); udp+tcp has none. With TLS, a frame's sender ID must be
	// the name in its certificate (gossip.MatchIdentity).
	TLS *tls.Config
	// Secret is the cluster secret: keys of 16, 24 or 32 bytes, the first
	// used to send, all to receive. It keys memberlist (the raw keys) and
	// seals udp+tcp and tcp traffic with keys derived from them
	// (HKDF-SHA256), so that the two never share an AES key. quic relies
	// on its TLS.
	Secret [][]byte
	// Label separates clusters sharing a network: it prefixes memberlist's
	// label, to which New appends the transport and a fingerprint of the
	// security setting.
	Label string
	// PeersFile saves known peers, so that a restarted node rejoins
	// without Join (see membership/memberlist).
	PeersFile string
	// RejoinInterval is how often a failed node is joined again, so that
	// a healed partition merges (0: never).
	RejoinInterval time.Duration
	// QUICResetKey is quic's stateless reset key (nil: none).
	QUICResetKey *qgo.StatelessResetKey
	// Memberlist, if set, adjusts memberlist's configuration before it
	// starts (timeouts, say). New has set Name, addresses, keyring, label
	// and the conflict delegate; keep those.
	Memberlist func(*memberlist.Config)

	// Authenticate checks each frame's sender ID against the identity the
	// transport authenticated (gossip.Options.Authenticate). nil means
	// gossip.MatchIdentity with TLS (each certificate names its node) and
	// nothing without; a function that returns nil accepts any
	// certificate of the CA (nodes that share one certificate).
	Authenticate func(sender, identity string) error

	// OnDeliver receives the deliveries; nil leaves them on
	// Node.Deliveries. Not with Topics (each topic has its own).
	OnDeliver func(gossip.Delivery[string, []byte])
	// Topics hosts topics (package topic) over the transport and the
	// membership instead of one node: Stack.Host is set and Stack.Node is
	// nil; start topics with Subscribe. OnDeliver, Observer, Tracer and
	// Validate, which belong to one node, must then be nil: each topic
	// takes its own in topic.Options.
	Topics bool
	// Observer, Tracer, Validate and Seed are passed to gossip.Options.
	Observer gossip.Observer
	Tracer   gossip.Tracer
	Validate func(origin string, value []byte) error
	Seed     uint64
	// Logger receives what the node and memberlist log; nil: nothing.
	Logger *slog.Logger
}

// Stack is a running node: its transport, its membership and its gossip
// node.
type Stack struct {
	// Node is the gossip node; nil with Config.Topics.
	Node *gossip.Plumtree[string, []byte]
	// Host hosts the topics with Config.Topics; nil otherwise.
	Host       *topic.Host[string]
	Membership *plummember.Membership[string]
	Transport  transport.Transport
	// Gossip is the configuration the node runs with.
	Gossip gossip.Config

	name      string
	comp      compressor.Compressor
	comps     *compressor.Registry
	auth      func(sender, identity string) error
	conflicts *conflicts
	closeOnce sync.Once
	closeErr  error
}

// ConflictError is New's error when the node's name is already alive at
// another address in the cluster.
type ConflictError struct {
	Name     string
	Existing string // the memberlist address of the live node
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("stack: node name %q is already alive in the cluster at %s; give this node another name (or, to replace a crashed node, wait until the cluster declares it dead)", e.Name, e.Existing)
}

// New builds the transport, joins memberlist and starts the node. On error
// nothing is left running.
func New(cfg Config) (_ *Stack, err error) {
	if cfg.Transport == "" {
		cfg.Transport = "udp+tcp"
	}
	if cfg.Preset == "" {
		cfg.Preset = "lan"
	}
	if cfg.Topics && (cfg.OnDeliver != nil || cfg.Observer != nil || cfg.Tracer != nil || cfg.Validate != nil) {
		return nil, errors.New("stack: Config.Topics with OnDeliver, Observer, Tracer or Validate set: those are one node's; give each topic its own in topic.Options")
	}
	gcfg, err := gossipConfig(cfg)
	if err != nil {
		return nil, err
	}
	comp, comps, err := Compressors(gcfg.Compression)
	if err != nil {
		return nil, err
	}
	bind, mlBind, advertise, err := addresses(cfg)
	if err != nil {
		return nil, err
	}
	label, err := clusterLabel(cfg)
	if err != nil {
		return nil, err
	}
	s := &Stack{Gossip: gcfg}
	defer func() {
		if err != nil {
			s.stop(false)
		}
	}()
	if s.Transport, err = Listen(cfg.Transport, bind, cfg.TLS, cfg.QUICResetKey); err != nil {
		return nil, err
	}
	if s.Transport, err = Seal(cfg.Transport, s.Transport, cfg.Secret); err != nil {
		s.Transport = nil // Seal closed it
		return nil, err
	}
	s.name = cfg.Name
	if s.name == "" {
		s.name = s.Transport.LocalAddr()
	}
	s.conflicts = &conflicts{self: s.name, log: cfg.Logger}
	mlConf, err := memberlistConfig(cfg, mlBind, advertise, label)
	if err != nil {
		return nil, err
	}
	mlConf.Name = s.name
	mlConf.Conflict = s.conflicts
	if cfg.Memberlist != nil {
		cfg.Memberlist(mlConf)
	}
	s.Membership, err = plummember.New(plummember.Config[string]{
		Memberlist:     mlConf,
		Addr:           s.Transport.LocalAddr(),
		Join:           cfg.Join,
		PeersFile:      cfg.PeersFile,
		LeaveTimeout:   2 * time.Second,
		RejoinInterval: cfg.RejoinInterval,
		Logger:         cfg.Logger,
	})
	if err != nil {
		if len(cfg.Join) > 0 {
			return nil, fmt.Errorf("stack: %w (if the seeds are up, they may run another transport, secret or TLS CA: this node's memberlist label is %q, and a node with another label or key is refused)", err, label)
		}
		return nil, fmt.Errorf("stack: %w", err)
	}
	// memberlist merges the seeds' state inside Join: a live node of this
	// name has been reported by now.
	if c := s.conflicts.first(); c != nil {
		return nil, c
	}
	s.conflicts.started.Store(true)
	auth := cfg.Authenticate
	if auth == nil && cfg.TLS != nil {
		auth = gossip.MatchIdentity[string]
	}
	if cfg.Topics {
		s.comp, s.comps, s.auth = comp, comps, auth
		s.Host, err = topic.NewHost(topic.HostOptions[string]{ID: s.name, Transport: s.Transport,
			Membership: s.Membership, Logger: cfg.Logger, Seed: cfg.Seed})
		if err != nil {
			return nil, fmt.Errorf("stack: %w", err)
		}
		return s, nil
	}
	s.Node, err = gossip.New(gcfg, gossip.Options[string, []byte]{
		ID: s.name, Transport: s.Transport, Membership: s.Membership, Codec: codec.Bytes(),
		Compressor: comp, Compressors: comps,
		Authenticate: auth, OnDeliver: cfg.OnDeliver, Observer: cfg.Observer, Tracer: cfg.Tracer,
		Validate: cfg.Validate, Seed: cfg.Seed, Logger: cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("stack: %w", err)
	}
	return s, nil
}

// Subscribe starts topic name on a stack made with Config.Topics, with the
// stack's gossip configuration (Stack.Gossip: the preset, with
// Config.Gossip's changes), its compressors and its authentication unless
// o sets its own. Close on the topic unsubscribes; Stack.Close closes
// every topic.
func Subscribe[M any](s *Stack, name string, o topic.Options[string, M]) (*topic.Topic[string, M], error) {
	if s.Host == nil {
		return nil, errors.New("stack: Subscribe needs a stack made with Config.Topics")
	}
	if o.Compressor == nil && o.Compressors == nil {
		o.Compressor, o.Compressors = s.comp, s.comps
	}
	if o.Authenticate == nil {
		o.Authenticate = s.auth
	}
	return topic.Subscribe(s.Host, name, s.Gossip, o)
}

// ID is the node's ID: its memberlist name.
func (s *Stack) ID() string { return s.name }

// ClusterAddr is memberlist's address: what other nodes Join.
func (s *Stack) ClusterAddr() string { return s.Membership.Memberlist().LocalNode().Address() }

// Close stops the node, leaves the cluster (telling the others) and closes
// the transport. It is idempotent.
func (s *Stack) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.stop(true) })
	return s.closeErr
}

// Shutdown stops like a crash would, without telling the others (when a
// whole cluster stops at once, there is nobody to tell). It is idempotent,
// and Close after it does nothing.
func (s *Stack) Shutdown() error {
	s.closeOnce.Do(func() { s.closeErr = s.stop(false) })
	return s.closeErr
}

// stop closes what New started, the node or the topics first; leave says
// whether the membership tells the others (Close) or not (Shutdown, and
// New's own clean-up).
func (s *Stack) stop(leave bool) error {
	var errs []error
	if s.Node != nil {
		errs = append(errs, s.Node.Close())
	}
	if s.Host != nil {
		errs = append(errs, s.Host.Close())
	}
	if s.Membership != nil {
		if leave {
			errs = append(errs, s.Membership.Close())
		} else {
			errs = append(errs, s.Membership.Shutdown())
		}
	}
	if s.Transport != nil {
		errs = append(errs, s.Transport.Close())
	}
	return errors.Join(errs...)
}

// conflicts is memberlist's ConflictDelegate: it keeps the first report of
// another live node named as this one.
type conflicts struct {
	self    string
	log     *slog.Logger
	started atomic.Bool // New has returned: a conflict is the newcomer's to refuse
	mu      sync.Mutex
	err     *ConflictError
}

func (c *conflicts) NotifyConflict(existing, other *memberlist.Node) {
	if existing.Name != c.self {
		return // a conflict between two other nodes
	}
	if c.started.Load() {
		if c.log != nil {
			c.log.Warn("stack: another node tried to join with this node's name", "name", c.self, "addr", other.Address())
		}
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = &ConflictError{Name: c.self, Existing: other.Address()}
	}
}

func (c *conflicts) first() *ConflictError {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Preset returns the named gossip preset.
func Preset(name string) (gossip.Config, error) {
	switch name {
	case "default":
		return gossip.DefaultConfig(), nil
	case "lan":
		return gossip.LANConfig(), nil
	case "wan":
		return gossip.WANConfig(), nil
	case "large":
		return gossip.LargeClusterConfig(), nil
	}
	return gossip.Config{}, fmt.Errorf("unknown preset %q (want %s)", name, strings.Join(Presets, ", "))
}

// WithCompressor sets the compression of cfg by name: "preset" keeps the
// preset's, "none" turns it off, "zstd" and "lz4" turn it on for payloads
// of 256 bytes and more.
func WithCompressor(cfg gossip.Config, name string) (gossip.Config, error) {
	switch name {
	case "preset", "":
	case "none":
		cfg.Compression = gossip.Compression{}
	case "zstd", "lz4":
		cfg.Compression = gossip.Compression{Algorithm: name, MinSize: 256}
	default:
		return cfg, fmt.Errorf("unknown compressor %q (want preset, none, zstd, lz4)", name)
	}
	return cfg, validate(cfg)
}

func gossipConfig(cfg Config) (gossip.Config, error) {
	if cfg.Gossip != nil {
		return *cfg.Gossip, validate(*cfg.Gossip)
	}
	return Preset(cfg.Preset)
}

// Listen opens the named transport at addr. tls is required for quic and
// optional for tcp; udp+tcp has no TLS. reset is quic's stateless reset key
// (nil for none).
func Listen(name, addr string, tlsConf *tls.Config, reset *qgo.StatelessResetKey) (transport.Transport, error) {
	if err := checkBind(addr); err != nil {
		return nil, err
	}
	switch name {
	case "quic":
		if tlsConf == nil {
			return nil, errors.New("stack: quic needs TLS")
		}
		return quic.Listen(addr, quic.Config{TLS: tlsConf, StatelessResetKey: reset})
	case "udp+tcp":
		if tlsConf != nil {
			return nil, errors.New("stack: udp+tcp has no TLS; use quic or tcp, or a secret")
		}
		return udptcp.Listen(addr, udp.Config{}, tcp.Config{})
	case "tcp":
		return tcp.Listen(addr, tcp.Config{TLS: tlsConf})
	}
	return nil, fmt.Errorf("stack: unknown transport %q (want %s)", name, strings.Join(Transports, ", "))
}

// checkBind refuses a wildcard address: a transport advertises the address
// it is bound to.
func checkBind(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("stack: listen address %q: %w", addr, err)
	}
	if isWildcard(host) {
		return fmt.Errorf("stack: listen address %q is a wildcard: peers would be told an address they cannot reach; listen on this node's IP, or set Advertise (plumtree node -advertise IP)", addr)
	}
	return nil
}

func isWildcard(host string) bool {
	if host == "" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsUnspecified()
}

// addresses works out where the transport binds, where memberlist binds,
// and what memberlist advertises ("" for its bind address).
func addresses(cfg Config) (bind, mlBind, advertise string, err error) {
	if cfg.Listen == "" {
		return "", "", "", errors.New("stack: Config.Listen is required: the broadcast transport's ip:port (port 0 picks one)")
	}
	host, port, err := splitHostPort(cfg.Listen)
	if err != nil {
		return "", "", "", fmt.Errorf("stack: Listen: %w", err)
	}
	bind = cfg.Listen
	if cfg.Advertise != "" {
		ip, err := netip.ParseAddr(cfg.Advertise)
		if err != nil || ip.IsUnspecified() {
			return "", "", "", fmt.Errorf("stack: Advertise %q is not an IP address peers can reach", cfg.Advertise)
		}
		bind = net.JoinHostPort(cfg.Advertise, strconv.Itoa(port))
		advertise = cfg.Advertise
	} else if isWildcard(host) {
		return "", "", "", fmt.Errorf("stack: Listen %q is a wildcard address, which peers cannot reach: set Advertise to the IP they reach this node at (plumtree node -advertise IP), or listen on that IP", cfg.Listen)
	}
	mlBind = cfg.ClusterListen
	if mlBind == "" {
		p := 0
		if port != 0 {
			p = port + 1
		}
		mlBind = net.JoinHostPort(host, strconv.Itoa(p))
	}
	mlHost, _, err := splitHostPort(mlBind)
	if err != nil {
		return "", "", "", fmt.Errorf("stack: ClusterListen: %w", err)
	}
	if isWildcard(mlHost) && advertise == "" {
		return "", "", "", fmt.Errorf("stack: ClusterListen %q is a wildcard address, which peers cannot reach: set Advertise", mlBind)
	}
	adv := advertise
	if adv == "" {
		adv, _, _ = net.SplitHostPort(bind)
	}
	if err := checkReachable(adv, cfg.Join); err != nil {
		return "", "", "", err
	}
	return bind, mlBind, advertise, nil
}

// checkReachable refuses a loopback address advertised to seeds that are
// not on loopback.
func checkReachable(adv string, seeds []string) error {
	ip, err := netip.ParseAddr(adv)
	if err != nil || !ip.IsLoopback() {
		return nil
	}
	for _, s := range seeds {
		if i := strings.LastIndexByte(s, '/'); i >= 0 { // "name/host:port"
			s = s[i+1:]
		}
		host, _, err := net.SplitHostPort(s)
		if err != nil {
			continue
		}
		if sip, err := netip.ParseAddr(host); err == nil && !sip.IsLoopback() {
			return fmt.Errorf("stack: this node advertises the loopback address %s but joins %s, which cannot reach it: listen on (or Advertise) an address the seeds reach", adv, s)
		}
	}
	return nil
}

// clusterLabel is memberlist's label: cfg.Label, the transport and a
// fingerprint of the security setting, so that nodes that could not talk
// to each other's broadcast transport do not join one cluster.
func clusterLabel(cfg Config) (string, error) {
	sec := "none"
	switch {
	case cfg.TLS != nil:
		fp, err := caFingerprint(cfg.TLS)
		if err != nil {
			return "", err
		}
		sec = "tls-" + fp
	case len(cfg.Secret) > 0:
		sec = "secret" // memberlist's keyring checks the key itself
	}
	l := "plumtree/" + cfg.Transport + "/" + sec
	if cfg.Label != "" {
		l = cfg.Label + "/" + l
	}
	if len(l) > 255 {
		return "", fmt.Errorf("stack: Label %q too long", cfg.Label)
	}
	return l, nil
}

// caFingerprint names the CA that issued this node's certificate: the
// first 8 bytes of SHA-256 of its issuer name and authority key ID.
func caFingerprint(c *tls.Config) (string, error) {
	if len(c.Certificates) == 0 || len(c.Certificates[0].Certificate) == 0 {
		return "", errors.New("stack: TLS has no certificate of this node")
	}
	leaf := c.Certificates[0].Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(c.Certificates[0].Certificate[0]); err != nil {
			return "", fmt.Errorf("stack: TLS certificate: %w", err)
		}
	}
	h := sha256.New()
	h.Write(leaf.RawIssuer)
	h.Write(leaf.AuthorityKeyId)
	return hex.EncodeToString(h.Sum(nil)[:8]), nil
}

// memberlistConfig is memberlist's configuration: the local preset on
// loopback (with the LAN preset's TCP timeout, which a busy machine
// needs), the LAN preset elsewhere, without memberlist's compression.
//
// memberlist's presets compress every packet it sends with LZW, and keep
// the result only if it is smaller. Its own traffic here is probes,
// acknowledgements and the membership gossip, a few dozen bytes each,
// which LZW does not shrink, and each attempt allocates a 64 KiB table:
// in plumtree bench (20 nodes, 100 broadcasts/s) that was about 5% of the
// process's CPU for nothing. A peer decodes compressed and plain packets
// alike, so nodes that differ in this setting still talk. The push-pull
// state exchange, the one large message, goes uncompressed too; set
// Config.Memberlist to turn compression back on.
func memberlistConfig(cfg Config, bind, advertise, label string) (*memberlist.Config, error) {
	host, port, err := splitHostPort(bind)
	if err != nil {
		return nil, err
	}
	conf := memberlist.DefaultLANConfig()
	if ip, err := netip.ParseAddr(host); (err == nil && ip.IsLoopback()) || host == "localhost" {
		conf = memberlist.DefaultLocalConfig()
		conf.TCPTimeout = memberlist.DefaultLANConfig().TCPTimeout
	}
	if len(cfg.Secret) > 0 {
		for i, k := range cfg.Secret {
			if n := len(k); n != 16 && n != 24 && n != 32 {
				return nil, fmt.Errorf("stack: Secret key %d: %d bytes; want 16, 24 or 32", i+1, n)
			}
		}
		if conf.Keyring, err = memberlist.NewKeyring(slices.Clone(cfg.Secret), cfg.Secret[0]); err != nil {
			return nil, err
		}
	}
	conf.BindAddr = host
	conf.BindPort = port
	conf.AdvertisePort = port
	if advertise != "" {
		conf.AdvertiseAddr = advertise
	}
	conf.Label = label
	conf.EnableCompression = false
	if cfg.Logger == nil {
		conf.LogOutput = io.Discard
	}
	return conf, nil
}

// SealKeyInfo is the HKDF info string of the seal keys derived from the
// secret.
const SealKeyInfo = "plumtree seal v1"

// SealKeys derives the seal's keys from the secret's, one each, with
// HKDF-SHA256 (no salt, info SealKeyInfo, as long as the secret), so that
// seal and memberlist, which keeps the raw keys, never encrypt under the
// same AES key. The order, and with it the primary key, is kept.
func SealKeys(secret [][]byte) ([][]byte, error) {
	keys := make([][]byte, len(secret))
	for i, s := range secret {
		k, err := hkdf.Key(sha256.New, s, nil, SealKeyInfo, len(s))
		if err != nil {
			return nil, fmt.Errorf("stack: secret key %d: derive the seal key: %w", i+1, err)
		}
		keys[i] = k
	}
	return keys, nil
}

// Seal wraps tr (the transport named name) with keys derived from secret
// (SealKeys), for the transports without TLS of their own: udp+tcp and
// tcp. quic, whose security is mutual TLS, and any transport with no
// secret, are returned as they are. On error tr is closed.
func Seal(name string, tr transport.Transport, secret [][]byte) (transport.Transport, error) {
	if len(secret) == 0 || name == "quic" {
		return tr, nil
	}
	keys, err := SealKeys(secret)
	if err != nil {
		tr.Close()
		return nil, err
	}
	kr, err := seal.NewKeyring(keys[0], keys[1:]...)
	if err != nil {
		tr.Close()
		return nil, err
	}
	s, err := seal.Wrap(tr, kr)
	if err != nil {
		tr.Close()
		return nil, err
	}
	return s, nil
}

func splitHostPort(hp string) (string, int, error) {
	host, p, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port in %q", hp)
	}
	return host, port, nil
}

// WaitMembers waits until the membership lists at least n nodes (this one
// included) and the gossip node knows them, or ctx ends.
func (s *Stack) WaitMembers(ctx context.Context, n int) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		got := len(s.Membership.Members())
		if got >= n {
			if s.Node == nil {
				return nil // topics: each learns its subscribers from the host
			}
			if st, err := s.Node.Stats(); err == nil && st.Members >= n-1 {
				return nil
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("stack: %s lists %d of %d members: %w", s.name, got, n, ctx.Err())
		}
	}
}
