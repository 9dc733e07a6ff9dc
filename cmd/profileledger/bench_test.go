package main

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/profileledger/profileledger/internal/benchrun"
)

// tinyBenchSize is -quick shrunk for tests: every scenario runs, briefly.
var tinyBenchSize = benchrun.Size{
	Label: "quick (test)", Samples: 20, StartSamples: 10, Rounds: 2, Round: 30 * time.Millisecond,
	Sessions: 32, History: [4]int{10, 40, 100, 200}, Handovers: 10,
	Crashers: 2, CrashRounds: 1, LeaseTTL: time.Second, IdleSessions: 300,
	ScaleSessions: 200, IdleWindow: 2 * time.Second,
	Messages: 20, Burst: 20, Bursts: 1,
	DupesProfiles: [3]int{4, 8, 16}, DupesEvents: 10,
	ProjectorProfiles: 8, ProjectorEvents: 20, ProjectorRounds: 1, LagLoad: 200 * time.Millisecond, CrashedProfiles: 3,
	ClusterKills: 1,
}

// useTinyBench makes -quick run tinyBenchSize for the rest of the test.
func useTinyBench(t *testing.T) {
	t.Helper()
	saved := benchQuickSize
	benchQuickSize = tinyBenchSize
	t.Cleanup(func() { benchQuickSize = saved })
}

// benchResultNames are the results bench promises (issue 4), spelled out
// here so that renaming one breaks this test.
var benchResultNames = []string{
	"mutate_p50_vs_raw", "mutate_tput_vs_diy_kv", "group_commit_tput", "aggregate_tput_vs_async",
	"start_10k_vs_10", "start_vs_kv_get", "handover_p99_ms", "takeover_dead_vs_ttl",
	"idle_session_heap_bytes", "trade_tput",
	"start_p50_10", "start_p50_1k", "start_p50_100k", "mutate_p50_1k", "mutate_p50_64k",
	// The floor of aggregate_tput_vs_async, measured beside it.
	"aggregate_tput_vs_sync", "sync_16_vs_async", "aggregate_1k_goroutines_vs_async",
	// Messages (issue 10).
	"message_delivery_p50_us", "message_delivery_p99_us", "message_handled_tput",
	// Investigation (issue 11).
	"export_vs_raw_read", "dupes_100k_events_s",
	// Scale (issue 14).
	"start_100k_sessions_s", "idle_100k_cpu_pct", "idle_liveness_msgs_per_s_100k", "close_100k_sessions_s",
	// Projections (issue 13).
	"projector_tput_vs_raw_consume", "projector_lag_p99_ms",
	"snapshotter_cold_get_vs_without", "snapshotter_start_after_crash_vs_without",
}

