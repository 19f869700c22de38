package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	qgo "github.com/quic-go/quic-go"

	"github.com/plumtree-go/plumtree/codec"
	"github.com/plumtree-go/plumtree/gossip"
	"github.com/plumtree-go/plumtree/membership"
	"github.com/plumtree-go/plumtree/membership/static"
	"github.com/plumtree-go/plumtree/transport"
	"github.com/plumtree-go/plumtree/transport/devcert"
	"github.com/plumtree-go/plumtree/transport/quic"
	"github.com/plumtree-go/plumtree/transport/tcp"
	"github.com/plumtree-go/plumtree/transport/udp"
	"github.com/plumtree-go/plumtree/transport/udptcp"
)

// The intruder is this test binary started with PLUMTREE_TEST_INTRUDER set
// (see TestMain). It runs a real gossip node, with the right ID type and
// codec, that is joined to nothing: its static membership lists the real
// nodes' broadcast addresses (PLUMTREE_INTRUDER_PEERS, "id=addr,..."), and
// it broadcasts "NAME line N" (NAME from PLUMTREE_INTRUDER_NAME) every 50
// ms until its standard input ends, claiming the ID PLUMTREE_INTRUDER_ID.
// Its credentials depend on the mode:
//
//	secret  udp+tcp sealed with PLUMTREE_INTRUDER_SECRET (a wrong key)
//	plain   udp+tcp, unsealed
//	quic    QUIC with a certificate for PLUMTREE_INTRUDER_CERT from the
//	        development CA in the directory PLUMTREE_INTRUDER_CA
//
// It prints "intruder: sent N" after each broadcast and, at the end,
// "intruder: done: sent N, send errors E".
func intruder(mode string) int {
	if err := runIntruder(mode, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "intruder:", err)
		return 1
	}
	return 0
}

func runIntruder(mode string, in io.Reader, out io.Writer) error {
	id := os.Getenv("PLUMTREE_INTRUDER_ID")
	var tr transport.Transport
	var err error
	switch mode {
	case "secret", "plain":
		tr, err = udptcp.Listen("127.0.0.1:0", udp.Config{}, tcp.Config{})
		if err == nil && mode == "secret" {
			// The same sealing as a node's, with the intruder's key.
			tr, err = sealTransport("udp+tcp", tr, os.Getenv("PLUMTREE_INTRUDER_SECRET"))
		}
	case "quic":
		var ca *devcert.UnsafeCA
		if ca, err = devcert.LoadOrCreateUnsafeCA(os.Getenv("PLUMTREE_INTRUDER_CA")); err != nil {
			return err
		}
		conf, err := ca.UnsafeMutualTLS(os.Getenv("PLUMTREE_INTRUDER_CERT"), "127.0.0.1")
		if err != nil {
			return err
		}
		tr, err = quic.Listen("127.0.0.1:0", quic.Config{TLS: conf, HandshakeTimeout: 2 * time.Second})
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		return err
	}
	defer tr.Close()
	members := []membership.Member[string]{{ID: id, Addr: tr.LocalAddr()}}
	for _, p := range strings.Split(os.Getenv("PLUMTREE_INTRUDER_PEERS"), ",") {
		pid, addr, ok := strings.Cut(p, "=")
		if !ok {
			return fmt.Errorf("bad peer %q", p)
		}
		if pid != id {
			members = append(members, membership.Member[string]{ID: pid, Addr: addr})
		}
	}
	ms := static.New(members...)
	defer ms.Close()
	pt, err := gossip.New(gossip.LANConfig(), gossip.Options[string, []byte]{
		ID: id, Transport: tr, Membership: ms, Codec: codec.Bytes(),
	})
	if err != nil {
		return err
	}
	defer pt.Close()

	eof := make(chan struct{})
	go func() {
		io.Copy(io.Discard, in)
		close(eof)
	}()
	tick := time.NewTicker(50 * time.Millisecond) // pacing, not a bound on anything
	defer tick.Stop()
	for n := 1; ; n++ {
		select {
		case <-eof:
			st, err := pt.Stats()
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "intruder: done: sent %d, send errors %d\n", n-1, st.SendErrors)
			return nil
		case <-tick.C:
		}
		if _, err := pt.Broadcast(context.Background(), fmt.Appendf(nil, "%s line %d", os.Getenv("PLUMTREE_INTRUDER_NAME"), n)); err != nil {
			return err
		}
		fmt.Fprintf(out, "intruder: sent %d\n", n)
	}
}

