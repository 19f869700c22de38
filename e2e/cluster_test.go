//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// nodePort is every node's broadcast port; memberlist uses the next one.
const nodePort = 7000

// tailLines is how many status lines of each node a failure shows.
const tailLines = 12

// cluster is the node processes of one network, what they printed, and the
// broadcasts the test made.
type cluster struct {
	t         *testing.T
	bin       string // the plumtree command
	transport string // udp+tcp or quic
	extra     []string
	nw        *network
	n         int

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced on every change
	procs    []*proc       // node i's current process; nil when killed
	gens     []int         // node i's process generation (restarts)
	members  []string      // node i's current process's last "members:" list
	memberAt []time.Time   // when the test read that list
	tails    [][]string    // node i's last status lines, across restarts
	deliv    map[string]map[procKey]*delivery
	sent     map[string]sentMsg
	crashed  []string       // processes that exited without being killed
	subs     sync.WaitGroup // the /subscribe readers
	// subscribed marks the processes driven through the HTTP API whose
	// /subscribe stream is open (see httpapi_test.go).
	subscribed map[procKey]bool
	seq        int
}

// procKey names one process: node index and generation.
type procKey struct{ node, gen int }

type delivery struct {
	count int       // how many times this process delivered the message
	first time.Time // when the test read the first one
	hops  int
}

type sentMsg struct {
	from int
	at   time.Time
}

// proc is one running node process.
type proc struct {
	key    procKey
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	killed bool          // by the test (c.mu)
	done   chan struct{} // closed when it has exited and its pipes are drained
}

func newCluster(t *testing.T, bin, transport string, extra []string, nw *network) *cluster {
	c := &cluster{t: t, bin: bin, transport: transport, extra: extra, nw: nw, n: len(nw.nodes),
		changed:    make(chan struct{}),
		deliv:      make(map[string]map[procKey]*delivery),
		sent:       make(map[string]sentMsg),
		subscribed: make(map[procKey]bool),
	}
	c.procs = make([]*proc, c.n)
	c.gens = make([]int, c.n)
	c.members = make([]string, c.n)
	c.memberAt = make([]time.Time, c.n)
	c.tails = make([][]string, c.n)
	t.Cleanup(c.stopAll)
	return c
}

// notify wakes the waiters. c.mu is held.
func (c *cluster) notify() {
	close(c.changed)
	c.changed = make(chan struct{})
}

func name(i int) string { return "n" + strconv.Itoa(i) }

// clusterAddr is node i's memberlist address.
func clusterAddr(i int) string { return nodeIP(i) + ":" + strconv.Itoa(nodePort+1) }

// start starts node i in its namespace, joining the memberlist addresses
// of the nodes in join.
func (c *cluster) start(i int, join []int) {
	c.t.Helper()
	var seeds []string
	for _, j := range join {
		seeds = append(seeds, clusterAddr(j))
	}
	args := []string{"netns", "exec", c.nw.nodes[i], c.bin, "node",
		"-listen", nodeIP(i) + ":" + strconv.Itoa(nodePort),
		"-name", name(i),
		"-transport", c.transport,
		"-preset", "lan",
	}
	if len(seeds) > 0 {
		args = append(args, "-join", strings.Join(seeds, ","))
	}
	if viaHTTP(i) {
		args = append(args, "-http", httpAddr(i))
	}
	args = append(args, c.extra...)
	cmd := exec.Command(ipPath, args...)
	// ip netns exec execs the command in place: the PID is the node's,
	// and it dies with the test process.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	c.mu.Lock()
	c.gens[i]++
	p := &proc{key: procKey{i, c.gens[i]}, cmd: cmd, stdin: stdin, done: make(chan struct{})}
	c.members[i] = ""
	c.mu.Unlock()
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start %s: %v", name(i), err)
	}
	c.mu.Lock()
	c.procs[i] = p
	c.mu.Unlock()

	var readers sync.WaitGroup
	readers.Add(2)
	go func() {
		defer readers.Done()
		if viaHTTP(i) { // its deliveries are read from /subscribe
			io.Copy(io.Discard, stdout)
			return
		}
		c.readDeliveries(p.key, stdout)
	}()
	go func() {
		defer readers.Done()
		c.readStatus(p.key, stderr)
	}()
	go func() {
		readers.Wait()
		err := cmd.Wait()
		c.mu.Lock()
		if !p.killed {
			c.crashed = append(c.crashed, fmt.Sprintf("%s (process %d) exited by itself: %v", name(i), p.key.gen, err))
		}
		if c.procs[i] == p {
			c.procs[i] = nil
		}
		c.notify()
		c.mu.Unlock()
		close(p.done)
	}()
}

