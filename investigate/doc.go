// Package investigate answers an investigator's questions about a store's
// history, on top of the library's History, Get and Keys: what happened to
// a profile (Log), what changed between two moments (Diff), who changed a
// field (Blame), where a value came from and who else has it (Trace), which
// values are held twice (Dupes), and every event as JSON Lines (Export).
//
// It reads; it never writes. The operator commands of cmd/profileledger are
// flags around these calls and printing of their results.
//
//	src := investigate.FromStore(st)
//	rep, err := investigate.Dupes(ctx, src, "/inventory/*/id")
//	for _, d := range rep.Dupes {
//		for _, o := range d.Trace.Origins() {
//			fmt.Println(d.Value, "duplicated into", o.Key, "by event", o.EventID, "at seq", o.Seq)
//		}
//	}
package investigate
