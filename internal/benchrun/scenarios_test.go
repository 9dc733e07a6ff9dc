package benchrun

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// BenchmarkScenarios runs bench's scenarios as Go benchmarks, one
// sub-benchmark each, and reports every result's value and ratio as
// metrics (the ratio against the baseline measured in the same run):
//
//	go test -run '^$' -bench Scenarios -benchtime 1x ./internal/benchrun
//
// At bench's default size; with -short at -quick's.
func BenchmarkScenarios(b *testing.B) {
	size := DefaultSize
	if testing.Short() {
		size = QuickSize
	}
	env, err := newBenchEnv(b.Context(), "", nil, slog.New(slog.DiscardHandler), io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	defer env.close()
	runScenarios(b, &benchRun{env: env, size: size, progress: io.Discard}, benchScenarios)
}

// BenchmarkClusterScenarios runs bench -cluster's scenarios the same way,
// on an embedded 3-node cluster with R3 streams:
//
//	go test -run '^$' -bench ClusterScenarios -benchtime 1x ./internal/benchrun
func BenchmarkClusterScenarios(b *testing.B) {
	size := DefaultSize
	if testing.Short() {
		size = QuickSize
	}
	env, err := newClusterEnv(b.Context(), slog.New(slog.DiscardHandler), io.Discard, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer env.close()
	runScenarios(b, &benchRun{env: env, size: size, progress: io.Discard}, clusterScenarios)
}

// runScenarios runs each scenario as a sub-benchmark and reports its
// results as metrics.
func runScenarios(b *testing.B, r *benchRun, scenarios []benchScenario) {
	for _, sc := range scenarios {
		b.Run(strings.NewReplacer(" ", "_", ":", "").Replace(sc.name), func(b *testing.B) {
			for b.Loop() {
				res, err := sc.run(b.Context(), r, func(string) bool { return true })
				if err != nil {
					b.Fatal(err)
				}
				for _, res := range res {
					b.ReportMetric(res.Value, res.Name+"-"+strings.ReplaceAll(res.Unit, "/", "-per-"))
					if res.Ratio != nil {
						b.ReportMetric(*res.Ratio, res.Name+"-ratio")
					}
				}
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}