// secProc is a process started from this test binary.
type secProc struct {
	name   string
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *lineWriter
	status *lineWriter
	addr   string // broadcast address (nodes)
}

// startSecProc starts this test binary with args and env (a node with
// PLUMTREE_TEST_MAIN=1, an intruder with PLUMTREE_TEST_INTRUDER), collecting
// its standard output and error by line; the test's cleanup kills it.
func startSecProc(t *testing.T, name string, env []string, args ...string) *secProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Env = append(cmd.Env, "PLUMTREE_INTRUDER_NAME="+name)
	p := &secProc{name: name, cmd: cmd, out: &lineWriter{ch: make(chan struct{}, 1)}, status: &lineWriter{ch: make(chan struct{}, 1)}}
	cmd.Stdout, cmd.Stderr = p.out, p.status
	var err error
	if p.in, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return p
}

// waitSecLines waits until ok holds for w's lines, with a generous bound that
// only breaks a hang.
func waitSecLines(t *testing.T, w *lineWriter, what string, ok func() bool) {
	t.Helper()
	timeout := time.After(2 * time.Minute)
	for !ok() {
		select {
		case <-w.ch:
		case <-timeout:
			w.mu.Lock()
			defer w.mu.Unlock()
			t.Fatalf("waiting for %s; lines: %q", what, w.lines)
		}
	}
}

// fieldAfter returns the first field after marker in the first line that has it.
func fieldAfter(w *lineWriter, marker string) string {
	line := w.first(marker)
	if line == "" {
		return ""
	}
	rest := line[strings.Index(line, marker)+len(marker):]
	return strings.TrimSuffix(strings.Fields(rest)[0], ";")
}

// startSecCluster starts nodes a, b and c with the given extra flags, waits
// until each sees all three, and returns them with their broadcast
// addresses.
func startSecCluster(t *testing.T, flags ...string) []*secProc {
	t.Helper()
	start := func(name, join string) *secProc {
		args := append([]string{"node", "-name", name, "-listen", "127.0.0.1:0", "-cluster-listen", "127.0.0.1:0"}, flags...)
		if join != "" {
			args = append(args, "-join", join)
		}
		return startSecProc(t, name, []string{"PLUMTREE_TEST_MAIN=1"}, args...)
	}
	a := start("a", "")
	waitSecLines(t, a.status, "a to listen", func() bool { return a.status.has("cluster on ") })
	seed := fieldAfter(a.status, "cluster on ")
	procs := []*secProc{a, start("b", seed), start("c", seed)}
	for _, p := range procs {
		waitSecLines(t, p.status, p.name+" to see 3 members", func() bool { return p.status.has("members: 3 ") })
		p.addr = fieldAfter(p.status, "broadcast on ")
	}
	return procs
}

// secPeersEnv lists the nodes for the intruder.
func secPeersEnv(nodes []*secProc) string {
	var s []string
	for _, n := range nodes {
		s = append(s, n.name+"="+n.addr)
	}
	return "PLUMTREE_INTRUDER_PEERS=" + strings.Join(s, ",")
}

