//go:build unix

package benchrun

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time, user and system, this process has used
// so far (with an embedded server, the server's too); 0 if it cannot tell.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
