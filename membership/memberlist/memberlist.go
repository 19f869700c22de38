// Package memberlist is a membership.Membership over hashicorp/memberlist
// (SWIM failure detection and gossip): memberlist says who is alive, and the
// broadcast core builds its tree over those members.
//
// Each node advertises the address of its broadcast transport in its
// memberlist node metadata, so the broadcast transport can listen on a port
// of its own; that address is the Member.Addr the others see. The ID of a
// node is its memberlist node name, or whatever Config.ParseID makes of it.
//
// # Usage
//
// With this package imported as plummember (its name is hashicorp's too):
//
//	conf := memberlist.DefaultLANConfig() // hashicorp's: LAN, WAN or Local
//	conf.Name = "node-1"
//	conf.BindPort = 7946
//	conf.SecretKey = key // optional: memberlist's encryption passes through
//	m, err := plummember.New(plummember.Config[string]{
//		Memberlist: conf,
//		Addr:       "10.0.0.1:7947", // the broadcast transport
//		Join:       []string{"10.0.0.2:7946"},
//		PeersFile:  "/var/lib/app/peers.json",
//	})
//	if err != nil { ... }
//	defer m.Close() // leaves gracefully
//	node, err := gossip.New(cfg, gossip.Options[string, M]{ID: "node-1", Membership: m, ...})
//
// A caller who creates the memberlist itself calls Prepare, puts the
// adapter's Delegates into its memberlist.Config before memberlist.Create,
// then calls Attach.
//
// # Events
//
//   - A node that becomes alive with valid metadata is a Join; its broadcast
//     address changing is an Update (a change of its memberlist address or of
//     other metadata alone is not reported).
//   - A node that leaves with Close is a Leave. memberlist's own NotifyLeave
//     cannot tell a departure from a failure (the Node it passes always has
//     State StateAlive: hashicorp/memberlist#293), so Close announces the
//     departure itself before it leaves memberlist: it marks its metadata as
//     leaving, then sends a leaving notice (a memberlist user message) to
//     every other node running this adapter and waits, up to
//     Config.LeaveTimeout, until each has acknowledged it. A node reports the
//     Leave when the notice or the metadata reaches it, so by the time
//     memberlist spreads the departure every acknowledging node has reported
//     a Leave, not a Fail. A node acknowledges only once its memberlist
//     holds the leaving metadata too: memberlist gossips an update to a few
//     nodes at a time, and a node that joins after the departure learns of
//     the leaver from the state of the nodes it joins; had one of them kept
//     the old metadata, the newcomer would report a Join and then, when
//     memberlist spreads the departure, a Fail.
//   - A node that memberlist declares dead without that notice is a Fail.
//     Only a node that did not acknowledge in time (or that joined during
//     the departure and heard of it from memberlist first) may report a
//     Fail for a node that left: to the broadcast core the two mean the
//     same.
//   - The local node is never reported: it has no Join, Leave or Fail of its
//     own. It is in Members, and Self returns it.
//   - A node whose metadata cannot be read (another version, or a memberlist
//     node that is not using this package) or whose name ParseID refuses is
//     not a member: it is logged and left out of Members and events. A
//     member whose metadata later turns unreadable keeps its last address.
//
// Events for one member come in the order memberlist reported them, each
// once. The channel is bounded (Config.EventBuffer); memberlist's goroutines
// never wait for the consumer: when the channel is full the event is dropped
// and counted (Dropped), and a consumer that falls behind reconciles with
// Members, as the membership interface says (the gossip runner does so every
// ReconcileInterval). A bounded channel and a count were chosen over an
// unbounded queue because memberlist calls the adapter with its node lock
// held: the adapter must never block it, and must not grow without bound
// behind a consumer that has stopped.
//
// # Peers file
//
// With Config.PeersFile set, the adapter saves the memberlist addresses of
// the nodes it knows alive to that file whenever they change (atomically:
// temporary file, fsync, rename), and on start joins the saved peers along
// with Config.Join, so a restarted node rejoins without its seed list. An
// empty list is never written: the file keeps the last peers known. A file
// that exists but cannot be read is an error from New or Attach
// (*PeersFileError) rather than something logged and ignored: a node that
// silently started alone would form a cluster of its own, which is worse
// than not starting. Remove the file to start from the seed list.
//
// # Rejoining after a partition
//
// memberlist forgets a node it declared dead: it gossips to it only for
// GossipToTheDeadTime, and its periodic push/pull picks only live nodes. A
// partition that outlasts failure detection therefore leaves two clusters
// that never merge again by themselves. With Config.RejoinInterval set, the
// adapter does what serf's reconnect does: it remembers the memberlist
// address of every node that failed (was declared dead without a leaving
// notice) until the node is alive again, leaves, or has been missing for
// RejoinTimeout; those addresses, and Config.Join's while it knows no other
// live node at all, are its candidates. Every RejoinInterval it joins one
// candidate, the next one in turn (in address order, wrapping around), so
// that each is tried within as many intervals as there are candidates and
// one unreachable address delays the others by one attempt only. One
// successful join is enough for memberlist's push/pull to merge the two
// views; the refutations that follow bring back every node of the other
// side. A node that left with Close is never rejoined.
//
// A failed node's address is retried until RejoinTimeout (a day by
// default), and by then it may belong to a node of another cluster: a
// successful join would merge the two clusters. Clusters that share a
// network must therefore keep their memberlists apart, with a different
// memberlist Label or a different SecretKey (or Keyring) each.
//
// # Beside memberlist's own gossip
//
// memberlist and the broadcast tree run side by side on separate ports.
// memberlist (UDP and TCP on its BindPort) carries only membership: probes,
// suspicion, alive, dead and push/pull state, plus this adapter's node
// metadata and its small leaving notices. The broadcast transport, on its
// own address, carries the application's messages along the Plumtree tree,
// which reaches every node in about one copy per node and recovers losses
// by announcements and grafts. memberlist's own broadcast queue
// (Delegate.GetBroadcasts) piggybacks messages on its gossip packets and
// retransmits each one a fixed number of times to random nodes: it suits a
// few small, rare messages (cluster metadata, a leader hint) and needs no
// second port, but it bounds message size by the packet, delivers no
// message order and sends each message several times per node. Use the
// broadcast tree for a steady stream or for anything larger.
//
// This package must never import the gossip core or any transport.
package memberlist

