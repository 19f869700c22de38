package conformance

import (
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/plumtree-go/plumtree/membership"
)

// membershipRule is one rule of TestMembership: its name and sentence, and
// the function that checks it. The suite runs exactly the rules of
// membershipRules, in order.
type membershipRule[ID comparable] struct {
	Subtest
	check func(c *menv[ID])
}

// membershipRules is TestMembership's table, for IDs of type ID.
func membershipRules[ID comparable]() []membershipRule[ID] {
	return []membershipRule[ID]{
		{Subtest{"join", "Every node learns of every other node with its address, once: in its first Members snapshot or by one Join event, never twice; and every node's Members converges to the running nodes."}, ruleMembershipJoin[ID]},
		{Subtest{"leave", "When a node leaves gracefully, every other node reports one Leave for it (after its Join, with nothing after) and drops it from Members."}, ruleMembershipLeave[ID]},
		{Subtest{"fail", "When a node crashes, every other node reports one Fail for it (after its Join, with nothing after) and drops it from Members."}, ruleMembershipFail[ID]},
		{Subtest{"order", "A member's events arrive in the order they happened: a node that joins and leaves at once is reported join then leave (or not at all), never its departure first, and nothing after its departure."}, ruleMembershipOrder[ID]},
		{Subtest{"members-snapshot", "Members returns a snapshot the caller owns: changing the slice it returned does not change the view."}, ruleMembershipMembersSnapshot[ID]},
		{Subtest{"events-closed", "A node's Events channel is closed once the node is stopped, by Leave or by Crash."}, ruleMembershipEventsClosed[ID]},
	}
}

// membershipSubtests is the names and sentences of membershipRules (the
// same for every ID).
var membershipSubtests = func() []Subtest {
	rules := membershipRules[string]()
	st := make([]Subtest, len(rules))
	for i, r := range rules {
		st[i] = r.Subtest
	}
	return st
}()

// MembershipSubtests lists the rules TestMembership checks, for Skip.
func MembershipSubtests() []Subtest { return append([]Subtest(nil), membershipSubtests...) }

// pollEvery paces re-reading Members while waiting for a view to converge.
const pollEvery = 10 * time.Millisecond

// TestMembership checks a membership implementation with clusters from mk:
// nodes join, leave and crash, and every node's view must follow. Failure
// detection may take as long as the implementation needs, within the
// watchdog (see Watchdog).
func TestMembership[ID comparable](t *testing.T, mk MakeCluster[ID], opts ...Option) {
	t.Helper()
	testMembership(stdT{t}, mk, opts)
}

// watcher records the events one node reports.
type watcher[ID comparable] struct {
	node    MemberNode[ID]
	self    membership.Member[ID]
	initial map[ID]membership.Member[ID]

	mu     sync.Mutex
	events []membership.Event[ID]
	closed bool
	done   chan struct{}
}

func (w *watcher[ID]) read() {
	defer close(w.done)
	var events <-chan membership.Event[ID]
	if protectPanic("Events", func() { events = w.node.Events() }) != nil {
		return
	}
	for ev := range events {
		w.mu.Lock()
		w.events = append(w.events, ev)
		w.mu.Unlock()
	}
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}

// about returns the events w saw about id, in order.
func (w *watcher[ID]) about(id ID) []membership.Event[ID] {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []membership.Event[ID]
	for _, ev := range w.events {
		if ev.Member.ID == id {
			out = append(out, ev)
		}
	}
	return out
}

// knows reports whether w learned of m with m's address.
func (w *watcher[ID]) knows(m membership.Member[ID]) bool {
	if im, ok := w.initial[m.ID]; ok && im.Addr == m.Addr {
		return true
	}
	for _, ev := range w.about(m.ID) {
		if ev.Kind == membership.Join && ev.Member.Addr == m.Addr {
			return true
		}
	}
	return false
}

// mcluster is a cluster under test with a watcher per running node.
type mcluster[ID comparable] struct {
	c        *caseEnv
	cl       Cluster[ID]
	watchers []*watcher[ID]
}

