//go:build unix

package gossip

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user and system) the process has used, or 0
// where it cannot be read. Benchmarks report it per op: on a shared
// machine it is steadier than wall time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
