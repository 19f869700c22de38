package sim

import (
	"math"
	"slices"
	"time"
)

// The scenarios' events: mass failure and its detection and repair, churn.

// massFailure fails FailFraction of the nodes at once.
func (s *sim) massFailure() {
	var up []int32
	for i := range s.nodes {
		if s.nodes[i].up() {
			up = append(up, int32(i))
		}
	}
	k := int(math.Round(s.cfg.FailFraction * float64(len(up))))
	s.scRng.Shuffle(len(up), func(i, j int) { up[i], up[j] = up[j], up[i] })
	victims := up[:k]
	slices.Sort(victims)
	s.fail(victims)
}

// fail takes the victims down now and schedules each affected node's
// detection of it.
func (s *sim) fail(victims []int32) {
	gone := make(map[int32]bool, len(victims))
	for _, v := range victims {
		s.nodes[v].failedAt = s.now
		s.nodes[v].eng = nil // its state is lost; free the memory
		gone[v] = true
	}
	s.tot.Failed += len(victims)
	var observers []int32
	if s.cfg.Overlay == OverlayFull {
		for i := range s.nodes {
			if s.nodes[i].up() {
				observers = append(observers, int32(i))
			}
		}
	} else {
		var mark bitset
		for _, v := range victims {
			for _, y := range s.nodes[v].adj {
				if s.nodes[y].up() && !mark.set(y) {
					observers = append(observers, y)
				}
			}
		}
		slices.Sort(observers)
	}
	dd := int64(s.cfg.DetectDelay)
	for _, y := range observers {
		t := s.now + dd + s.scRng.Int64N(dd/2+1)
		s.action(t, func() { s.detect(y, victims, gone) })
	}
}

// detect is node y learning that the victims failed.
func (s *sim) detect(y int32, victims []int32, gone map[int32]bool) {
	n := &s.nodes[y]
	if !n.up() {
		return
	}
	now := base.Add(time.Duration(s.now))
	eng := n.eng
	s.cur = y
	if eng != nil && s.cfg.Overlay == OverlayFull {
		for _, v := range victims {
			eng.PeerDown(now, v)
		}
	}
	kept := n.adj[:0]
	for _, z := range n.adj {
		if gone[z] {
			if eng != nil && s.cfg.Overlay == OverlayPaper {
				eng.PeerDown(now, z)
			}
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

// repair gives node y random live neighbours until it has the overlay's
// degree again (HyParView promotes passive-view members the same way).
func (s *sim) repair(y int32) {
	for tries := 0; len(s.nodes[y].adj) < s.target && tries < 64; tries++ {
		var z int32
		if s.viewCut {
			z = s.randomUpOn(s.ovRng, s.nodes[y].side)
		} else {
			z = s.randomUp(s.ovRng)
		}
		if len(s.nodes[z].adj) > s.target || !s.link(y, z) {
			continue
		}
		if s.cfg.Overlay == OverlayPaper {
			s.peerUp(y, z)
			s.peerUp(z, y)
		}
	}
}

func (s *sim) peerUp(i, j int32) {
	if e := s.nodes[i].eng; e != nil {
		s.cur = i
		e.PeerUp(base.Add(time.Duration(s.now)), j)
		s.drain(i)
	}
}

// churn fails one random node and adds a new one.
func (s *sim) churn() {
	v := s.randomUp(s.scRng)
	s.fail([]int32{v})

	j := int32(len(s.nodes))
	s.nodes = append(s.nodes, node{joinedAt: s.now, failedAt: math.MaxInt64})
	s.tot.Joined++
	s.repair(j) // in the paper overlay this tells the new neighbours (no engine yet for j)
	if s.cfg.Protocol != Plumtree {
		return
	}
	if err := s.newEngine(int(j)); err != nil {
		panic(err) // the configuration was validated
	}
	now := base.Add(time.Duration(s.now))
	s.cur = j
	if s.cfg.Overlay == OverlayPaper {
		s.nodes[j].eng.SetMembers(now, s.nodes[j].adj)
		s.drain(j)
		return
	}
	var all []int32
	for i := range s.nodes {
		if s.nodes[i].up() {
			all = append(all, int32(i))
		}
	}
	s.nodes[j].eng.SetMembers(now, all)
	s.drain(j)
	// The others hear of the join as membership spreads it.
	t := s.now + int64(s.cfg.DetectDelay) + s.scRng.Int64N(int64(s.cfg.DetectDelay)/2+1)
	s.action(t, func() {
		if !s.nodes[j].up() {
			return
		}
		for i := range s.nodes {
			if int32(i) != j && s.nodes[i].up() {
				s.peerUp(int32(i), j)
			}
		}
	})
}