func (mc *mcluster[ID]) start() *watcher[ID] {
	c := mc.c
	c.t.Helper()
	var n MemberNode[ID]
	var err error
	if !c.within("Cluster.Start", func() { n, err = mc.cl.Start() }) {
		c.t.Fatalf("Cluster.Start hung")
	}
	if err != nil {
		c.t.Fatalf("Cluster.Start: %v", err)
	}
	w := &watcher[ID]{node: n, self: n.Self(), initial: make(map[ID]membership.Member[ID]), done: make(chan struct{})}
	for _, m := range n.Members() {
		w.initial[m.ID] = m
	}
	for _, o := range mc.watchers {
		if o.self.ID == w.self.ID {
			c.t.Fatalf("Cluster.Start gave a node the ID %v of a running node", w.self.ID)
		}
	}
	go w.read()
	mc.watchers = append(mc.watchers, w)
	return w
}

// remove forgets w (it was stopped).
func (mc *mcluster[ID]) remove(w *watcher[ID]) {
	for i, o := range mc.watchers {
		if o == w {
			mc.watchers = append(mc.watchers[:i], mc.watchers[i+1:]...)
			return
		}
	}
}

// waitFor polls cond until it reports true, failing the case with its
// explanation when the watchdog fires.
func (mc *mcluster[ID]) waitFor(what string, cond func() (bool, string)) {
	c := mc.c
	c.t.Helper()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		ok, why := cond()
		if ok {
			return
		}
		select {
		case <-tick.C:
		case <-c.ctx.Done():
			c.t.Fatalf("watchdog: waiting for %s: %s", what, why)
		}
	}
}

// converged waits until every running node knows every other and its
// Members holds exactly the running nodes with their addresses.
func (mc *mcluster[ID]) converged() {
	mc.c.t.Helper()
	mc.waitFor("the views to converge", func() (bool, string) {
		for _, w := range mc.watchers {
			for _, o := range mc.watchers {
				if o == w {
					continue
				}
				if !w.knows(o.self) {
					return false, fmt.Sprintf("node %v has had no Join (nor a first snapshot) for %v at %s", w.self.ID, o.self.ID, o.self.Addr)
				}
			}
			if ok, why := mc.viewIsRunning(w); !ok {
				return false, why
			}
		}
		return true, ""
	})
}

// viewIsRunning reports whether w's Members are the running nodes (w itself
// optional) with their addresses.
func (mc *mcluster[ID]) viewIsRunning(w *watcher[ID]) (bool, string) {
	view := make(map[ID]string)
	for _, m := range w.node.Members() {
		view[m.ID] = m.Addr
	}
	for _, o := range mc.watchers {
		if o == w {
			continue
		}
		addr, ok := view[o.self.ID]
		if !ok {
			return false, fmt.Sprintf("node %v's Members lacks %v", w.self.ID, o.self.ID)
		}
		if addr != o.self.Addr {
			return false, fmt.Sprintf("node %v's Members gives %v the address %q, want %q", w.self.ID, o.self.ID, addr, o.self.Addr)
		}
		delete(view, o.self.ID)
	}
	delete(view, w.self.ID)
	for id := range view {
		return false, fmt.Sprintf("node %v's Members still holds %v, which is not running", w.self.ID, id)
	}
	return true, ""
}

// sentinel starts one more node and waits until every node knows it: events
// reported before it are then in every log, so counting them is fair.
func (mc *mcluster[ID]) sentinel() {
	mc.c.t.Helper()
	mc.start()
	mc.converged()
}

// checkJoins fails the case for any member joined twice at any node, or
// joined with the wrong address.
func (mc *mcluster[ID]) checkJoins(all []membership.Member[ID]) {
	c := mc.c
	c.t.Helper()
	for _, w := range mc.watchers {
		for _, m := range all {
			if m.ID == w.self.ID {
				continue
			}
			joins := 0
			for _, ev := range w.about(m.ID) {
				if ev.Kind == membership.Join {
					joins++
					if ev.Member.Addr != m.Addr {
						c.t.Errorf("node %v: Join for %v carries address %q, want %q", w.self.ID, m.ID, ev.Member.Addr, m.Addr)
					}
				}
			}
			if joins > 1 {
				c.t.Errorf("node %v reported %d Joins for %v", w.self.ID, joins, m.ID)
			}
		}
	}
}

