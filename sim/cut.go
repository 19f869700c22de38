package sim

import (
	"math"
	"time"
)

// The Partition and Backlog scenarios: two sides, a cut, a heal.

// sides puts round(Split*Nodes) random nodes on side A, the rest on side B.
func (s *sim) sides() {
	n := len(s.nodes)
	k := int(math.Round(s.cfg.Split * float64(n)))
	perm := s.scRng.Perm(n)
	for i, j := range perm {
		side := int8(0)
		if i >= k {
			side = 1
		}
		s.nodes[j].side = side
	}
	s.sideN = [2]int{k, n - k}
	for i := range s.nodes {
		s.sideList[s.nodes[i].side] = append(s.sideList[s.nodes[i].side], int32(i))
	}
}

// severed reports (and counts) whether the cut drops a message from a to b.
func (s *sim) severed(a, b int32) bool {
	if !s.cutOn || s.nodes[a].side == s.nodes[b].side {
		return false
	}
	s.tot.CutDropped++
	return true
}

// cut severs the links between the sides; in Partition, every node learns
// after the detection delay that the other side failed.
func (s *sim) cut() {
	s.cutOn, s.cutAt = true, s.now
	if s.cfg.Scenario != Partition {
		return
	}
	s.viewCut = true
	dd := int64(s.cfg.DetectDelay)
	for i := range s.nodes {
		if s.nodes[i].up() {
			y := int32(i)
			s.action(s.now+dd+s.scRng.Int64N(dd/2+1), func() { s.cutDetect(y) })
		}
	}
}

// cutDetect is node y learning that the other side failed: its view
// shrinks to its side, and on OverlayPaper (and the flood graph) the
// neighbours it lost are replaced from its side.
func (s *sim) cutDetect(y int32) {
	n := &s.nodes[y]
	if !n.up() || !s.viewCut {
		return // healed before the detection
	}
	now := base.Add(time.Duration(s.now))
	eng := n.eng
	s.cur = y
	if eng != nil && s.cfg.Overlay == OverlayFull {
		for _, v := range s.sideList[1-n.side] {
			eng.PeerDown(now, v)
		}
	}
	kept := n.adj[:0]
	for _, z := range n.adj {
		if s.nodes[z].side != n.side {
			if eng != nil && s.cfg.Overlay == OverlayPaper {
				eng.PeerDown(now, z)
			}
			n.lost = append(n.lost, z)
			continue
		}
		kept = append(kept, z)
	}
	clear(n.adj[len(kept):])
	n.adj = kept
	if eng != nil {
		s.drain(y)
	}
	s.repair(y)
}

// heal restores the links; in Partition, every node learns after the
// detection delay that the other side is back.
func (s *sim) heal() {
	s.cutOn, s.healAt = false, s.now
	if s.cfg.Scenario != Partition {
		return
	}
	s.viewCut = false
	dd := int64(s.cfg.DetectDelay)
	for i := range s.nodes {
		if s.nodes[i].up() {
			y := int32(i)
			s.action(s.now+dd+s.scRng.Int64N(dd/2+1), func() { s.healDetect(y) })
		}
	}
}

// healDetect is node y learning that the other side is back: on
// OverlayFull every member of it comes up again; on OverlayPaper (and the
// flood graph) the neighbours lost to the cut are linked again, room
// permitting (twice the degree, the engine's caps there).
func (s *sim) healDetect(y int32) {
	n := &s.nodes[y]
	if !n.up() {
		return
	}
	now := base.Add(time.Duration(s.now))
	s.cur = y
	if eng := n.eng; eng != nil && s.cfg.Overlay == OverlayFull {
		for _, v := range s.sideList[1-n.side] {
			if s.nodes[v].up() {
				eng.PeerUp(now, v)
			}
		}
		s.drain(y)
	}
	lost := n.lost
	n.lost = nil
	for _, z := range lost {
		if !s.nodes[z].up() || len(s.nodes[y].adj) >= 2*s.target || len(s.nodes[z].adj) >= 2*s.target {
			continue
		}
		if s.link(y, z) && s.cfg.Overlay == OverlayPaper {
			s.peerUp(y, z)
			s.peerUp(z, y)
		}
	}
}

