//go:build !linux

package integration_test

import "syscall"

// childProcAttr: only Linux can tie a child's life to its parent's; here a
// child outlives a test process that dies without running its cleanups.
func childProcAttr() *syscall.SysProcAttr { return nil }
