package gossip

// peerSet is a set with a stable, insertion-dependent order, so that the
// engine's output depends on its seed and inputs only, never on map order.
type peerSet[ID comparable] struct {
	list []ID
	idx  map[ID]int
}

func newPeerSet[ID comparable]() peerSet[ID] { return peerSet[ID]{idx: make(map[ID]int)} }

func (s *peerSet[ID]) has(id ID) bool { _, ok := s.idx[id]; return ok }
func (s *peerSet[ID]) len() int       { return len(s.list) }

func (s *peerSet[ID]) add(id ID) bool {
	if s.has(id) {
		return false
	}
	s.idx[id] = len(s.list)
	s.list = append(s.list, id)
	return true
}

// remove deletes id, moving the last element into its place.
func (s *peerSet[ID]) remove(id ID) bool {
	i, ok := s.idx[id]
	if !ok {
		return false
	}
	last := len(s.list) - 1
	if i != last {
		s.list[i] = s.list[last]
		s.idx[s.list[i]] = i
	}
	var zero ID
	s.list[last] = zero
	s.list = s.list[:last]
	delete(s.idx, id)
	return true
}

func (s *peerSet[ID]) snapshot() []ID { return append([]ID(nil), s.list...) }
