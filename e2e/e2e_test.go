//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plumtree-go/plumtree/transport/devcert"
)

const (
	clusterSize = 10
	sideASize   = 5 // nodes 0-4 on side A, 5-9 on side B
	// pace is the interval between broadcasts while the cluster changes.
	pace = 100 * time.Millisecond
	// guard breaks a hang in a loop that waits for the cluster; it is no
	// performance limit.
	guard = 3 * time.Minute
)

// victims are the nodes killed with SIGKILL: 30% of the cluster, two on
// side A and one on side B, the first seed spared so that the others' seed
// list is not the only thing tested.
var victims = []int{1, 4, 7}

// scenarioDefinitions says what each scenario's time to recover measures.
var scenarioDefinitions = []string{
	"steady: all nodes up; time to recover: none (the worst broadcast-to-last-delivery latency is in the note)",
	"kill 30%: SIGKILL of 3 nodes while survivors broadcast every 100 ms; expected: every survivor broadcast at every survivor; time to recover: from the kill until every survivor lists only the survivors and every survivor broadcast sent until then has reached every survivor",
	"restart: the killed nodes start again (same name and address); expected: every broadcast made once all ten list all ten, at all ten; time to recover: from the restart until all ten list all ten",
	"partition: side A (5 nodes) cut from side B (5) until each side lists only itself, broadcasts on both sides, heal; expected: every broadcast of the cut at all ten; time to recover: from the heal until the last cross-side delivery",
	"after heal: broadcasts once all ten list all ten again; expected: each at all ten; time to recover: from the heal until all ten list all ten",
}

// row is one scenario's figures.
type row struct {
	scenario, transport string
	broadcast           int // messages broadcast
	expected            int // deliveries expected
	seen                int // of those, deliveries seen
	losses              int // expected - seen
	dups                int // deliveries of a message a process had delivered already
	recover             time.Duration
	note                string
}

func (r *row) String() string {
	return fmt.Sprintf("scenario %q transport %s: broadcast %d, deliveries expected %d, seen %d, losses %d, duplicates %d, time to recover %v; %s",
		r.scenario, r.transport, r.broadcast, r.expected, r.seen, r.losses, r.dups, r.recover.Round(time.Millisecond), r.note)
}

var (
	reportMu sync.Mutex
	report   []row
)

func record(t *testing.T, r row) {
	t.Helper()
	t.Logf("FIGURES %s", &r)
	reportMu.Lock()
	report = append(report, r)
	reportMu.Unlock()
}

// TestFaults runs the fault scenarios on ten node processes in network
// namespaces, over UDP+TCP and over QUIC: every broadcast of a node that
// stays correct reaches every node that stays correct, through kills,
// restarts and a partition longer than failure detection.
func TestFaults(t *testing.T) {
	requireNetns(t)
	bin := buildPlumtree(t)
	for _, tr := range []struct{ name, tag string }{{"udp+tcp", "u"}, {"quic", "q"}} {
		t.Run(tr.name, func(t *testing.T) { runScenarios(t, bin, tr.name, tr.tag) })
	}
	writeReport(t)
}

// buildPlumtree builds the plumtree command into a temporary directory.
func buildPlumtree(t *testing.T) string {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("e2e: needs the go command on PATH to build cmd/plumtree: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "plumtree")
	out, err := exec.Command(goCmd, "build", "-o", bin, "github.com/plumtree-go/plumtree/cmd/plumtree").CombinedOutput()
	if err != nil {
		t.Fatalf("go build ./cmd/plumtree: %v\n%s", err, out)
	}
	return bin
}

func indices(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

func runScenarios(t *testing.T, bin, transport, tag string) {
	nw := newNetwork(t, tag, clusterSize, sideASize)
	// Rejoin failed nodes every second, so that a healed partition merges
	// well within the message cache's TTL (a minute in the LAN preset).
	extra := []string{"-rejoin", "1s"}
	if transport == "quic" {
		dir := t.TempDir()
		if _, err := devcert.LoadOrCreateUnsafeCA(dir); err != nil {
			t.Fatal(err)
		}
		extra = append(extra, "-dev-tls", dir)
	}
	c := newCluster(t, bin, transport, extra, nw)
	all := indices(0, clusterSize)

	// Start: n0 first, then the others joining it.
	c.start(0, nil)
	c.waitMembers("n0 to start", []int{0}, []int{0})
	for i := 1; i < clusterSize; i++ {
		c.start(i, []int{0})
	}
	c.waitMembers("all ten nodes to list all ten", all, all)

	steady(t, c, all)
	survivors := killSome(t, c, all)
	restart(t, c, all, survivors)
	partition(t, c, all)
}

// broadcastRound broadcasts n messages from the nodes of from in turn, one
// every pace.
func broadcastRound(c *cluster, scenario string, from []int, n int) []string {
	tick := time.NewTicker(pace)
	defer tick.Stop()
	var msgs []string
	for k := range n {
		if k > 0 {
			<-tick.C
		}
		msgs = append(msgs, c.broadcast(scenario, from[k%len(from)]))
	}
	return msgs
}

// steady: all nodes up, broadcasts from all of them reach all of them.
func steady(t *testing.T, c *cluster, all []int) {
	r := row{scenario: "steady"}
	msgs := broadcastRound(c, "steady", all, 30)
	c.waitDelivered("the steady broadcasts at every node", msgs, all, &r)
	c.tally(&r, msgs, all)
	r.note = fmt.Sprintf("worst latency %s", c.worstLatency(msgs, all))
	record(t, r)
}

// killSome kills the victims with SIGKILL while broadcasts go on, and
// returns the survivors.
func killSome(t *testing.T, c *cluster, all []int) []int {
	r := row{scenario: "kill 30%"}
	var survivors []int
	for _, i := range all {
		if !slices.Contains(victims, i) {
			survivors = append(survivors, i)
		}
	}
	tick := time.NewTicker(pace)
	defer tick.Stop()

	// Before the kill, everyone broadcasts.
	var survivorMsgs, victimMsgs []string
	for k := range 2 * len(all) {
		<-tick.C
		from := all[k%len(all)]
		m := c.broadcast("kill", from)
		if slices.Contains(victims, from) {
			victimMsgs = append(victimMsgs, m)
		} else {
			survivorMsgs = append(survivorMsgs, m)
		}
	}
	killedAt := time.Now()
	for _, v := range victims {
		c.kill(v)
	}

	// The survivors go on broadcasting until each lists only the
	// survivors, then 20 more times.
	var detectedAt time.Time
	var beforeDetection []string // survivor broadcasts sent until detection
	after := 0
	for k := 0; after < 20; k++ {
		<-tick.C
		if time.Since(killedAt) > guard {
			t.Fatalf("%s: the survivors did not all list only the survivors within %v of the kill (a hang guard)\n%s", c.transport, guard, c.dump())
		}
		c.mu.Lock()
		at, ok := c.membersAreAt(survivors, survivors)
		c.mu.Unlock()
		if ok && detectedAt.IsZero() {
			detectedAt = at
			beforeDetection = slices.Clone(survivorMsgs)
		}
		if !detectedAt.IsZero() {
			after++
		}
		survivorMsgs = append(survivorMsgs, c.broadcast("kill", survivors[k%len(survivors)]))
	}
	c.waitDelivered("every survivor broadcast at every survivor", survivorMsgs, survivors, &r)
	c.tally(&r, survivorMsgs, survivors)
	recovered := detectedAt
	if last := c.lastDelivery(beforeDetection, survivors); last.After(recovered) {
		recovered = last
	}
	r.recover = recovered.Sub(killedAt)
	var vr row
	c.tally(&vr, victimMsgs, survivors)
	r.note = fmt.Sprintf("failures detected %v after the kill; worst latency %s; killed nodes' broadcasts before the kill (not required): %d of %d deliveries to survivors",
		detectedAt.Sub(killedAt).Round(time.Millisecond), c.worstLatency(survivorMsgs, survivors), vr.seen, vr.expected)
	record(t, r)
	return survivors
}

// restart starts the victims again under their names and addresses; once
// every node lists all ten, broadcasts from all reach all.
func restart(t *testing.T, c *cluster, all, survivors []int) {
	r := row{scenario: "restart"}
	c.mu.Lock()
	var before []string // every broadcast so far
	for m := range c.sent {
		before = append(before, m)
	}
	c.mu.Unlock()

	restartedAt := time.Now()
	for _, v := range victims {
		c.start(v, survivors)
	}
	joinedAt := c.waitMembers("all ten nodes to list all ten after the restart", all, all)
	msgs := broadcastRound(c, "restart", all, 30)
	c.waitDelivered("every broadcast after the restart at every node", msgs, all, &r)
	c.tally(&r, msgs, all)
	r.recover = joinedAt.Sub(restartedAt)

	// The exchange may bring a restarted process recent messages it never
	// saw (its previous process may have): counted, not required.
	c.mu.Lock()
	catchUp := 0
	for _, m := range before {
		for _, v := range victims {
			if c.deliv[m][procKey{v, c.gens[v]}] != nil {
				catchUp++
			}
		}
	}
	c.mu.Unlock()
	r.note = fmt.Sprintf("worst latency %s; earlier broadcasts delivered to the restarted processes by the exchange: %d",
		c.worstLatency(msgs, all), catchUp)
	record(t, r)
}

// partition cuts side A from side B until each side lists only itself,
// broadcasts on both sides, heals, and checks every broadcast of the cut
// reaches the other side; then broadcasts from all reach all.
func partition(t *testing.T, c *cluster, all []int) {
	sideA, sideB := indices(0, sideASize), indices(sideASize, clusterSize)
	r := row{scenario: "partition"}
	cutAt := time.Now()
	if err := c.nw.setLink(false); err != nil {
		t.Fatal(err)
	}
	healed := false
	t.Cleanup(func() {
		if !healed {
			_ = c.nw.setLink(true)
		}
	})
	detectedA := c.waitMembers("side A to list only side A", sideA, sideA)
	detectedB := c.waitMembers("side B to list only side B", sideB, sideB)
	detected := max(detectedA.Sub(cutAt), detectedB.Sub(cutAt))

	var msgsA, msgsB []string
	tick := time.NewTicker(pace)
	for k := range 20 {
		<-tick.C
		if k%2 == 0 {
			msgsA = append(msgsA, c.broadcast("partition", sideA[(k/2)%len(sideA)]))
		} else {
			msgsB = append(msgsB, c.broadcast("partition", sideB[(k/2)%len(sideB)]))
		}
	}
	tick.Stop()
	c.waitDelivered("side A's broadcasts during the cut at side A", msgsA, sideA, &r)
	c.waitDelivered("side B's broadcasts during the cut at side B", msgsB, sideB, &r)
	// Nothing crosses the cut: a delivery there would mean traffic went
	// around the namespaces.
	c.mu.Lock()
	crossed := 0
	for _, m := range msgsA {
		for _, i := range sideB {
			if c.deliv[m][procKey{i, c.gens[i]}] != nil {
				crossed++
			}
		}
	}
	c.mu.Unlock()
	if crossed > 0 {
		t.Errorf("%d deliveries crossed the cut", crossed)
	}

	healedAt := time.Now()
	if err := c.nw.setLink(true); err != nil {
		t.Fatal(err)
	}
	healed = true
	cutMsgs := append(slices.Clone(msgsA), msgsB...)
	c.waitDelivered("every broadcast of the cut at every node after the heal", cutMsgs, all, &r)
	c.tally(&r, cutMsgs, all)
	last := c.lastDelivery(msgsA, sideB)
	if lb := c.lastDelivery(msgsB, sideA); lb.After(last) {
		last = lb
	}
	r.recover = last.Sub(healedAt)
	r.note = fmt.Sprintf("cut %v (each side listed only itself %v after the cut), well past failure detection",
		healedAt.Sub(cutAt).Round(time.Millisecond), detected.Round(time.Millisecond))
	record(t, r)

	h := row{scenario: "after heal"}
	mergedAt := c.waitMembers("all ten nodes to list all ten after the heal", all, all)
	msgs := broadcastRound(c, "healed", all, 30)
	c.waitDelivered("every broadcast after the heal at every node", msgs, all, &h)
	c.tally(&h, msgs, all)
	h.recover = mergedAt.Sub(healedAt)
	h.note = fmt.Sprintf("worst latency %s; duplicates over the whole run (every message, every process): %d",
		c.worstLatency(msgs, all), c.duplicates())
	record(t, h)
	if d := c.duplicates(); d > 0 {
		t.Errorf("%d duplicate deliveries over the run", d)
	}
}

// writeReport logs the figures as a Markdown table, and writes it to the
// file named by E2E_REPORT, if set.
func writeReport(t *testing.T) {
	reportMu.Lock()
	defer reportMu.Unlock()
	var b strings.Builder
	b.WriteString("| scenario | transport | messages broadcast | deliveries expected | deliveries seen | losses | duplicates | time to recover | note |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range report {
		recover := "–" // steady, or a scenario that did not get that far
		if r.recover > 0 {
			recover = r.recover.Round(time.Millisecond).String()
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %d | %d | %s | %s |\n",
			r.scenario, r.transport, r.broadcast, r.expected, r.seen, r.losses, r.dups, recover, r.note)
	}
	b.WriteString("\n")
	for _, d := range scenarioDefinitions {
		fmt.Fprintf(&b, "- %s\n", d)
	}
	t.Logf("figures:\n%s", b.String())
	if path := os.Getenv("E2E_REPORT"); path != "" {
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Errorf("E2E_REPORT: %v", err)
		}
	}
}
