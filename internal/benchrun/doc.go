// Package benchrun measures profileledger against baselines measured in
// the same run: the scenarios behind "profileledger bench", their
// measurement (alternating rounds, so that the machine's noise hits a
// figure and its baseline alike), the NATS environment they run in, and
// the report they produce.
//
// It is internal: the figures, their names and their sizes serve this
// repository's command and benchmark, and change with them.
//
//	rep, err := benchrun.Run(ctx, benchrun.Config{Size: benchrun.QuickSize})
//	if rep != nil {
//		for _, r := range rep.Results {
//			fmt.Println(r.Name, r.Value, r.Unit)
//		}
//	}
//
// The scenarios also run as Go benchmarks:
//
//	go test -run '^$' -bench Scenarios -benchtime 1x ./internal/benchrun
package benchrun