// stopped waits until every running node has reported kind for gone and
// dropped it from Members, then checks the order of gone's events at each.
func (mc *mcluster[ID]) stopped(gone *watcher[ID], kind membership.EventKind) {
	c := mc.c
	c.t.Helper()
	mc.waitFor(fmt.Sprintf("every node to report %v for %v", kind, gone.self.ID), func() (bool, string) {
		for _, w := range mc.watchers {
			evs := w.about(gone.self.ID)
			found := false
			for _, ev := range evs {
				if ev.Kind == membership.Leave || ev.Kind == membership.Fail {
					found = true
				}
			}
			if !found {
				return false, fmt.Sprintf("node %v has reported no %v for %v (events about it: %v)", w.self.ID, kind, gone.self.ID, kinds(evs))
			}
			for _, m := range w.node.Members() {
				if m.ID == gone.self.ID {
					return false, fmt.Sprintf("node %v reported %v for %v but still lists it in Members", w.self.ID, kind, gone.self.ID)
				}
			}
		}
		return true, ""
	})
	mc.sentinel()
	for _, w := range mc.watchers {
		evs := w.about(gone.self.ID)
		ends := 0
		for i, ev := range evs {
			switch ev.Kind {
			case membership.Leave, membership.Fail:
				ends++
				if ev.Kind != kind {
					c.t.Errorf("node %v reported %v for %v; want %v", w.self.ID, ev.Kind, gone.self.ID, kind)
				}
				if i != len(evs)-1 {
					c.t.Errorf("node %v reported events for %v after its %v: %v", w.self.ID, gone.self.ID, ev.Kind, kinds(evs))
				}
			case membership.Join:
				if ends > 0 {
					c.t.Errorf("node %v reported a Join for %v after it was gone: %v", w.self.ID, gone.self.ID, kinds(evs))
				}
			}
		}
		if ends > 1 {
			c.t.Errorf("node %v reported %d departures of %v: %v", w.self.ID, ends, gone.self.ID, kinds(evs))
		}
	}
}

// count counts the members of a snapshot.
func count[ID comparable](ms []membership.Member[ID]) map[membership.Member[ID]]int {
	out := make(map[membership.Member[ID]]int)
	for _, m := range ms {
		out[m]++
	}
	return out
}

func kinds[ID comparable](evs []membership.Event[ID]) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.Kind.String()
	}
	return out
}

func testMembership[ID comparable](t tT, mk MakeCluster[ID], opts []Option) {
	t.Helper()
	s := newSuite(t, "Membership", membershipSubtests, opts)
	for _, r := range membershipRules[ID]() {
		s.run(t, r.Name, func(c *caseEnv) { r.check(&menv[ID]{caseEnv: c, mk: mk}) })
	}
}

// membershipNodes is how many nodes each membership case starts.
const membershipNodes = 4

// menv is the environment of one membership subtest.
type menv[ID comparable] struct {
	*caseEnv
	mk MakeCluster[ID]
}

// setup starts a cluster of membershipNodes nodes and waits until they
// agree.
func (e *menv[ID]) setup() *mcluster[ID] {
	c := e.caseEnv
	c.t.Helper()
	cl := e.mk(c.t.std())
	if cl == nil {
		c.t.Fatalf("MakeCluster returned nil")
	}
	mc := &mcluster[ID]{c: c, cl: cl}
	c.atFire(func() { cl.Close() })
	c.defer_(func() {
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := protectPanic("Cluster.Close", func() { cl.Close() }); err != nil {
				c.bgErrorf("%v", err)
			}
		}()
		timer := time.NewTimer(c.watchdog)
		defer timer.Stop()
		select {
		case <-done:
		case <-timer.C:
			c.t.Errorf("Cluster.Close did not return within %v", c.watchdog)
		}
	})
	for range membershipNodes {
		mc.start()
	}
	mc.converged()
	return mc
}

// members lists the nodes the cluster started.
func (mc *mcluster[ID]) members() []membership.Member[ID] {
	var out []membership.Member[ID]
	for _, w := range mc.watchers {
		out = append(out, w.self)
	}
	return out
}

