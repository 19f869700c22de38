//go:build e2e

package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// nsPrefix starts the name of every namespace the tests make; the test
// process's PID follows, so that parallel runs do not collide and the
// leftovers of a killed run can be told from those of a live one.
const nsPrefix = "pte2e-"

// subnet is the nodes' network, inside the namespaces only: node i has
// subnet.(10+i).
const subnet = "10.213.0."

// ipPath is iproute2's ip, found by requireNetns.
var ipPath string

// requireNetns skips t unless this process can make network namespaces:
// root, ip on the PATH (or in /usr/sbin, /sbin), and `ip netns add`
// working. It also deletes the namespaces of earlier runs whose process is
// gone.
func requireNetns(t *testing.T) {
	t.Helper()
	if uid := os.Geteuid(); uid != 0 {
		t.Skipf("e2e: needs root to create network namespaces (ip netns add); running as uid %d: run .ci/e2e or sudo go test -tags e2e ./e2e/", uid)
	}
	if ipPath == "" {
		p, err := exec.LookPath("ip")
		if err != nil {
			for _, c := range []string{"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip"} {
				if _, serr := os.Stat(c); serr == nil {
					p, err = c, nil
					break
				}
			}
		}
		if err != nil {
			t.Skipf("e2e: needs iproute2's ip command to create network namespaces: %v (apt-get install iproute2; .ci/e2e does it)", err)
		}
		ipPath = p
	}
	sweepOnce.Do(sweepLeftovers)
	probe := fmt.Sprintf("%s%d-probe", nsPrefix, os.Getpid())
	if err := ip("netns", "add", probe); err != nil {
		t.Skipf("e2e: cannot create a network namespace here (a container without CAP_SYS_ADMIN?): %v", err)
	}
	if err := ip("-n", probe, "link", "add", "probebr", "type", "bridge"); err != nil {
		_ = ip("netns", "del", probe)
		t.Skipf("e2e: cannot create a bridge in a network namespace (bridge module missing?): %v", err)
	}
	if err := ip("netns", "del", probe); err != nil {
		t.Fatalf("e2e: %v", err)
	}
}

// ip runs iproute2's ip with args.
func ip(args ...string) error {
	out, err := exec.Command(ipPath, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

var sweepOnce sync.Once

// sweepLeftovers deletes the namespaces named after a test process that no
// longer exists, after killing what still runs in them.
func sweepLeftovers() {
	out, err := exec.Command(ipPath, "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest, ok := strings.CutPrefix(name, nsPrefix)
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			continue // its test is still running (or the PID was reused): not ours to delete
		}
		killNamespacePIDs(name)
		_ = ip("netns", "del", name)
	}
}

// killNamespacePIDs kills every process in namespace name.
func killNamespacePIDs(name string) {
	out, err := exec.Command(ipPath, "netns", "pids", name).Output()
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// network is the namespaces of one cluster: a switch namespace with the
// bridges of side A and side B joined by a veth pair, and one namespace per
// node, attached to its side's bridge.
type network struct {
	sw    string   // the switch namespace
	nodes []string // node i's namespace
}

// newNetwork makes the namespaces of n nodes, the first sideA of them on
// side A, the rest on side B; tag tells apart the networks of one test
// process. t.Cleanup deletes everything, after killing what runs inside.
func newNetwork(t *testing.T, tag string, n, sideA int) *network {
	t.Helper()
	base := fmt.Sprintf("%s%d-%s-", nsPrefix, os.Getpid(), tag)
	nw := &network{sw: base + "sw"}
	var made []string
	t.Cleanup(func() {
		for _, ns := range made {
			killNamespacePIDs(ns)
			if err := ip("netns", "del", ns); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	must := func(args ...string) {
		t.Helper()
		if err := ip(args...); err != nil {
			t.Fatal(err)
		}
	}
	must("netns", "add", nw.sw)
	made = append(made, nw.sw)
	for _, cmd := range [][]string{
		{"link", "add", "brA", "type", "bridge"},
		{"link", "add", "brB", "type", "bridge"},
		{"link", "add", "abA", "type", "veth", "peer", "name", "abB"},
		{"link", "set", "abA", "master", "brA"},
		{"link", "set", "abB", "master", "brB"},
		{"link", "set", "brA", "up"},
		{"link", "set", "brB", "up"},
		{"link", "set", "abA", "up"},
		{"link", "set", "abB", "up"},
	} {
		must(append([]string{"-n", nw.sw}, cmd...)...)
	}
	for i := range n {
		ns := fmt.Sprintf("%sn%d", base, i)
		must("netns", "add", ns)
		made = append(made, ns)
		nw.nodes = append(nw.nodes, ns)
		br := "brB"
		if i < sideA {
			br = "brA"
		}
		port := fmt.Sprintf("p%d", i)
		// The veth is made in the switch namespace with its other end moved
		// straight into the node's: neither end is ever in the host's.
		must("-n", nw.sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
		must("-n", nw.sw, "link", "set", port, "master", br)
		must("-n", nw.sw, "link", "set", port, "up")
		must("-n", ns, "addr", "add", nodeIP(i)+"/24", "dev", "eth0")
		must("-n", ns, "link", "set", "lo", "up")
		must("-n", ns, "link", "set", "eth0", "up")
	}
	return nw
}

// nodeIP is node i's address.
func nodeIP(i int) string { return subnet + strconv.Itoa(10+i) }

// cut sets the link between the two sides down (up when heal).
func (nw *network) setLink(up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	return ip("-n", nw.sw, "link", "set", "abA", state)
}