// intrudeAndCheck runs the intruders against the cluster: once each has
// broadcast a few times, every node types lines, which must reach every
// other node; the intruders go on for a while, then stop, and so do the
// nodes. No node may print an intruder's line, except those of control, a
// process with valid credentials, whose lines every node must print (so
// that the intruders' frames are known to be well formed and to reach the
// nodes). It returns the intruders' final lines and each node's "refused"
// line.
func intrudeAndCheck(t *testing.T, nodes, intruders []*secProc, control *secProc) (done map[string]string, refused map[string]string) {
	t.Helper()
	sent := func(p *secProc, n int) func() bool {
		return func() bool { return p.out.has(fmt.Sprintf("intruder: sent %d", n)) }
	}
	for _, x := range intruders {
		waitSecLines(t, x.out, x.name+" to broadcast", sent(x, 10))
	}
	for _, p := range nodes {
		fmt.Fprintf(p.in, "line from %s\n", p.name)
	}
	for _, p := range nodes {
		for _, q := range nodes {
			if q != p {
				text := "line from " + q.name
				waitSecLines(t, p.out, p.name+" to print "+text, func() bool { return p.out.count(q.name+" (hops ", text) == 1 })
			}
		}
	}
	for _, x := range intruders {
		waitSecLines(t, x.out, x.name+" to go on broadcasting", sent(x, 30))
		x.in.Close()
		if err := x.cmd.Wait(); err != nil {
			t.Errorf("%s: %v; %q", x.name, err, x.status.lines)
		}
	}
	done, refused = map[string]string{}, map[string]string{}
	for _, x := range intruders {
		done[x.name] = x.out.first("intruder: done")
	}
	for _, p := range nodes {
		if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range nodes {
		if err := p.cmd.Wait(); err != nil {
			t.Errorf("node %s: %v\n%q", p.name, err, p.status.lines)
		}
		for _, x := range intruders {
			l := p.out.first(x.name + " line ")
			if x == control && l == "" {
				t.Errorf("node %s printed no line of the control %s: %q", p.name, x.name, p.out.lines)
			}
			if x != control && l != "" {
				t.Errorf("node %s delivered a broadcast of %s: %q", p.name, x.name, l)
			}
		}
		refused[p.name] = p.status.first(": refused:")
		t.Log(refused[p.name])
	}
	for name, l := range done {
		t.Logf("%s: %s", name, l)
	}
	return done, refused
}

// secNumber returns the integer after label in line (-1 if absent).
func secNumber(line, label string) int {
	m := regexp.MustCompile(regexp.QuoteMeta(label) + ` (\d+)`).FindStringSubmatch(line)
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func secRandomKey(t *testing.T) string {
	k := make([]byte, 32)
	rand.Read(k)
	return base64.StdEncoding.EncodeToString(k)
}

// TestIntruderSecret: on udp+tcp with a cluster secret, an outside process
// that sends well-formed gossip (a real gossip node broadcasting to the
// nodes' addresses), sealed with another key or not sealed at all, gets
// nothing delivered or forwarded, and every node counts its frames as
// refused; the cluster's own broadcasts still reach everyone, and so do
// those of a control process with the right key. The nodes read their keys
// from a -secret-file with a second key (as during a rotation).
func TestIntruderSecret(t *testing.T) {
	t.Parallel() // processes only; runs beside TestIntruderTLS
	key := secRandomKey(t)
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte("# primary, then an extra key\n"+key+"\n\n"+secRandomKey(t)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	nodes := startSecCluster(t, "-transport", "udp+tcp", "-secret-file", file)
	peers := secPeersEnv(nodes)
	wrongKey := startSecProc(t, "wrong-key", []string{"PLUMTREE_TEST_INTRUDER=secret", peers,
		"PLUMTREE_INTRUDER_ID=mallory", "PLUMTREE_INTRUDER_SECRET=" + secRandomKey(t)})
	noKey := startSecProc(t, "no-key", []string{"PLUMTREE_TEST_INTRUDER=plain", peers,
		"PLUMTREE_INTRUDER_ID=a"}) // claims to be node a
	insider := startSecProc(t, "insider", []string{"PLUMTREE_TEST_INTRUDER=secret", peers,
		"PLUMTREE_INTRUDER_ID=insider", "PLUMTREE_INTRUDER_SECRET=" + key})
	_, refused := intrudeAndCheck(t, nodes, []*secProc{wrongKey, noKey, insider}, insider)
	for _, n := range nodes {
		line := refused[n.name]
		// Each node is an eager peer of both intruders: it got at least
		// their first broadcasts, and the no-key intruder's (not a) too.
		if secNumber(line, "unknown key") < 1 || secNumber(line, "seal") < 2 {
			t.Errorf("node %s: %q; want frames refused by the seal", n.name, line)
		}
	}
}

// TestIntruderTLS: on quic with mutual TLS, an outside process with a
// certificate from another CA (naming a real node) cannot connect at all
// (its sends fail), and one with a certificate from the right CA but for
// another name, claiming node a's ID, has its frames refused by gossip's
// identity check and counted; nothing of either is delivered, while the
// cluster's own broadcasts, and those of a control process with a
// certificate of its own from the right CA, reach everyone.
func TestIntruderTLS(t *testing.T) {
	t.Parallel() // processes only; runs beside TestIntruderSecret
	dir := t.TempDir()
	nodes := startSecCluster(t, "-transport", "quic", "-dev-tls", dir)
	peers := secPeersEnv(nodes)
	otherCA := startSecProc(t, "other-ca", []string{"PLUMTREE_TEST_INTRUDER=quic", peers,
		"PLUMTREE_INTRUDER_ID=b", "PLUMTREE_INTRUDER_CERT=b", "PLUMTREE_INTRUDER_CA=" + t.TempDir()})
	impostor := startSecProc(t, "impostor", []string{"PLUMTREE_TEST_INTRUDER=quic", peers,
		"PLUMTREE_INTRUDER_ID=a", "PLUMTREE_INTRUDER_CERT=mallory", "PLUMTREE_INTRUDER_CA=" + dir})
	insider := startSecProc(t, "insider", []string{"PLUMTREE_TEST_INTRUDER=quic", peers,
		"PLUMTREE_INTRUDER_ID=insider", "PLUMTREE_INTRUDER_CERT=insider", "PLUMTREE_INTRUDER_CA=" + dir})
	done, refused := intrudeAndCheck(t, nodes, []*secProc{otherCA, impostor, insider}, insider)
	if n := secNumber(done["other-ca"], "send errors"); n < 1 {
		t.Errorf("the intruder with another CA: %q; want failed sends", done["other-ca"])
	}
	for _, n := range nodes[1:] { // b and c; a drops frames naming itself
		if line := refused[n.name]; secNumber(line, "gossip") < 1 {
			t.Errorf("node %s: %q; want the impostor's frames refused by gossip", n.name, line)
		}
	}
}

// -secret takes comma-separated keys, the first the primary; -secret-file
// the same one per line; bad keys and both flags at once are refused.
func TestSecretFlags(t *testing.T) {
	k1, k2 := secRandomKey(t), base64.StdEncoding.EncodeToString(make([]byte, 16))
	keys, err := decodeSecrets(k1 + ", " + k2)
	if err != nil || len(keys) != 2 || len(keys[0]) != 32 || len(keys[1]) != 16 {
		t.Errorf("decodeSecrets: %d keys, %v", len(keys), err)
	}
	for _, bad := range []string{"not base64!", base64.StdEncoding.EncodeToString(make([]byte, 20)), k1 + ",", k1 + ",,"} {
		if _, err := decodeSecrets(bad); err == nil {
			t.Errorf("decodeSecrets(%q) accepted", bad)
		}
	}
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var secret string
	if err := readSecretFile(&secret, write("ok", "# comment\n\n  "+k1+"  \n"+k2+"\n")); err != nil || secret != k1+","+k2 {
		t.Errorf("readSecretFile: %q, %v", secret, err)
	}
	for name, text := range map[string]string{"empty": "# nothing\n\n", "bad": k1 + "\nxx\n"} {
		secret = ""
		if err := readSecretFile(&secret, write(name, text)); err == nil {
			t.Errorf("readSecretFile accepted the %s file", name)
		}
	}
	secret = k1
	if err := readSecretFile(&secret, write("both", k2)); err == nil {
		t.Error("-secret and -secret-file together were accepted")
	}
	secret = ""
	if err := readSecretFile(&secret, filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing file was accepted")
	}
	// A node refuses to start with a bad secret.
	if err := node(t.Context(), []string{"-transport", "udp+tcp", "-listen", "127.0.0.1:0", "-secret", "short"}, strings.NewReader(""), io.Discard, io.Discard); err == nil {
		t.Error("a node started with a bad -secret")
	}
}

// The impersonation attack, as an outsider on the same network mounts it:
// connections to a node's broadcast port that never send a frame, opened
// one after another for as long as the attack lasts. Over tcp (and the TCP
// half of udp+tcp) each one's hello claims the broadcast address of
// another member (a and c in turn): before connections had to prove their hello, each
// took a's reader slot at the attacked node (or waited for it and, after
// 10 s, closed a's real connection), so a's frames were held back again
// and again, and so were c's, which would have made up for them. Over quic there is no hello to claim an address with: the
// silent connections come from certificates of another CA (refused at the
// handshake) and from a certificate of the right CA for another name.
//
// Each case starts three node processes a, b and c, has a type lines (of
// 1,500 bytes, so that they go by stream on udp+tcp too) at a steady rate,
// and measures how long each takes from a's input to b's output: first
// without the attack, then under it. With a secret or TLS, b's delivery
// p99 under attack must stay within twice that of the run without it
// (with a floor of 50 ms for the run without, against the noise of a busy
// machine). Without either, nothing proves a hello, and the attack still
// works on tcp: the figures are logged, to show the limit the README
// states.
//
// It compares latencies on the real clock, so it is not part of the
// default suite (a timed assertion on a shared machine); the proof it
// measures is checked without timing by transport/tcp's
// TestImpersonationNeedsProof and transport/seal's TestWrapProvesTCPHellos.
// Measure with
//
//	PLUMTREE_ATTACK=1 go test -run TestIntruderImpersonation -v ./cmd/plumtree   (or .ci/attack)
func TestIntruderImpersonation(t *testing.T) {
	if os.Getenv("PLUMTREE_ATTACK") != "1" {
		t.Skip("a latency measurement of node processes under attack (2-3 minutes): run with PLUMTREE_ATTACK=1 or .ci/attack")
	}
	for _, c := range []struct {
		name, transport, security string
		bound                     bool // the attack must not slow b down
	}{
		{"tcp/secret", "tcp", "secret", true},
		{"tcp/tls", "tcp", "tls", true},
		{"udp+tcp/secret", "udp+tcp", "secret", true},
		{"quic/tls", "quic", "tls", true},
		{"tcp/none", "tcp", "none", false},
		{"udp+tcp/none", "udp+tcp", "none", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel() // processes, mostly waiting
			dir := t.TempDir()
			flags := []string{"-transport", c.transport}
			switch c.security {
			case "secret":
				file := filepath.Join(dir, "secret")
				if err := os.WriteFile(file, []byte(secRandomKey(t)+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				flags = append(flags, "-secret-file", file)
			case "tls":
				flags = append(flags, "-dev-tls", dir)
			}
			nodes := startSecCluster(t, flags...)
			a, b := nodes[0], nodes[1]
			warmUp(t, a, b)

			receivers := []*secProc{b, nodes[2]} // c, not attacked, for comparison
			calm := measureDeliveries(t, a, receivers, "calm", 400)
			p99calm := percentile(calm[0], 0.99)
			t.Logf("%s: without attack: b's delivery latency of a's lines p50 %v p99 %v max %v; c's p99 %v (400 lines)",
				c.name, percentile(calm[0], 0.5), p99calm, percentile(calm[0], 1), percentile(calm[1], 0.99))
			x := startImpostors(t, c.transport, c.security, dir, b.addr, []string{a.addr, nodes[2].addr})
			// The attack goes on through every window; a window whose p99
			// is out of bounds is measured again (up to 3 windows of 20 s):
			// a busy machine's noise passes, the attack's effect would not.
			bound := 2 * max(p99calm, 50*time.Millisecond)
			for w := 1; w <= 3; w++ {
				attacked := measureDeliveries(t, a, receivers, fmt.Sprintf("attacked%d", w), 400)
				p99 := percentile(attacked[0], 0.99)
				t.Logf("%s: under attack (window %d): b's delivery latency p50 %v p99 %v max %v; c's p99 %v (400 lines); %d silent connections opened so far, %d refused at their handshake",
					c.name, w, percentile(attacked[0], 0.5), p99, percentile(attacked[0], 1), percentile(attacked[1], 0.99),
					x.opened.Load(), x.refused.Load())
				if !c.bound || p99 <= bound {
					break
				}
				if w == 3 {
					t.Errorf("under attack, b's p99 is %v in 3 windows out of 3; want within 2x of %v (at most %v)", p99, p99calm, bound)
				}
			}
			x.stop()
			for _, n := range nodes {
				fmt.Fprintln(n.in, "bye")
				n.cmd.Process.Signal(os.Interrupt)
			}
			for _, n := range nodes {
				if err := n.cmd.Wait(); err != nil {
					t.Errorf("node %s: %v\n%q", n.name, err, n.status.lines)
				}
				t.Log(n.status.first(": refused:"))
			}
		})
	}
}

// impersonationLine is the size of the lines a types: over the datagram
// limit of gossip (1,024 bytes), so that they go by stream on every
// transport.
const impersonationLine = 1500

// warmUp has a type lines until b prints one, so that the tree has formed
// before anything is measured.
func warmUp(t *testing.T, a, b *secProc) {
	t.Helper()
	tick := time.NewTicker(100 * time.Millisecond) // pacing, not a bound
	defer tick.Stop()
	timeout := time.After(2 * time.Minute)
	for i := 0; !b.out.has("a (hops "); i++ {
		fmt.Fprintf(a.in, "warm-up %d\n", i)
		select {
		case <-tick.C:
		case <-timeout:
			t.Fatalf("b printed none of a's lines: %q", b.out.lines)
		}
	}
}

// measureDeliveries has a type n lines tagged tag, one every 50 ms, waits
// until each of the receivers has printed them all, and returns, for each,
// how long each line took from a's input to its output.
func measureDeliveries(t *testing.T, a *secProc, receivers []*secProc, tag string, n int) [][]time.Duration {
	t.Helper()
	pad := strings.Repeat("x", impersonationLine)
	sent := make(map[string]time.Time, n)
	tick := time.NewTicker(50 * time.Millisecond) // the rate of input
	defer tick.Stop()
	for i := range n {
		<-tick.C
		key := fmt.Sprintf("%s-%d", tag, i)
		sent[key] = time.Now()
		if _, err := fmt.Fprintf(a.in, "%s %s\n", key, pad); err != nil {
			t.Fatal(err)
		}
	}
	got := func(b *secProc) map[string]time.Time {
		b.out.mu.Lock()
		defer b.out.mu.Unlock()
		m := map[string]time.Time{}
		for i, l := range b.out.lines {
			_, text, ok := strings.Cut(l, "): ")
			if !ok || !strings.HasPrefix(l, "a (hops ") {
				continue
			}
			key, _, _ := strings.Cut(text, " ")
			if _, mine := sent[key]; mine {
				m[key] = b.out.stamps[i]
			}
		}
		return m
	}
	var all [][]time.Duration
	for _, b := range receivers {
		waitSecLines(t, b.out, fmt.Sprintf("%s to print a's %d %s lines", b.name, n, tag), func() bool { return len(got(b)) == n })
		var lat []time.Duration
		for key, at := range got(b) {
			lat = append(lat, at.Sub(sent[key]))
		}
		slices.Sort(lat)
		all = append(all, lat)
	}
	return all
}

// percentile returns the q-quantile of sorted durations (nearest rank).
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// impostors opens silent connections until stop.
type impostors struct {
	opened, refused atomic.Int64
	cancel          context.CancelFunc
	wg              sync.WaitGroup
}

func (x *impostors) stop() {
	x.cancel()
	x.wg.Wait()
}

// startImpostors opens a silent connection to target every 250 ms until
// stop, and holds them all open: over tcp with a hello claiming each of
// the addresses claims in turn (with TLS, from a certificate of the right
// CA for "mallory"); over quic, alternately from a certificate of another
// CA and from mallory's.
func startImpostors(t *testing.T, transportName, security, caDir, target string, claims []string) *impostors {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	x := &impostors{cancel: cancel}
	var mallory, foreign *tls.Config
	if security == "tls" {
		ca, err := devcert.LoadOrCreateUnsafeCA(caDir)
		if err != nil {
			t.Fatal(err)
		}
		if mallory, err = ca.UnsafeMutualTLS("mallory", "127.0.0.1"); err != nil {
			t.Fatal(err)
		}
		other, err := devcert.NewUnsafeCA()
		if err != nil {
			t.Fatal(err)
		}
		if foreign, err = other.UnsafeMutualTLS("a", "127.0.0.1"); err != nil {
			t.Fatal(err)
		}
	}
	x.wg.Add(1)
	go func() {
		defer x.wg.Done()
		tick := time.NewTicker(250 * time.Millisecond) // the attack's pace
		defer tick.Stop()
		var held []io.Closer
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			x.opened.Add(1)
			var c io.Closer
			var err error
			if transportName == "quic" {
				conf := mallory
				if i%2 == 0 {
					conf = foreign
				}
				c, err = silentQUIC(ctx, target, conf)
			} else {
				c, err = silentTCP(ctx, target, claims[i%len(claims)], mallory)
			}
			if err != nil {
				x.refused.Add(1)
			}
			if c != nil {
				held = append(held, c)
			}
		}
	}()
	return x
}

// silentTCP opens a connection to target (TLS if conf is set) whose hello
// claims the address claim, reads the answer (and the challenge, which it
// cannot answer) and returns the connection, to be held open and silent.
func silentTCP(ctx context.Context, target, claim string, conf *tls.Config) (io.Closer, error) {
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return nil, err
	}
	c := raw
	if conf != nil {
		conf = conf.Clone()
		conf.ServerName = "127.0.0.1"
		c = tls.Client(raw, conf)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	hello := append([]byte("PLTS"), tcp.ProtocolVersion, byte(len(claim)))
	if _, err := c.Write(append(hello, claim...)); err != nil {
		return raw, err
	}
	var reply [6]byte
	if _, err := io.ReadFull(c, reply[:]); err != nil {
		return raw, err
	}
	c.SetDeadline(time.Time{})
	return raw, nil
}

// silentQUIC completes a QUIC handshake with target with conf (as far as
// the server lets it) and returns the connection, to be held open and
// silent.
func silentQUIC(ctx context.Context, target string, conf *tls.Config) (io.Closer, error) {
	conf = conf.Clone()
	conf.NextProtos = []string{quic.ALPN}
	conf.ServerName = "127.0.0.1"
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	qc, err := qgo.DialAddr(ctx, target, conf, &qgo.Config{EnableDatagrams: true, KeepAlivePeriod: time.Second})
	if err != nil {
		return nil, err
	}
	return closerFunc(func() error { return qc.CloseWithError(0, "") }), nil
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }
