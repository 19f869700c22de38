package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"unsafe"
)

// netnsSupported reports whether this system can run the benchmark in a
// network namespace of its own: Linux, as root.
func netnsSupported() bool { return os.Geteuid() == 0 }

// reexecInNetns runs this program again, with the same arguments, in a new
// network namespace, with env set so that the child knows it is inside; the
// child's output is ours. It returns the child's error.
func reexecInNetns(ctx context.Context, stdout, stderr io.Writer) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("bench: netns: %w", err)
	}
	cmd := exec.CommandContext(ctx, exe, os.Args[1:]...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.Env = append(os.Environ(), netnsEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("bench: in a network namespace: %w", err)
	}
	return nil
}

// loopbackUp sets the loopback interface up (a new network namespace has it
// down), as `ip link set lo up` does: SIOCGIFFLAGS, then SIOCSIFFLAGS with
// IFF_UP.
func loopbackUp() error {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bench: loopback up: %w", err)
	}
	defer syscall.Close(fd)
	var ifr struct {
		name  [syscall.IFNAMSIZ]byte
		flags uint16
		_     [22]byte // the rest of struct ifreq
	}
	copy(ifr.name[:], "lo")
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.SIOCGIFFLAGS, uintptr(unsafe.Pointer(&ifr))); errno != 0 {
		return fmt.Errorf("bench: loopback flags: %w", errno)
	}
	ifr.flags |= syscall.IFF_UP | syscall.IFF_RUNNING
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.SIOCSIFFLAGS, uintptr(unsafe.Pointer(&ifr))); errno != 0 {
		return fmt.Errorf("bench: loopback up: %w", errno)
	}
	return nil
}

// loopbackCounters reads the loopback interface's transmitted bytes and
// packets from /proc/self/net/dev, which shows the network namespace of the
// reading process (/sys/class/net shows that of the sysfs mount instead).
// On loopback every packet is transmitted and received once, tx equal to
// rx, with its IP and UDP/TCP headers.
func loopbackCounters() (bytesTx, packetsTx uint64, err error) {
	b, err := os.ReadFile("/proc/self/net/dev")
	if err != nil {
		return 0, 0, fmt.Errorf("bench: loopback counters: %w", err)
	}
	return parseNetDev(b, "lo")
}

// parseNetDev finds iface in the text of /proc/net/dev and returns its
// transmitted bytes and packets.
func parseNetDev(b []byte, iface string) (bytesTx, packetsTx uint64, err error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(name) != iface {
			continue
		}
		// Receive: bytes packets errs drop fifo frame compressed multicast;
		// then transmit: bytes packets ...
		f := strings.Fields(rest)
		if len(f) < 10 {
			return 0, 0, fmt.Errorf("bench: /proc/net/dev: short line for %s", iface)
		}
		if bytesTx, err = strconv.ParseUint(f[8], 10, 64); err == nil {
			packetsTx, err = strconv.ParseUint(f[9], 10, 64)
		}
		if err != nil {
			return 0, 0, fmt.Errorf("bench: /proc/net/dev: %w", err)
		}
		return bytesTx, packetsTx, nil
	}
	return 0, 0, fmt.Errorf("bench: /proc/net/dev: no interface %s", iface)
}
