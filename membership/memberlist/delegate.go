package memberlist

import (
	"github.com/hashicorp/memberlist"
)

// The delegate memberlist calls: node metadata and the adapter's messages.

// nodeMeta is the local node's metadata.
func (m *Membership[ID]) nodeMeta(limit int) []byte {
	m.mu.Lock()
	b := appendMeta(nil, meta{addr: m.cfg.Addr, leaving: m.leaving, boot: m.boot})
	m.mu.Unlock()
	if len(b) > limit { // cannot happen with memberlist's limit: checkAddr
		m.log.Error("memberlist: node metadata too long", "bytes", len(b), "limit", limit)
		return nil
	}
	return b
}

// delegate implements memberlist's EventDelegate and Delegate for a
// Membership, keeping those methods off its API.
type delegate[ID comparable] struct{ m *Membership[ID] }

func (d *delegate[ID]) NotifyJoin(n *memberlist.Node) { d.m.notify(nodeJoin, n) }

func (d *delegate[ID]) NotifyUpdate(n *memberlist.Node) { d.m.notify(nodeUpdate, n) }

func (d *delegate[ID]) NotifyLeave(n *memberlist.Node) { d.m.notify(nodeGone, n) }

func (d *delegate[ID]) NodeMeta(limit int) []byte { return d.m.nodeMeta(limit) }

func (d *delegate[ID]) NotifyMsg(b []byte) { d.m.onMessage(b) }

func (d *delegate[ID]) GetBroadcasts(int, int) [][]byte { return nil }

func (d *delegate[ID]) LocalState(bool) []byte { return nil }

func (d *delegate[ID]) MergeRemoteState([]byte, bool) {}