// cutSummary computes Result.Cut.
func (s *sim) cutSummary(bs []BroadcastResult) *CutSummary {
	cs := &CutSummary{SideA: s.sideN[0], SideB: s.sideN[1], CutAtMS: ms(s.cutAt), HealAtMS: ms(s.healAt),
		RecoveryMS: 0, ReliableAfterMS: 0, AfterHealReliabilityMin: 1}
	ttl := int64(s.ecfg.MessageCacheTTL)
	var last int64
	complete := true
	reliableFrom := int64(-1)
	for k, b := range bs {
		if b.Warmup {
			continue
		}
		st := s.bc[k]
		cs.Lost += b.Correct - b.Delivered
		if b.Reliability < 1 {
			cs.NeverRecovered++
		}
		if st.cut {
			cs.During++
			if b.Reliability == 1 {
				cs.Complete++
				if st.last-st.at <= ttl {
					cs.InCache++
				}
			}
		}
		if st.at < s.healAt {
			if b.Reliability < 1 {
				complete = false
			}
			last = max(last, st.last)
			continue
		}
		cs.AfterHeal++
		cs.AfterHealReliabilityMin = min(cs.AfterHealReliabilityMin, b.Reliability)
		if b.Reliability < 1 {
			reliableFrom = -1
		} else if reliableFrom < 0 {
			reliableFrom = st.at
		}
	}
	if complete {
		cs.RecoveryMS = ms(max(last-s.healAt, 0))
	} else {
		cs.RecoveryMS = -1
	}
	switch {
	case cs.AfterHeal == 0:
	case reliableFrom < 0:
		cs.ReliableAfterMS = -1
	default:
		cs.ReliableAfterMS = ms(reliableFrom - s.healAt)
	}
	for i := range s.nodes {
		n := &s.nodes[i]
		if !n.up() || n.eng == nil {
			continue
		}
		for _, set := range [][]int32{n.eng.EagerPeers(), n.eng.LazyPeers()} {
			for _, p := range set {
				if s.nodes[p].side != n.side {
					cs.CrossLinks++
				}
			}
		}
	}
	return cs
}

// windows summarizes the measured broadcasts w at a time, with a window
// starting at the measured broadcast anchor.
func windows(bs []BroadcastResult, w, anchor int) []Window {
	var m []BroadcastResult
	for _, b := range bs {
		if !b.Warmup {
			m = append(m, b)
		}
	}
	if w <= 0 || len(m) == 0 {
		return nil
	}
	var out []Window
	from := 0
	next := anchor % w
	if next == 0 {
		next = w
	}
	for from < len(m) {
		to := min(next, len(m))
		out = append(out, window(m, from, to))
		from, next = to, to+w
	}
	return out
}

func window(m []BroadcastResult, from, to int) Window {
	w := Window{From: from, To: to, ReliabilityMin: 1}
	for _, b := range m[from:to] {
		w.ReliabilityMin = min(w.ReliabilityMin, b.Reliability)
		w.RMRMean += b.RMR
		w.RMRMax = max(w.RMRMax, b.RMR)
		w.LDHMean += float64(b.LDH)
		w.LDHMax = max(w.LDHMax, b.LDH)
		w.GraftsMean += float64(b.Graft)
		w.PayloadsMean += float64(b.Payloads)
		w.LastDeliveryMax = max(w.LastDeliveryMax, b.LastDeliveryMS)
	}
	n := float64(to - from)
	w.RMRMean = round(w.RMRMean/n, 6)
	w.RMRMax = round(w.RMRMax, 6)
	w.LDHMean = round(w.LDHMean/n, 3)
	w.GraftsMean = round(w.GraftsMean/n, 3)
	w.PayloadsMean = round(w.PayloadsMean/n, 3)
	return w
}

// windowAnchor is the measured broadcast a window starts at: the failure,
// the heal, or the first.
func (c *Config) windowAnchor() int {
	switch {
	case c.Scenario == Failure:
		return c.FailAt
	case c.cutScenario():
		return min(c.CutAt+c.CutFor, c.Broadcasts)
	}
	return 0
}
