package gossip

// Membership: the engine and the peer table follow the membership's view.

import (
	"time"

	"github.com/plumtree-go/plumtree/membership"
)

// reconcile compares the membership's full view with the node's, so that
// a dropped event never leaves a ghost peer or a missing one.
func (p *Plumtree[ID, M]) reconcile(now time.Time) {
	members := p.o.Membership.Members()
	ids := make([]ID, 0, len(members))
	seen := make(map[ID]struct{}, len(members))
	for _, m := range members {
		if m.ID == p.o.ID {
			continue
		}
		seen[m.ID] = struct{}{}
		ids = append(ids, m.ID)
		p.setPeer(m)
	}
	for id := range p.peers {
		if _, ok := seen[id]; !ok {
			p.dropPeer(id)
		}
	}
	p.eng.SetMembers(now, ids)
}

func (p *Plumtree[ID, M]) onMembership(ev membership.Event[ID]) {
	if ev.Member.ID == p.o.ID {
		return
	}
	now := p.clock.Now()
	switch ev.Kind {
	case membership.Join, membership.Update:
		p.setPeer(ev.Member)
		p.eng.PeerUp(now, ev.Member.ID)
	case membership.Leave, membership.Fail:
		p.dropPeer(ev.Member.ID)
		p.eng.PeerDown(now, ev.Member.ID)
	}
}

func (p *Plumtree[ID, M]) setPeer(m membership.Member[ID]) {
	pr := p.peers[m.ID]
	if pr != nil && pr.addr == m.Addr {
		return
	}
	if pr != nil {
		p.dropPeer(m.ID) // the address changed: a new sender for the new one
	}
	idw, err := p.o.IDCodec.Append(nil, m.ID)
	if err != nil {
		p.log.Warn("gossip: cannot encode member ID", "id", m.ID, "err", err)
		return
	}
	p.peers[m.ID] = &peer{addr: m.Addr, idWire: idw}
	p.byWire[string(idw)] = m.ID
}

func (p *Plumtree[ID, M]) dropPeer(id ID) {
	pr := p.peers[id]
	if pr == nil {
		return
	}
	if pr.queue != nil {
		close(pr.queue)
		p.wakeSender(pr) // to drain what is queued
		p.forgetQueue(pr)
		p.flow.wantRoom.Store(true)
		select {
		case p.flow.room <- struct{}{}: // its frames no longer count
		default:
		}
	}
	pr.gone = true
	delete(p.peers, id)
	delete(p.byWire, string(pr.idWire))
}
