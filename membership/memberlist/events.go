package memberlist

import (
	"slices"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/plumtree-go/plumtree/membership"
)

// Events: memberlist's notifications turned into membership events, in
// order, once each.

// maxEarlyEvents bounds the memberlist events held between memberlist.Create
// and Attach.
const maxEarlyEvents = 4096

type nodeEvent uint8

const (
	nodeJoin nodeEvent = iota + 1
	nodeUpdate
	nodeGone
)

type earlyEvent struct {
	kind nodeEvent
	node memberlist.Node
}

// notify handles one event from memberlist, on one of its goroutines, with
// its node lock held: it must not block nor call memberlist.
func (m *Membership[ID]) notify(kind nodeEvent, n *memberlist.Node) {
	m.mu.Lock()
	switch {
	case m.closed:
	case !m.attached:
		if len(m.early) < maxEarlyEvents {
			c := *n
			c.Addr = slices.Clone(n.Addr)
			c.Meta = slices.Clone(n.Meta)
			m.early = append(m.early, earlyEvent{kind, c})
		} else {
			m.dropped.Add(1)
		}
	default:
		m.apply(kind, n)
	}
	chained := m.chained
	m.mu.Unlock()
	if chained != nil {
		switch kind {
		case nodeJoin:
			chained.NotifyJoin(n)
		case nodeUpdate:
			chained.NotifyUpdate(n)
		case nodeGone:
			chained.NotifyLeave(n)
		}
	}
}

// apply updates the view with one memberlist event and reports what it
// means for the members. m.mu is held.
func (m *Membership[ID]) apply(kind nodeEvent, n *memberlist.Node) {
	if n.Name == m.selfName {
		return
	}
	peersChanged := false
	defer func() {
		if peersChanged && m.persist != nil {
			m.persist.changed()
		}
	}()

	nd := m.nodes[n.Name]
	if kind == nodeGone {
		if nd == nil {
			return
		}
		delete(m.nodes, n.Name)
		peersChanged = true
		if !nd.leaving {
			m.failed[n.Name] = failure{mlAddr: nd.mlAddr, since: time.Now()}
		}
		if nd.reported {
			m.unreport(nd, membership.Fail)
		}
		return
	}

	// A join or an update: the node is alive.
	delete(m.failed, n.Name)
	if nd == nil {
		nd = &node[ID]{}
		m.nodes[n.Name] = nd
	}
	if addr := n.Address(); nd.mlAddr != addr {
		nd.mlAddr = addr
		nd.ip, nd.port = slices.Clone(n.Addr), n.Port
		peersChanged = true
	}
	md, err := decodeMeta(n.Meta)
	nd.adapter = err == nil
	if err != nil {
		if nd.reported {
			m.log.Warn("memberlist: ignoring malformed metadata; the member keeps its last address",
				"node", n.Name, "addr", nd.member.Addr, "err", err)
		} else {
			m.log.Warn("memberlist: ignoring node with malformed metadata", "node", n.Name, "err", err)
		}
		return
	}
	// A node that announced its departure but comes back under the same
	// name with another boot ID (killed before memberlist saw it leave,
	// then restarted) is a new node: it joins again.
	if nd.leaving && !md.leaving && md.boot != 0 && nd.boot != 0 && md.boot != nd.boot {
		nd.leaving = false
	}
	if md.boot != 0 {
		nd.boot = md.boot
	}
	nd.metaLeaving = md.leaving
	if md.leaving || nd.leaving {
		m.markLeaving(nd)
		return
	}
	if nd.reported {
		if nd.member.Addr != md.addr {
			nd.member.Addr = md.addr
			m.emit(membership.Event[ID]{Kind: membership.Update, Member: nd.member})
		}
		return
	}
	id, err := m.parse(n.Name)
	if err != nil {
		m.log.Warn("memberlist: ignoring node whose name is not an ID", "node", n.Name, "err", err)
		return
	}
	if other, dup := m.byID[id]; dup {
		m.log.Warn("memberlist: ignoring node whose ID another node has", "node", n.Name, "other", other, "id", id)
		return
	}
	if id == m.self.ID {
		m.log.Warn("memberlist: ignoring node whose ID is this node's", "node", n.Name, "id", id)
		return
	}
	nd.member = membership.Member[ID]{ID: id, Addr: md.addr}
	nd.reported = true
	m.byID[id] = n.Name
	m.emit(membership.Event[ID]{Kind: membership.Join, Member: nd.member})
}

// unreport removes a member and reports kind for it. m.mu is held.
func (m *Membership[ID]) unreport(nd *node[ID], kind membership.EventKind) {
	nd.reported = false
	delete(m.byID, nd.member.ID)
	m.emit(membership.Event[ID]{Kind: kind, Member: nd.member})
}

// emit sends ev if the channel has room, and counts it dropped otherwise.
// m.mu is held, which keeps events in order and away from a closed channel.
func (m *Membership[ID]) emit(ev membership.Event[ID]) {
	select {
	case m.events <- ev:
	default:
		if m.dropped.Add(1) == 1 {
			m.log.Warn("memberlist: events channel full, dropping events; the consumer should reconcile with Members",
				"capacity", cap(m.events))
		}
	}
}