func ruleMembershipJoin[ID comparable](c *menv[ID]) {
	mc := c.setup()
	all := mc.members()
	mc.sentinel()
	mc.checkJoins(all)
}

func ruleMembershipLeave[ID comparable](c *menv[ID]) {
	mc := c.setup()
	all := mc.members()
	gone := mc.watchers[1]
	if !c.within("Cluster.Leave", func() {
		if err := mc.cl.Leave(gone.node); err != nil {
			c.bgErrorf("Cluster.Leave: %v", err)
		}
	}) {
		return
	}
	mc.remove(gone)
	mc.stopped(gone, membership.Leave)
	mc.checkJoins(all)
}

func ruleMembershipFail[ID comparable](c *menv[ID]) {
	mc := c.setup()
	all := mc.members()
	gone := mc.watchers[2]
	if !c.within("Cluster.Crash", func() {
		if err := mc.cl.Crash(gone.node); err != nil {
			c.bgErrorf("Cluster.Crash: %v", err)
		}
	}) {
		return
	}
	mc.remove(gone)
	mc.stopped(gone, membership.Fail)
	mc.checkJoins(all)
}

func ruleMembershipOrder[ID comparable](c *menv[ID]) {
	mc := c.setup()
	x := mc.start()
	if !c.within("Cluster.Leave", func() {
		if err := mc.cl.Leave(x.node); err != nil {
			c.bgErrorf("Cluster.Leave: %v", err)
		}
	}) {
		return
	}
	mc.remove(x)
	mc.sentinel()
	// Each node has heard of x not at all, or of its whole life.
	mc.waitFor(fmt.Sprintf("every node's events about %v to end with its departure", x.self.ID), func() (bool, string) {
		for _, w := range mc.watchers {
			evs := w.about(x.self.ID)
			if n := len(evs); n > 0 && evs[n-1].Kind == membership.Join {
				if evs[0].Kind != membership.Join {
					// Out of order already; the check below says so.
					continue
				}
				return false, fmt.Sprintf("node %v has reported %v for %v", w.self.ID, kinds(evs), x.self.ID)
			}
		}
		return true, ""
	})
	for _, w := range mc.watchers {
		evs := w.about(x.self.ID)
		if len(evs) == 0 {
			continue
		}
		if evs[0].Kind != membership.Join {
			c.t.Errorf("node %v reported %v for %v, which joined then left: its %v came before its join", w.self.ID, kinds(evs), x.self.ID, evs[0].Kind)
			continue
		}
		for i, ev := range evs {
			if (ev.Kind == membership.Leave || ev.Kind == membership.Fail) && i != len(evs)-1 {
				c.t.Errorf("node %v reported %v for %v: events after its departure", w.self.ID, kinds(evs), x.self.ID)
			}
		}
	}
}

func ruleMembershipMembersSnapshot[ID comparable](c *menv[ID]) {
	mc := c.setup()
	for _, w := range mc.watchers {
		var got []membership.Member[ID]
		if perr := protectPanic("Members", func() { got = w.node.Members() }); perr != nil {
			c.t.Fatalf("%v", perr)
		}
		want := count(got)
		for i := range got {
			got[i] = membership.Member[ID]{Addr: "changed by the caller"}
		}
		var again []membership.Member[ID]
		if perr := protectPanic("Members", func() { again = w.node.Members() }); perr != nil {
			c.t.Fatalf("%v", perr)
		}
		if now := count(again); !maps.Equal(now, want) {
			c.t.Errorf("node %v: changing the slice Members returned changed what Members returns next (%v, was %v)", w.self.ID, again, want)
		}
	}
}

func ruleMembershipEventsClosed[ID comparable](c *menv[ID]) {
	mc := c.setup()
	left, crashed := mc.watchers[1], mc.watchers[2]
	if !c.within("Cluster.Leave", func() { _ = mc.cl.Leave(left.node) }) {
		return
	}
	if !c.within("Cluster.Crash", func() { _ = mc.cl.Crash(crashed.node) }) {
		return
	}
	for _, w := range []*watcher[ID]{left, crashed} {
		select {
		case <-w.done:
		case <-c.ctx.Done():
			c.t.Errorf("watchdog: the Events channel of stopped node %v was never closed", w.self.ID)
		}
	}
}
