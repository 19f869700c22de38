package bench

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// parseNetDev reads the transmit columns of the named interface.
func TestParseNetDev(t *testing.T) {
	const text = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 1234567    8901    0    0    0     0          0         0  1234568    8902    0    0    0     0       0          0
  eth0: 99 1 0 0 0 0 0 0 77 2 0 0 0 0 0 0
`
	b, p, err := parseNetDev([]byte(text), "lo")
	if err != nil || b != 1234568 || p != 8902 {
		t.Errorf("lo: %d bytes, %d packets, %v; want 1234568, 8902", b, p, err)
	}
	b, p, err = parseNetDev([]byte(text), "eth0")
	if err != nil || b != 77 || p != 2 {
		t.Errorf("eth0: %d bytes, %d packets, %v; want 77, 2", b, p, err)
	}
	if _, _, err := parseNetDev([]byte(text), "wlan0"); err == nil {
		t.Error("a missing interface gave no error")
	}
	if _, _, err := parseNetDev([]byte("  lo: 1 2 3\n"), "lo"); err == nil {
		t.Error("a short line gave no error")
	}
}

// In a network namespace of its own, loopbackUp brings lo up and
// loopbackCounters count exactly the process's traffic, headers included:
// one 100-byte UDP datagram is one packet of 128 bytes (20 of IPv4, 8 of
// UDP). The test re-runs itself in a new namespace, which needs root.
func TestLoopbackInNetns(t *testing.T) {
	if os.Getenv(netnsTestEnv) != "" {
		loopbackChild(t)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("a network namespace needs root")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestLoopbackInNetns$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), netnsTestEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	out, err := cmd.CombinedOutput()
	if errors.Is(err, syscall.EPERM) {
		t.Skipf("no new network namespace here: %v", err)
	}
	if err != nil {
		t.Fatalf("child in a new network namespace: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- PASS: TestLoopbackInNetns") {
		t.Fatalf("child did not run the test:\n%s", out)
	}
}

const netnsTestEnv = "PLUMTREE_BENCH_TEST_NETNS_CHILD"

func loopbackChild(t *testing.T) {
	if err := loopbackUp(); err != nil {
		t.Fatal(err)
	}
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	tx, err := net.DialUDP("udp4", nil, rx.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	b0, p0, err := loopbackCounters()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Write(make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 200)
	if err := rx.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil { // a hang guard
		t.Fatal(err)
	}
	if n, _, err := rx.ReadFromUDP(buf); err != nil || n != 100 {
		t.Fatalf("read %d bytes, %v; want 100", n, err)
	}
	b1, p1, err := loopbackCounters()
	if err != nil {
		t.Fatal(err)
	}
	if b1-b0 != 128 || p1-p0 != 1 {
		t.Errorf("lo counted %d bytes in %d packets for one 100-byte datagram, want 128 in 1", b1-b0, p1-p0)
	}
}