import (
	cryptorand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/plumtree-go/plumtree/membership"
)

// Membership is a membership.Membership[ID] fed by memberlist. Make one with
// New, or with Prepare and Attach. It is safe for concurrent use.
type Membership[ID comparable] struct {
	boot    uint64 // random at each start, advertised in the metadata
	cfg     Config[ID]
	parse   func(string) (ID, error)
	log     *slog.Logger
	timeout time.Duration
	events  chan membership.Event[ID]
	dropped atomic.Uint64
	persist *persister
	saved   []peer // peers read from the file at start

	mu       sync.Mutex
	ml       *memberlist.Memberlist
	owned    bool // ml was created by New: Close leaves and shuts it down
	chained  memberlist.EventDelegate
	attached bool
	early    []earlyEvent // before Attach
	self     membership.Member[ID]
	selfName string
	leaving  bool
	acks     map[string]bool      // during Close: nodes yet to acknowledge the leaving notice
	ackCh    chan struct{}        // an acknowledgement arrived
	nodes    map[string]*node[ID] // alive memberlist nodes other than this one, by name
	byID     map[ID]string        // reported members: ID to name
	failed   map[string]failure   // nodes gone without a leaving notice, by name, to rejoin
	closed   bool

	rejoinStop chan struct{} // closed by stop: ends the rejoin loop
	rejoinDone sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

var _ membership.Membership[string] = (*Membership[string])(nil)

// node is what the adapter knows of one alive memberlist node.
type node[ID comparable] struct {
	mlAddr   string // memberlist's address, for the peers file
	ip       net.IP // memberlist's address, for messages
	port     uint16
	adapter  bool // its metadata is this package's: it runs an adapter
	member   membership.Member[ID]
	reported bool // a member: Joined, and neither left nor failed since
	leaving  bool // announced its departure; stays set until it is gone
	// metaLeaving: memberlist's view of the node carries the leaving flag in
	// its metadata, so a node that joins later learns of the departure from
	// this one's state (see leavingNotice).
	metaLeaving bool
	boot        uint64 // the boot ID of its metadata when it last had one
}

// failure is a node that memberlist declared dead without a leaving notice:
// where to rejoin it, and since when it is missing.
type failure struct {
	mlAddr string
	since  time.Time
}

// New creates a memberlist from cfg.Memberlist, joins cfg.Join and the saved
// peers, and reports the cluster. Close leaves and shuts the memberlist down;
// Memberlist returns it for other uses.
func New[ID comparable](cfg Config[ID]) (*Membership[ID], error) {
	if cfg.Memberlist == nil {
		return nil, errors.New("memberlist: Config.Memberlist is required by New (use memberlist.DefaultLANConfig and set Name)")
	}
	if cfg.Memberlist.Delegate != nil {
		return nil, errors.New("memberlist: Config.Memberlist.Delegate must be nil: the adapter's delegate provides the node metadata")
	}
	mlConf := *cfg.Memberlist
	cfg.Memberlist = nil
	m, err := prepare(cfg)
	if err != nil {
		return nil, err
	}
	if _, err := m.parse(mlConf.Name); err != nil {
		return nil, fmt.Errorf("memberlist: node name %q is not an ID: %w", mlConf.Name, err)
	}
	m.chained = mlConf.Events
	d := m.Delegates()
	mlConf.Events, mlConf.Delegate = d.Events, d.Delegate
	if mlConf.Logger == nil && mlConf.LogOutput == nil {
		mlConf.Logger = memberlistLogger(m.log)
	}
	ml, err := memberlist.Create(&mlConf)
	if err != nil {
		m.stop(false)
		return nil, fmt.Errorf("memberlist: create: %w", err)
	}
	m.mu.Lock()
	m.owned = true
	m.mu.Unlock()
	if err := m.Attach(ml); err != nil {
		m.stop(false) // shuts ml down: it is owned
		return nil, err
	}
	return m, nil
}

// Prepare returns a Membership for a memberlist the caller creates: put
// Delegates into its memberlist.Config before memberlist.Create, then call
// Attach. cfg.Memberlist must be nil. The peers file, if any, is read now.
func Prepare[ID comparable](cfg Config[ID]) (*Membership[ID], error) {
	if cfg.Memberlist != nil {
		return nil, errors.New("memberlist: Prepare takes no Config.Memberlist: create the memberlist with Delegates, then Attach it")
	}
	return prepare(cfg)
}

func prepare[ID comparable](cfg Config[ID]) (*Membership[ID], error) {
	if err := checkAddr(cfg.Addr); err != nil {
		return nil, err
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m := &Membership[ID]{boot: newBootID(),
		cfg:     cfg,
		parse:   cfg.ParseID,
		log:     cfg.Logger,
		timeout: cfg.LeaveTimeout,
		events:  make(chan membership.Event[ID], cfg.EventBuffer),
		ackCh:   make(chan struct{}, 1),
		nodes:   make(map[string]*node[ID]),
		byID:    make(map[ID]string),
		failed:  make(map[string]failure),

		rejoinStop: make(chan struct{}),
	}
	if cfg.PeersFile != "" {
		saved, err := readPeers(cfg.PeersFile)
		if err != nil {
			return nil, err
		}
		m.saved = saved
		m.persist = startPersister(cfg.PeersFile, saved, m.peers, m.log)
	}
	return m, nil
}

// Delegates are the memberlist delegates of a Membership.
type Delegates struct {
	// Events goes in memberlist.Config.Events.
	Events memberlist.EventDelegate
	// Delegate goes in memberlist.Config.Delegate.
	Delegate memberlist.Delegate
}

// Apply sets the delegates in c.
func (d Delegates) Apply(c *memberlist.Config) {
	c.Events, c.Delegate = d.Events, d.Delegate
}

// Delegates returns the delegates that must be in the memberlist.Config of
// the memberlist given to Attach. The Delegate provides the node metadata
// (the broadcast address) and carries no messages of its own.
func (m *Membership[ID]) Delegates() Delegates {
	d := &delegate[ID]{m}
	return Delegates{Events: d, Delegate: d}
}

// Attach starts reporting the members of ml, which must have been created
// with m's Delegates, then joins Config.Join and the saved peers. If joining
// fails, m stays attached: Close it. The
// memberlist stays the caller's: Close announces that this node's broadcast
// layer is leaving (the others report a Leave) but neither leaves nor shuts
// down ml.
func (m *Membership[ID]) Attach(ml *memberlist.Memberlist) error {
	local := ml.LocalNode()
	self, err := m.parse(local.Name)
	if err != nil {
		return fmt.Errorf("memberlist: node name %q is not an ID: %w", local.Name, err)
	}
	m.mu.Lock()
	if m.attached || m.closed {
		m.mu.Unlock()
		return errors.New("memberlist: Attach on a membership already attached or closed")
	}
	m.ml, m.attached = ml, true
	m.selfName = local.Name
	m.self = membership.Member[ID]{ID: self, Addr: m.cfg.Addr}
	for _, e := range m.early {
		m.apply(e.kind, &e.node)
	}
	m.early = nil
	if m.cfg.RejoinInterval > 0 {
		m.rejoinDone.Add(1)
		go m.rejoinLoop(local.Address(), ml.Join)
	}
	m.mu.Unlock()
	return m.join(local.Address())
}

// Members returns the alive members, this node included, sorted by node
// name. The caller may keep and modify the slice.
func (m *Membership[ID]) Members() []membership.Member[ID] {
	m.mu.Lock()
	defer m.mu.Unlock()
	names := make([]string, 0, len(m.nodes))
	for name, n := range m.nodes {
		if n.reported {
			names = append(names, name)
		}
	}
	if m.attached {
		names = append(names, m.selfName)
	}
	slices.Sort(names)
	out := make([]membership.Member[ID], 0, len(names))
	for _, name := range names {
		if name == m.selfName {
			out = append(out, m.self)
		} else {
			out = append(out, m.nodes[name].member)
		}
	}
	return out
}

// Events returns the channel of membership changes; it is closed by Close
// and Shutdown.
func (m *Membership[ID]) Events() <-chan membership.Event[ID] { return m.events }

// Self returns the local node as the others see it. Before Attach its ID is
// the zero value.
func (m *Membership[ID]) Self() membership.Member[ID] {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.self
}

// Dropped returns how many events were dropped because the Events channel
// was full.
func (m *Membership[ID]) Dropped() uint64 { return m.dropped.Load() }

// Memberlist returns the memberlist in use, nil before Attach.
func (m *Membership[ID]) Memberlist() *memberlist.Memberlist {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ml
}

// SetAddr changes the broadcast address this node advertises and waits, up
// to Config.LeaveTimeout, for the change to go out; the others report an
// Update.
func (m *Membership[ID]) SetAddr(addr string) error {
	if err := checkAddr(addr); err != nil {
		return err
	}
	m.mu.Lock()
	if m.closed || m.leaving {
		m.mu.Unlock()
		return errors.New("memberlist: SetAddr after Close")
	}
	m.cfg.Addr = addr
	m.self.Addr = addr
	ml := m.ml
	m.mu.Unlock()
	if ml == nil {
		return nil
	}
	if err := ml.UpdateNode(m.timeout); err != nil {
		return fmt.Errorf("memberlist: announce address %s: %w", addr, err)
	}
	return nil
}

// Close leaves gracefully: it marks this node as leaving in its metadata
// and waits for that update to go out, sends the leaving notice and waits
// for every other adapter to acknowledge it (see the package doc), then,
// for a memberlist created by New, leaves memberlist and shuts it down.
// Each of these three waits is bounded by Config.LeaveTimeout. It then
// closes Events and saves the peers file. An error says a wait timed out
// (a node that crashed and is not yet detected never acknowledges); the
// node is stopped all the same. Close is idempotent; after Shutdown it does
// nothing.
func (m *Membership[ID]) Close() error {
	m.closeOnce.Do(func() { m.closeErr = m.stop(true) })
	return m.closeErr
}

// Shutdown stops without a goodbye, as a crash would: a memberlist created
// by New is shut down without leaving, and the others report a Fail after
// their failure detection. It suits a node that restarts at once under the
// same name, and tests. It then closes Events and saves the peers file. After
// Close it does nothing.
func (m *Membership[ID]) Shutdown() error {
	m.closeOnce.Do(func() { m.closeErr = m.stop(false) })
	return m.closeErr
}

func (m *Membership[ID]) stop(leave bool) error {
	m.mu.Lock()
	ml, owned := m.ml, m.owned
	if leave {
		m.leaving = true // NodeMeta now says so
	}
	m.mu.Unlock()
	close(m.rejoinStop)
	// memberlist's Join cannot be interrupted: wait for the one in progress,
	// of one address (see Config.RejoinInterval for how long that can take).
	m.rejoinDone.Wait()

	var errs []error
	if ml != nil && leave {
		if err := ml.UpdateNode(m.timeout); err != nil {
			errs = append(errs, fmt.Errorf("memberlist: announce leaving: %w", err))
		}
		if err := m.announceLeaving(ml); err != nil {
			errs = append(errs, err)
		}
		if owned {
			if err := leaveMemberlist(ml, m.timeout); err != nil {
				errs = append(errs, fmt.Errorf("memberlist: leave: %w", err))
			}
		}
	}
	if ml != nil && owned {
		if err := ml.Shutdown(); err != nil {
			errs = append(errs, fmt.Errorf("memberlist: shutdown: %w", err))
		}
	}

	m.mu.Lock()
	m.closed = true
	close(m.events)
	m.mu.Unlock()
	if m.persist != nil {
		m.persist.close()
	}
	return errors.Join(errs...)
}

// leaveMemberlist calls ml.Leave, which panics if ml was shut down already (by a
// caller who did not use Shutdown): that is an error here, not a crash.
func leaveMemberlist(ml *memberlist.Memberlist, timeout time.Duration) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	return ml.Leave(timeout)
}

// peers is the persister's snapshot: the alive nodes other than this one,
// whether or not they are members.
func (m *Membership[ID]) peers() []peer {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]peer, 0, len(m.nodes))
	for name, n := range m.nodes {
		out = append(out, peer{Name: name, Addr: n.mlAddr})
	}
	slices.SortFunc(out, func(a, b peer) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// newBootID returns a random, non-zero boot ID.
func newBootID() uint64 {
	for {
		var b [8]byte
		_, _ = cryptorand.Read(b[:])
		if id := binary.BigEndian.Uint64(b[:]); id != 0 {
			return id
		}
	}
}
