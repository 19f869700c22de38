package sim

// event kinds
const (
	evMsg    uint8 = iota // a Plumtree message arrives: arg is its slot in sim.msgs
	evFlood               // a flooded payload arrives: arg is the broadcast, hops its hop count
	evTick                // a node's engine deadline
	evAction              // a scenario step: arg indexes sim.acts
)

// event is one entry of the discrete-event queue. Events run in (at, seq)
// order; seq is the order in which they were scheduled, so ties are broken
// deterministically.
type event struct {
	at   int64 // virtual nanoseconds since the start
	seq  uint64
	arg  int32
	to   int32
	from int32
	hops uint32
	kind uint8
}

func (e *event) before(o *event) bool {
	if e.at != o.at {
		return e.at < o.at
	}
	return e.seq < o.seq
}

// queue is a binary min-heap of events (by value, no interface boxing).
type queue []event

func (q *queue) push(e event) {
	h := append(*q, e)
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !h[i].before(&h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
	*q = h
}

func (q *queue) pop() event {
	h := *q
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h = h[:last]
	i := 0
	for {
		l := 2*i + 1
		if l >= len(h) {
			break
		}
		m := l
		if r := l + 1; r < len(h) && h[r].before(&h[l]) {
			m = r
		}
		if !h[m].before(&h[i]) {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	*q = h
	return top
}
