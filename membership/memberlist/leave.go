package memberlist

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/plumtree-go/plumtree/membership"
)

// The leave protocol: a closing node tells its peers it is leaving, so that
// they report Leave rather than Fail.

// resendInterval is how often Close sends its leaving notice again to the
// nodes that have not acknowledged it (the notice travels as a datagram).
const resendInterval = 100 * time.Millisecond

// markLeaving records that nd announced its departure, and reports it. m.mu
// is held.
func (m *Membership[ID]) markLeaving(nd *node[ID]) {
	nd.leaving = true
	if nd.reported {
		m.unreport(nd, membership.Leave)
	}
}

// onMessage handles a message from another adapter, on one of memberlist's
// goroutines (without memberlist's node lock).
func (m *Membership[ID]) onMessage(b []byte) {
	msg, err := decodeMessage(b)
	if err != nil {
		m.log.Warn("memberlist: ignoring malformed message", "err", err)
		return
	}
	switch msg.kind {
	case msgLeaving:
		m.onLeaving(msg)
	case msgAck:
		m.mu.Lock()
		if m.acks[msg.name] {
			delete(m.acks, msg.name)
			select {
			case m.ackCh <- struct{}{}:
			default:
			}
		}
		m.mu.Unlock()
	}
}

// onLeaving handles a leaving notice: it reports the Leave, and
// acknowledges the notice when the leaver need not send it again.
func (m *Membership[ID]) onLeaving(msg message) {
	m.mu.Lock()
	ml, self := m.ml, m.selfName
	ack := m.leavingNotice(msg)
	m.mu.Unlock()
	if !ack || ml == nil {
		return
	}
	to, err := nodeAt(msg.name, msg.addr)
	if err != nil {
		m.log.Warn("memberlist: leaving notice with a bad address", "node", msg.name, "err", err)
		return
	}
	if err := ml.SendBestEffort(to, appendMessage(nil, message{kind: msgAck, name: self})); err != nil {
		m.log.Debug("memberlist: cannot acknowledge leaving notice", "node", msg.name, "err", err)
	}
}

// leavingNotice marks the node a leaving notice names as leaving, and
// reports whether to acknowledge the notice. m.mu is held.
//
// It acknowledges only a node memberlist knows at that address (even after
// Close: the acknowledgement says "I will not report you as failed"), so
// that a forged notice cannot make this node send to an address of the
// forger's choosing. A node that does not know the leaver yet does not
// answer; the leaver waits for it up to its LeaveTimeout. Without
// memberlist's encryption (SecretKey) anyone who can reach memberlist's port
// can still forge a notice for a known node.
//
// It also waits until memberlist's view of the leaver carries the leaving
// metadata (the leaver resends the notice meanwhile): a node that joins
// after the leaver is gone takes its view of the leaver from the nodes it
// joins, and one holding the old metadata would make it report a Join, then
// a Fail when memberlist spreads the departure.
func (m *Membership[ID]) leavingNotice(msg message) bool {
	nd := m.nodes[msg.name]
	if nd == nil || nd.mlAddr != msg.addr {
		m.log.Debug("memberlist: leaving notice from a node not known at its address", "node", msg.name, "addr", msg.addr)
		return false
	}
	if !m.closed && msg.name != m.selfName {
		m.markLeaving(nd)
	}
	if !nd.metaLeaving {
		m.log.Debug("memberlist: leaving notice before the leaving metadata; not acknowledged yet", "node", msg.name)
		return false
	}
	return true
}

// nodeAt makes the memberlist Node to send a message to addr.
func nodeAt(name, addr string) (*memberlist.Node, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, err
	}
	return &memberlist.Node{Name: name, Addr: net.IP(ap.Addr().AsSlice()), Port: ap.Port()}, nil
}

// announceLeaving sends the leaving notice to every other adapter this node
// knows, again every resendInterval to those that have not acknowledged it
// (gossiping the leaving metadata again too), until all have or m.timeout
// has passed.
func (m *Membership[ID]) announceLeaving(ml *memberlist.Memberlist) error {
	local := ml.LocalNode()
	notice := appendMessage(nil, message{kind: msgLeaving, name: local.Name, addr: local.Address()})

	m.mu.Lock()
	m.acks = make(map[string]bool)
	for name, nd := range m.nodes {
		if nd.adapter && !nd.leaving {
			m.acks[name] = true
		}
	}
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.acks = nil
		m.mu.Unlock()
	}()

	deadline := time.NewTimer(m.timeout)
	defer deadline.Stop()
	resend := time.NewTicker(resendInterval)
	defer resend.Stop()
	send := true
	for {
		// Nodes that are gone need not acknowledge.
		var pending []*memberlist.Node
		m.mu.Lock()
		for name := range m.acks {
			nd := m.nodes[name]
			if nd == nil || nd.leaving {
				delete(m.acks, name)
				continue
			}
			pending = append(pending, &memberlist.Node{Name: name, Addr: nd.ip, Port: nd.port})
		}
		m.mu.Unlock()
		if len(pending) == 0 {
			return nil
		}
		if send {
			for _, to := range pending {
				if err := ml.SendBestEffort(to, notice); err != nil {
					m.log.Debug("memberlist: cannot send leaving notice", "node", to.Name, "err", err)
				}
			}
		}
		select {
		case <-m.ackCh:
			send = false
		case <-resend.C:
			send = true
			// A node acknowledges only once its memberlist holds the
			// leaving metadata (see leavingNotice), which memberlist's
			// gossip may not have brought it yet: gossip it again. Queued
			// only, not waited for (a wait here held off the acknowledgements
			// and the deadline for most of each round; memberlist's next
			// gossip, up to 200 ms away, sends it), so the wait's timeout is
			// the shortest that is not "for ever".
			if err := ml.UpdateNode(time.Nanosecond); err != nil { // a timeout, mostly
				m.log.Debug("memberlist: gossip the leaving metadata again", "err", err)
			}
		case <-deadline.C:
			names := make([]string, len(pending))
			for i, p := range pending {
				names[i] = p.Name
			}
			slices.Sort(names)
			return fmt.Errorf("memberlist: no acknowledgement of the leaving notice from %s within %v", strings.Join(names, ", "), m.timeout)
		}
	}
}
