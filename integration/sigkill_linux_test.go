package integration_test

import "syscall"

// childProcAttr makes the kernel SIGKILL a child server if the test process
// dies first (a test binary that panics on -timeout runs no cleanups).
// Pdeathsig follows the thread that started the child; Go ends a thread
// only when a goroutine locked to it exits, which these tests do not do.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
