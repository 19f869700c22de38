package memberlist

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Rejoining: after a partition or the loss of every peer, the node joins
// again from the peers it knew.

// rejoinLoop joins one rejoin candidate every RejoinInterval, the next one
// in turn, until stop. join is memberlist's Join (a test's stand-in in
// tests); it is given one address at a time, so that the attempt that stop
// waits for is bounded by one address, and an unreachable candidate delays
// the others by one interval only.
func (m *Membership[ID]) rejoinLoop(local string, join func(addrs []string) (int, error)) {
	defer m.rejoinDone.Done()
	tick := time.NewTicker(m.cfg.RejoinInterval)
	defer tick.Stop()
	last := ""
	for {
		select {
		case <-m.rejoinStop:
			return
		case <-tick.C:
		}
		// An attempt that outlasted the interval leaves a tick ready beside
		// stop, and select picks at random: stop first, so that stop waits
		// for one attempt at most.
		select {
		case <-m.rejoinStop:
			return
		default:
		}
		addr, ok := m.rejoinTarget(time.Now(), local, last)
		if !ok {
			continue
		}
		last = addr
		if n, err := join([]string{addr}); n > 0 {
			m.log.Info("memberlist: rejoined", "addr", addr)
		} else {
			m.log.Debug("memberlist: rejoin failed", "addr", addr, "err", err)
		}
	}
}

// rejoinTarget returns the address to join now: among the candidates (the
// failed nodes' addresses, and Config.Join's when no other node is alive,
// except local), in address order, the first after last, or the first of
// all when none is after it. Each candidate that stays one is so returned
// within as many calls as there are candidates. It forgets the failed nodes
// missing for longer than RejoinTimeout.
func (m *Membership[ID]) rejoinTarget(now time.Time, local, last string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return "", false
	}
	var candidates []string
	add := func(a string) {
		if a != "" && a != local && !slices.Contains(candidates, a) {
			candidates = append(candidates, a)
		}
	}
	for name, f := range m.failed {
		if now.Sub(f.since) > m.cfg.RejoinTimeout {
			delete(m.failed, name)
			continue
		}
		add(f.mlAddr)
	}
	if len(m.nodes) == 0 {
		for _, a := range m.cfg.Join {
			add(a)
		}
	}
	if len(candidates) == 0 {
		return "", false
	}
	slices.Sort(candidates)
	for _, a := range candidates {
		if a > last {
			return a, true
		}
	}
	return candidates[0], true
}

// join joins the seeds and the saved peers, except the local address.
func (m *Membership[ID]) join(local string) error {
	var addrs []string
	for _, a := range m.cfg.Join {
		if a != local && !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	for _, p := range m.saved {
		if p.Addr != local && !slices.Contains(addrs, p.Addr) {
			addrs = append(addrs, p.Addr)
		}
	}
	if len(addrs) == 0 {
		return nil
	}
	n, err := m.ml.Join(addrs)
	if n > 0 {
		return nil
	}
	if len(m.cfg.Join) > 0 {
		return fmt.Errorf("memberlist: could not join any of %s: %w", strings.Join(addrs, ", "), err)
	}
	m.log.Warn("memberlist: could not reach any saved peer; starting alone", "file", m.cfg.PeersFile, "err", err)
	return nil
}
