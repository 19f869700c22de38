package gossip

// The protocol loop: one goroutine owns the engine and everything it touches.

import (
	"fmt"
	"time"

	"github.com/plumtree-go/plumtree/transport"
)

func (p *Plumtree[ID, M]) loop() {
	defer p.wg.Done()
	defer func() {
		for id := range p.peers {
			p.dropPeer(id)
		}
		p.senders.Wait()
		close(p.deliveries)
	}()

	var dgCh, stCh <-chan transport.Message
	if p.dg != nil {
		dgCh = p.dg.Datagrams()
	}
	if p.st != nil {
		stCh = p.st.Frames()
	}
	memCh := p.o.Membership.Events()
	timer := p.clock.NewTimer(time.Hour)
	defer timer.Stop()
	armed := true
	var holdUntil time.Time // after a stuck deadline: no tick before this
	reconcile := p.clock.NewTimer(p.cfg.ReconcileInterval)
	defer reconcile.Stop()

	for {
		p.flushOutbox()
		// Re-arm the single engine timer for the next deadline, after
		// every event. Keeping it armed while the deadline stays the same
		// (31c8dc1, reverted) saved no measurable CPU, and under -race it
		// crashed ThreadSanitizer inside synctest bubbles (golang/go#78156
		// again): TestClusterCrash hit SIGSEGV in __tsan::SlotLock in each
		// of 3 runs of -count=30.
		if armed && !timer.Stop() {
			select {
			case <-timer.C():
			default:
			}
		}
		armed = false
		tick := timer.C()
		if d := p.eng.NextDeadline(); !d.IsZero() {
			if d.Before(holdUntil) {
				d = holdUntil
			}
			if wait := d.Sub(p.clock.Now()); wait > 0 {
				timer.Reset(wait)
				armed = true
			} else {
				// Already due: never Reset a timer to zero or less. Inside a
				// synctest bubble the runtime then fires the timer inline on
				// this goroutine's thread, sharing the bubble's single race
				// context with other threads, which corrupts ThreadSanitizer
				// under -race (golang/go#78156).
				tick = dueNow
			}
		}
		select {
		case <-p.stop:
			return
		case req := <-p.bcast:
			p.onBroadcast(req)
		case <-p.flow.room:
			p.onRoom(p.clock.Now())
		case m, ok := <-dgCh:
			if !ok {
				dgCh = nil
				continue
			}
			p.streamsFirst(stCh)
			p.receive(m)
		case m, ok := <-stCh:
			if !ok {
				stCh = nil
				continue
			}
			p.receive(m)
		case ev, ok := <-memCh:
			if !ok {
				memCh = nil
				continue
			}
			p.onMembership(ev)
		case <-tick:
			armed = false
			now := p.clock.Now()
			p.eng.Tick(now)
			holdUntil = p.checkDeadline(now, holdUntil)
		case <-reconcile.C():
			p.reconcile(p.clock.Now())
			p.onRoom(p.clock.Now()) // held announcements past their time
			reconcile.Reset(p.cfg.ReconcileInterval)
		case fn := <-p.queries:
			fn()
		}
	}
}

// stuckBackoff is how long the runner waits before it ticks an engine
// again that kept a deadline it was just ticked for.
const stuckBackoff = 100 * time.Millisecond

// checkDeadline runs right after Tick(now). A deadline in the past is
// handled once: an engine whose next deadline is still at or before now
// would have the loop tick it again at once, forever, at full CPU (and,
// inside a synctest bubble, with the clock unable to advance). That is an
// engine bug: it is logged (once per stuck deadline), counted in
// Stats.StuckDeadlines and reported as EventStuckDeadline, and the loop
// ticks again only stuckBackoff later. It returns the time before which the
// loop must not tick (zero when the engine is well).
func (p *Plumtree[ID, M]) checkDeadline(now, hold time.Time) time.Time {
	d := p.eng.NextDeadline()
	if d.IsZero() || d.After(now) {
		return time.Time{}
	}
	p.stuck.Add(1)
	err := fmt.Errorf("gossip: engine deadline %v still due after Tick at %v (engine stats %+v)", d, now, p.eng.Stats())
	p.emit(Event{Kind: EventStuckDeadline, Err: err})
	if hold.IsZero() {
		p.log.Error("gossip: the engine keeps asking to be woken for a deadline it was ticked for; ticking it every "+stuckBackoff.String()+" instead", "err", err)
	}
	return now.Add(stuckBackoff)
}

// dueNow is a closed channel: receiving from it never blocks. The loop
// selects on it instead of the engine timer when a deadline is already due.
var dueNow = func() <-chan time.Time {
	c := make(chan time.Time)
	close(c)
	return c
}()

func (p *Plumtree[ID, M]) emit(e Event) {
	if p.o.Observer != nil {
		p.o.Observer.Observe(e)
	}
}
