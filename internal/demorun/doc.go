// Package demorun is the demo behind "profileledger demo": simulated game
// servers, each with its own NATS connection and Store, hand players
// around, trade, send gifts, and one of them crashes; at the end every
// profile's log is read back and every acknowledged write checked.
//
// It starts its own NATS server (package embedded) and needs nothing else:
//
//	sum, err := demorun.Run(ctx, demorun.Config{Servers: 4, Players: 40, Duration: 15 * time.Second,
//		LeaseTTL: time.Second, Seed: 1, Steal: 0.1, Crash: true, Progress: os.Stdout})
//	if err != nil {
//		return err // the demo could not run
//	}
//	if !sum.Pass {
//		// a check failed: sum.Verification.Problems says which
//	}
package demorun