func TestBenchQuickRuns(t *testing.T) {
	useTinyBench(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	code, stdout, stderr := run(t, ctx, "bench", "-quick", "-json")
	if code != exitOK {
		t.Fatalf("exit code %d, want 0; stderr:\n%s\nstdout:\n%s", code, stderr, stdout)
	}
	var rep struct {
		Machine map[string]any   `json:"machine"`
		Run     map[string]any   `json:"run"`
		Results []map[string]any `json:"results"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, stdout)
	}
	for _, k := range []string{"go", "goos", "goarch", "nats_server", "server", "storage"} {
		if s, _ := rep.Machine[k].(string); s == "" {
			t.Errorf("machine.%s = %v, want a string", k, rep.Machine[k])
		}
	}
	if n, _ := rep.Machine["cpus"].(float64); n < 1 {
		t.Errorf("machine.cpus = %v", rep.Machine["cpus"])
	}
	if s, _ := rep.Run["seconds"].(float64); s <= 0 {
		t.Errorf("run.seconds = %v", rep.Run["seconds"])
	}

	seen := map[string]bool{}
	for _, r := range rep.Results {
		name, _ := r["name"].(string)
		if seen[name] {
			t.Errorf("result %q twice", name)
		}
		seen[name] = true
		for _, k := range []string{"name", "value", "unit", "baseline", "ratio"} {
			if _, ok := r[k]; !ok {
				t.Errorf("%s: no %q field: %v", name, k, r)
			}
		}
		v, ok := r["value"].(float64)
		switch {
		case !ok || v < 0:
			t.Errorf("%s: value = %v, want a number, not negative", name, r["value"])
		case v == 0 && name != "message_delivery_p50_us": // a handler may run before Message returns: 0
			t.Errorf("%s: value = %v, want a positive number", name, r["value"])
		}
		if u, _ := r["unit"].(string); u == "" {
			t.Errorf("%s: unit = %v, want a string", name, r["unit"])
		}
		base, ok := r["baseline"].(string)
		if !ok {
			t.Errorf("%s: baseline = %v, want a string", name, r["baseline"])
		}
		ratio, isNumber := r["ratio"].(float64)
		switch {
		case base != "" && (!isNumber || ratio <= 0):
			t.Errorf("%s: baseline %q but ratio = %v, want a positive number", name, base, r["ratio"])
		case base == "" && r["ratio"] != nil:
			t.Errorf("%s: no baseline but ratio = %v, want null", name, r["ratio"])
		}
	}
	for _, name := range benchResultNames {
		if !seen[name] {
			t.Errorf("result %q missing", name)
		}
	}
	if len(rep.Results) != len(benchResultNames) {
		t.Errorf("%d results, want %d", len(rep.Results), len(benchResultNames))
	}
}

// clusterResultNames are the results of bench -cluster (issue 14).
var clusterResultNames = []string{
	"cluster_mutate_p50_vs_raw", "cluster_trade_p50_ms", "cluster_handover_p99_ms",
	"cluster_takeover_dead_vs_ttl", "cluster_takeover_after_node_kill",
}

// TestBenchClusterReportsEveryClusterFigure runs bench -cluster -quick end
// to end: a 3-node cluster, R3 stores, one node kill (a raft election,
// 4 to 9 s, which is most of its 10 to 20 s). Every cluster result must
// be there once, with a finite positive value, a ratio where it has a
// baseline, and nothing else.
func TestBenchClusterReportsEveryClusterFigure(t *testing.T) {
	if testing.Short() || os.Getenv("PL_BENCH_CLUSTER") == "" {
		// Under a loaded machine an R3 stream's creation or a settling read
		// during an election fails a run now and then (3 of 4 runs beside
		// the other tests, 14 of 14 alone): run it on its own.
		t.Skip("set PL_BENCH_CLUSTER=1 (go test -run TestBenchCluster ./cmd/profileledger): a 3-node cluster and a node kill")
	}
	useTinyBench(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	code, stdout, stderr := run(t, ctx, "bench", "-cluster", "-quick", "-json")
	if code != exitOK {
		t.Fatalf("exit code %d, want 0; stderr:\n%s\nstdout:\n%s", code, stderr, stdout)
	}
	var rep benchrun.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("stdout is not one JSON report: %v\n%s", err, stdout)
	}
	if !strings.Contains(rep.Machine.Server, "3-node cluster") || !strings.Contains(rep.Machine.Storage, "R3") {
		t.Errorf("machine says server %q, storage %q: want a 3-node cluster, R3", rep.Machine.Server, rep.Machine.Storage)
	}
	seen := map[string]bool{}
	for _, r := range rep.Results {
		if seen[r.Name] {
			t.Errorf("result %q twice", r.Name)
		}
		seen[r.Name] = true
		if !strings.HasPrefix(r.Name, "cluster_") {
			t.Errorf("result %q in a cluster run", r.Name)
		}
		if r.Value <= 0 || math.IsInf(r.Value, 0) || math.IsNaN(r.Value) {
			t.Errorf("%s: value %v, want a finite positive number", r.Name, r.Value)
		}
		if r.Baseline != "" && (r.Ratio == nil || *r.Ratio <= 0 || math.IsInf(*r.Ratio, 0)) {
			t.Errorf("%s: baseline %q but ratio %v", r.Name, r.Baseline, r.Ratio)
		}
		if r.Note == "" {
			t.Errorf("%s: no note", r.Name)
		}
	}
	for _, name := range clusterResultNames {
		if !seen[name] {
			t.Errorf("result %q missing", name)
		}
	}
	// A take-over waits for the lease at least: a value under the TTL
	// would be a clock that measured nothing.
	for _, r := range rep.Results {
		if strings.HasPrefix(r.Name, "cluster_takeover") && r.Ratio != nil && *r.Ratio < 0.5 {
			t.Errorf("%s: %v s is under half the lease TTL", r.Name, r.Value)
		}
	}
}

func TestBenchOnlyPrintsATableOfTheNamedResults(t *testing.T) {
	useTinyBench(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	code, stdout, stderr := run(t, ctx, "bench", "-quick", "-only", "handover_p99_ms,start_p50_10")
	if code != exitOK {
		t.Fatalf("exit code %d, want 0; stderr:\n%s\nstdout:\n%s", code, stderr, stdout)
	}
	for _, want := range []string{"name", "value", "unit", "baseline", "ratio", "target", "\nhandover_p99_ms ", "\nstart_p50_10 ", "≤ 50 ms"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("table does not say %q:\n%s", want, stdout)
		}
	}
	for _, other := range []string{"mutate_p50_vs_raw", "start_p50_1k", "start_10k_vs_10"} {
		if strings.Contains(stdout, other) {
			t.Errorf("-only printed %s:\n%s", other, stdout)
		}
	}
}

func TestBenchUsageErrorsExitWithTwo(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"unknown result", []string{"-only", "mutate_p50_vs_raw,frobnicate"}, `unknown result "frobnicate"`},
		{"negative samples", []string{"-samples", "-1"}, "-samples -1: must be at least 1"},
		{"too few sessions", []string{"-sessions", "3"}, "-sessions 3: must be at least 16"},
		{"negative round", []string{"-round", "-1s"}, "-round -1s: must be positive"},
		{"stray argument", []string{"-quick", "extra"}, `unexpected argument "extra"`},
		{"cluster and server", []string{"-cluster", "-server", "nats://127.0.0.1:4222"}, "-cluster starts a cluster of its own"},
		{"cluster result without -cluster", []string{"-only", "cluster_trade_p50_ms"}, "cluster_trade_p50_ms is measured on a cluster: add -cluster"},
		{"single-server result with -cluster", []string{"-cluster", "-only", "trade_tput"}, "trade_tput is not measured on a cluster: drop -cluster"},
		{"no kills", []string{"-cluster", "-kills", "-1"}, "-kills -1: must be at least 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, t.Context(), append([]string{"bench"}, tt.args...)...)
			if code != exitUsage {
				t.Errorf("exit code %d, want %d", code, exitUsage)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr does not say %q:\n%s", tt.want, stderr)
			}
			if stdout != "" {
				t.Errorf("usage error wrote to stdout:\n%s", stdout)
			}
		})
	}
}