// readDeliveries records each "origin (hops N): line" that process k prints.
func (c *cluster) readDeliveries(k procKey, r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		head, msg, ok := strings.Cut(line, "): ")
		if !ok {
			continue
		}
		_, hopStr, _ := strings.Cut(head, " (hops ")
		hops, _ := strconv.Atoi(hopStr)
		c.recordDelivery(k, msg, hops)
	}
}

// recordDelivery records that process k delivered msg after hops hops.
func (c *cluster) recordDelivery(k procKey, msg string, hops int) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	byProc := c.deliv[msg]
	if byProc == nil {
		byProc = make(map[procKey]*delivery)
		c.deliv[msg] = byProc
	}
	if d := byProc[k]; d != nil {
		d.count++
	} else {
		byProc[k] = &delivery{count: 1, first: now, hops: hops}
	}
	c.notify()
}

// readStatus keeps the last status lines of process k and its membership.
func (c *cluster) readStatus(k procKey, r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		c.mu.Lock()
		tail := append(c.tails[k.node], fmt.Sprintf("%s [%d] %s", time.Now().Format("15:04:05.000"), k.gen, line))
		if len(tail) > tailLines {
			tail = tail[len(tail)-tailLines:]
		}
		c.tails[k.node] = tail
		if viaHTTP(k.node) && strings.Contains(line, ": HTTP API on http://") {
			if p := c.procs[k.node]; p != nil && p.key == k {
				c.subs.Add(1)
				go func() {
					defer c.subs.Done()
					c.subscribe(k, p.done)
				}()
			}
		}
		// "node nX: members: N (a b c)"
		if _, rest, ok := strings.Cut(line, ": members: "); ok && c.gens[k.node] == k.gen {
			if _, list, ok := strings.Cut(rest, " ("); ok {
				c.members[k.node] = strings.TrimSuffix(list, ")")
				c.memberAt[k.node] = time.Now()
			}
		}
		c.notify()
		c.mu.Unlock()
	}
}

// wait waits until cond (called with c.mu held) holds, failing the test
// with every node's last status lines if guard passes first or a node
// exits by itself. onTimeout, if set, runs before the failure (to log
// figures).
func (c *cluster) wait(what string, guard time.Duration, cond func() bool, onTimeout func()) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	for {
		c.mu.Lock()
		ok := cond()
		crashed := slices.Clone(c.crashed)
		ch := c.changed
		c.mu.Unlock()
		if len(crashed) > 0 {
			c.t.Fatalf("%s: waiting for %s: %s\n%s", c.transport, what, strings.Join(crashed, "; "), c.dump())
		}
		if ok {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			if onTimeout != nil {
				onTimeout()
			}
			c.t.Fatalf("%s: waiting for %s: not done within %v (a hang guard, not a performance limit)\n%s", c.transport, what, guard, c.dump())
		}
	}
}

// dump is the last status lines of every node.
func (c *cluster) dump() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	for i := range c.n {
		state := "running"
		if c.procs[i] == nil {
			state = "not running"
		}
		fmt.Fprintf(&b, "--- %s (%s, process %d), last status lines:\n", name(i), state, c.gens[i])
		for _, l := range c.tails[i] {
			fmt.Fprintf(&b, "    %s\n", l)
		}
	}
	return b.String()
}

// membersAre reports whether node i's current process lists exactly want.
// c.mu is held.
func (c *cluster) membersAre(i int, want []int) bool {
	names := make([]string, len(want))
	for j, w := range want {
		names[j] = name(w)
	}
	slices.Sort(names)
	if viaHTTP(i) && !c.subscribed[procKey{i, c.gens[i]}] {
		return false // its deliveries would go unread
	}
	return c.members[i] == strings.Join(names, " ")
}

// waitMembers waits until each node in nodes lists exactly want, and
// returns when the last of them printed that list.
func (c *cluster) waitMembers(what string, nodes, want []int) time.Time {
	c.t.Helper()
	var at time.Time
	c.wait(what, 3*time.Minute, func() bool {
		var ok bool
		at, ok = c.membersAreAt(nodes, want)
		return ok
	}, nil)
	return at
}

// membersAreAt reports whether each node in nodes lists exactly want, and
// when the last of them printed that list. c.mu is held.
func (c *cluster) membersAreAt(nodes, want []int) (time.Time, bool) {
	var at time.Time
	for _, i := range nodes {
		if !c.membersAre(i, want) {
			return time.Time{}, false
		}
		if c.memberAt[i].After(at) {
			at = c.memberAt[i]
		}
	}
	return at, true
}

// broadcast has node i broadcast a new unique line and returns it.
func (c *cluster) broadcast(scenario string, i int) string {
	c.t.Helper()
	c.mu.Lock()
	c.seq++
	msg := fmt.Sprintf("e2e %s %s %d from %s", scenario, c.transport, c.seq, name(i))
	p := c.procs[i]
	c.sent[msg] = sentMsg{from: i, at: time.Now()}
	c.mu.Unlock()
	if p == nil {
		c.t.Fatalf("broadcast from %s, which is not running", name(i))
	}
	if viaHTTP(i) {
		if err := c.publish(i, msg); err != nil {
			c.t.Fatalf("broadcast from %s through its HTTP API: %v\n%s", name(i), err, c.dump())
		}
	} else if _, err := io.WriteString(p.stdin, msg+"\n"); err != nil {
		c.t.Fatalf("broadcast from %s: %v\n%s", name(i), err, c.dump())
	}
	return msg
}

