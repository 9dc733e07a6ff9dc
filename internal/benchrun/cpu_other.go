//go:build !unix

package benchrun

import "time"

// processCPU returns 0: CPU time is measured on Unix systems only.
func processCPU() time.Duration { return 0 }