// kill kills node i with SIGKILL and waits for the process to be gone.
func (c *cluster) kill(i int) {
	c.t.Helper()
	if err := c.killProc(i); err != nil {
		c.t.Fatal(err)
	}
}

func (c *cluster) killProc(i int) error {
	c.mu.Lock()
	p := c.procs[i]
	if p != nil {
		p.killed = true
	}
	c.mu.Unlock()
	if p == nil {
		return nil
	}
	// An error means the process has exited already: done tells.
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
		return nil
	case <-time.After(time.Minute): // a hang guard
		return fmt.Errorf("%s did not exit within a minute of SIGKILL", name(i))
	}
}

// stopAll kills every node still running (t.Cleanup).
func (c *cluster) stopAll() {
	for i := range c.n {
		if err := c.killProc(i); err != nil {
			c.t.Error(err)
		}
	}
	c.subs.Wait() // each ends with its process
}

// receivers returns the nodes of to that should deliver m: all but its
// origin (a node does not deliver its own broadcasts). c.mu is held.
func (c *cluster) receivers(m string, to []int) []int {
	from := c.sent[m].from
	out := make([]int, 0, len(to))
	for _, i := range to {
		if i != from {
			out = append(out, i)
		}
	}
	return out
}

// delivered reports whether the current process of every node in to has
// delivered every message in msgs (except at its origin). c.mu is held.
func (c *cluster) delivered(msgs []string, to []int) bool {
	for _, m := range msgs {
		for _, i := range c.receivers(m, to) {
			if c.deliv[m][procKey{i, c.gens[i]}] == nil {
				return false
			}
		}
	}
	return true
}

// missing lists up to limit (message, node) pairs not yet delivered.
func (c *cluster) missing(msgs []string, to []int, limit int) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, m := range msgs {
		for _, i := range c.receivers(m, to) {
			if c.deliv[m][procKey{i, c.gens[i]}] == nil && len(out) < limit {
				out = append(out, fmt.Sprintf("%q at %s", m, name(i)))
			}
		}
	}
	return out
}

// waitDelivered waits until every node in to has delivered every message
// in msgs; r names the figures logged if that never happens.
func (c *cluster) waitDelivered(what string, msgs []string, to []int, r *row) {
	c.t.Helper()
	c.wait(what, 3*time.Minute, func() bool { return c.delivered(msgs, to) }, func() {
		c.tally(r, msgs, to)
		r.note = "INCOMPLETE: " + what + "; missing, first ones: " + strings.Join(c.missing(msgs, to, 5), ", ")
		record(c.t, *r)
	})
}

// tally fills r's delivery figures for msgs expected at the current
// processes of the nodes in to, their origins excepted.
func (c *cluster) tally(r *row, msgs []string, to []int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r.transport = c.transport
	r.broadcast = len(msgs)
	r.expected, r.seen, r.dups = 0, 0, 0
	for _, m := range msgs {
		for _, i := range c.receivers(m, to) {
			r.expected++
			if d := c.deliv[m][procKey{i, c.gens[i]}]; d != nil {
				r.seen++
				r.dups += d.count - 1
			}
		}
	}
	r.losses = r.expected - r.seen
}

// duplicates counts, over every message and every process, the deliveries
// past the first.
func (c *cluster) duplicates() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, byProc := range c.deliv {
		for _, d := range byProc {
			n += d.count - 1
		}
	}
	return n
}

// lastDelivery is when the last of msgs first reached the last of the
// current processes of to.
func (c *cluster) lastDelivery(msgs []string, to []int) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	var last time.Time
	for _, m := range msgs {
		for _, i := range c.receivers(m, to) {
			if d := c.deliv[m][procKey{i, c.gens[i]}]; d != nil && d.first.After(last) {
				last = d.first
			}
		}
	}
	return last
}

// worstLatency describes the longest time from a broadcast of msgs to
// its first delivery at one of to: how long, which message, where.
func (c *cluster) worstLatency(msgs []string, to []int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var worst time.Duration
	where := "none"
	for _, m := range msgs {
		for _, i := range c.receivers(m, to) {
			if d := c.deliv[m][procKey{i, c.gens[i]}]; d != nil {
				if l := d.first.Sub(c.sent[m].at); l > worst {
					worst = l
					where = fmt.Sprintf("%v (%q at %s, %d hops)", l.Round(time.Millisecond), m, name(i), d.hops)
				}
			}
		}
	}
	return where
}
