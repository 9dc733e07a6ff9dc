package benchrun

import (
	"context"
	"fmt"
	"io"
	"strings"
)

// benchSpec is one result bench can report: what it measures, against
// what, and its target.
type benchSpec struct {
	name     string
	what     string
	baseline string // "" for none
	target   benchTarget
}

// benchTarget is a result's target. A zero limit means "report only".
type benchTarget struct {
	text    string
	ofRatio bool // the limit applies to the ratio, not the value
	atMost  bool // value ≤ limit (otherwise ≥)
	limit   float64
}

// benchSpecs lists every result, in the order they are printed.
var benchSpecs = []benchSpec{
	{"mutate_p50_vs_raw", "durable Mutate p50, one session, 256-byte change",
		"raw publish p50", benchTarget{"ratio ≤ 1.3", true, true, 1.3}},
	{"mutate_tput_vs_diy_kv", "Mutate rate, one session, one goroutine, 4 KiB profile",
		"KV Get+Update loop", benchTarget{"ratio ≥ 2", true, false, 2}},
	{"group_commit_tput", "Mutate rate, 8 goroutines on one session",
		"1 goroutine", benchTarget{"ratio ≥ 3", true, false, 3}},
	{"aggregate_tput_vs_async", "Mutate rate across 1,000 sessions, 16 workers",
		"PublishAsync", benchTarget{"ratio ≥ 0.5", true, false, 0.5}},
	{"aggregate_tput_vs_sync", "the same Mutate rate (1,000 sessions, 16 workers)",
		"synchronous publish, 16 workers", benchTarget{text: "report"}},
	{"sync_16_vs_async", "synchronous publish rate, 16 workers: an ack-before-return API's ceiling",
		"PublishAsync", benchTarget{text: "report"}},
	{"aggregate_1k_goroutines_vs_async", "Mutate rate across 1,000 sessions, a goroutine each",
		"PublishAsync", benchTarget{text: "report"}},
	{"start_10k_vs_10", "StartSession p50, 10,000 events of history",
		"10 events", benchTarget{"ratio ≤ 1.5", true, true, 1.5}},
	{"start_vs_kv_get", "uncontended StartSession p50 (10 events)",
		"KV get p50", benchTarget{"report (expect ≤ 6)", true, true, 6}},
	{"handover_p99_ms", "hand-over to a live holder on another connection, p99",
		"", benchTarget{"≤ 50 ms", false, true, 50}},
	{"takeover_dead_vs_ttl", "take-over from a crashed holder (connection closed), p50",
		"lease TTL", benchTarget{"ratio ≤ 1.2", true, true, 1.2}},
	{"idle_session_heap_bytes", "heap per open idle session, 1 KiB profiles, 10,000 sessions",
		"", benchTarget{"≤ 4 KiB", false, true, 4 << 10}},
	{"start_100k_sessions_s", "start 100,000 sessions, 1 KiB profiles (the note: three steps, for linear growth)",
		"", benchTarget{text: "report"}},
	{"idle_100k_cpu_pct", "process CPU while 100,000 held sessions sit idle, % of one core",
		"", benchTarget{"≤ 5 %", false, true, 5}},
	{"idle_liveness_msgs_per_s_100k", "messages per second keeping 100,000 idle sessions alive",
		"", benchTarget{"≤ 10", false, true, 10}},
	{"close_100k_sessions_s", "Store.Close ending 100,000 sessions", "", benchTarget{text: "report"}},
	{"trade_tput", "atomic two-profile Trade rate, one goroutine",
		"Mutate rate", benchTarget{text: "report"}},
	{"start_p50_10", "StartSession p50, 10 events of history", "", benchTarget{text: "report"}},
	{"start_p50_1k", "StartSession p50, 1,000 events of history", "", benchTarget{text: "report"}},
	{"start_p50_100k", "StartSession p50, 100,000 events of history", "", benchTarget{text: "report"}},
	{"mutate_p50_1k", "Mutate p50, 1 KiB profile, one field", "", benchTarget{text: "report"}},
	{"mutate_p50_64k", "Mutate p50, 64 KiB profile, one field", "", benchTarget{text: "report"}},
	{"message_delivery_p50_us", "message delivery to a live holder, p50: Message returning to the handler running", "", benchTarget{text: "report"}},
	{"message_delivery_p99_us", "message delivery to a live holder, p99", "", benchTarget{text: "report"}},
	{"message_handled_tput", "messages handled per second, a burst waiting in a held profile's inbox", "", benchTarget{text: "report"}},
	{"export_vs_raw_read", "events per second through export (JSON Lines to io.Discard), 100,000 events",
		"raw ordered consumer", benchTarget{"ratio ≥ 0.5", true, false, 0.5}},
	{"projector_tput_vs_raw_consume", "events folded per second by a projection (fold, handler call, ack), a 20,000-event backlog",
		"raw durable consumer that only acks", benchTarget{"ratio ≥ 0.5", true, false, 0.5}},
	{"projector_lag_p99_ms", "p99 from an event stored to a projection's handler, under the aggregate mutation load", "", benchTarget{text: "report"}},
	{"snapshotter_cold_get_vs_without", "Get p50 of a profile whose holder crashed after 255 events, the snapshotter (every 64) run",
		"the same without the snapshotter", benchTarget{text: "report"}},
	{"snapshotter_start_after_crash_vs_without", "StartSession p50 of a profile whose holder crashed after 255 events, the snapshotter (every 64) run",
		"the same without the snapshotter", benchTarget{text: "report"}},
	{"dupes_100k_events_s", "dupes over 1,000 profiles and 100,000 events (the note: three sizes, for linear growth)", "", benchTarget{text: "report"}},
	// bench -cluster: an embedded 3-node cluster, R3 streams and buckets.
	{"cluster_mutate_p50_vs_raw", "R3: durable Mutate p50, one session, 256-byte change",
		"raw R3 publish p50", benchTarget{"ratio ≤ 1.3", true, true, 1.3}},
	{"cluster_trade_p50_ms", "R3: atomic two-profile Trade p50",
		"Mutate p50", benchTarget{text: "report"}},
	{"cluster_handover_p99_ms", "R3: hand-over to a live holder on another member, p99",
		"", benchTarget{text: "report (one server's: ≤ 50 ms)"}},
	{"cluster_takeover_dead_vs_ttl", "R3: take-over from a crashed holder (connection closed), p50",
		"lease TTL", benchTarget{text: "report (one server's: ratio ≤ 1.2)"}},
	{"cluster_takeover_after_node_kill", "R3: kill the member leading the stream (its holder dies with it) to a contender on another member writing, p50",
		"lease TTL", benchTarget{text: "report"}},
}

// isClusterResult says whether a result is one of bench -cluster's.
func isClusterResult(name string) bool { return strings.HasPrefix(name, "cluster_") }

func benchSpecOf(name string) *benchSpec {
	if i := specIndex(name); i < len(benchSpecs) {
		return &benchSpecs[i]
	}
	return nil
}

// specIndex returns the index of name in benchSpecs, len(benchSpecs) if it
// is not there.
func specIndex(name string) int {
	for i := range benchSpecs {
		if benchSpecs[i].name == name {
			return i
		}
	}
	return len(benchSpecs)
}

// Spec describes one result a run can report.
type Spec struct {
	Name     string
	What     string // what it measures
	Baseline string // what its ratio compares it with; "" for none
	Target   string // in words; "report" for none
	Cluster  bool   // measured by a cluster run (Config.Cluster) only
}

// Specs returns every result a run can report, in the order a report
// lists them.
func Specs() []Spec {
	out := make([]Spec, len(benchSpecs))
	for i, s := range benchSpecs {
		out[i] = Spec{Name: s.name, What: s.what, Baseline: s.baseline, Target: s.target.text, Cluster: isClusterResult(s.name)}
	}
	return out
}

// benchScenario is one measured set-up; it produces one or more results.
type benchScenario struct {
	name    string
	results []string
	// run measures the results want accepts (it may return others too).
	run func(ctx context.Context, r *benchRun, want func(string) bool) ([]Result, error)
}

// benchScenarios run in this order: the heap figure first, on a heap that
// no earlier scenario's caches are still leaving. trade_tput is here
// because profileledger.Trade exists.
var benchScenarios = []benchScenario{
	{"idle sessions", []string{"idle_session_heap_bytes"}, benchIdleHeap},
	{"100,000 sessions", []string{"start_100k_sessions_s", "idle_100k_cpu_pct", "idle_liveness_msgs_per_s_100k", "close_100k_sessions_s"}, benchScale},
	{"mutate vs raw publish", []string{"mutate_p50_vs_raw"}, benchMutateVsRaw},
	{"mutate vs DIY KV", []string{"mutate_tput_vs_diy_kv"}, benchMutateVsKV},
	{"group commit", []string{"group_commit_tput"}, benchGroupCommit},
	{"aggregate vs PublishAsync", []string{"aggregate_tput_vs_async", "aggregate_tput_vs_sync", "sync_16_vs_async", "aggregate_1k_goroutines_vs_async"}, benchAggregate},
	{"profile size", []string{"mutate_p50_1k", "mutate_p50_64k"}, benchProfileSize},
	{"start session", []string{"start_10k_vs_10", "start_vs_kv_get", "start_p50_10", "start_p50_1k", "start_p50_100k"}, benchStart},
	{"hand-over", []string{"handover_p99_ms"}, benchHandover},
	{"take-over", []string{"takeover_dead_vs_ttl"}, benchTakeover},
	{"trade", []string{"trade_tput"}, benchTrade},
	{"messages", []string{"message_delivery_p50_us", "message_delivery_p99_us", "message_handled_tput"}, benchMessages},
	{"investigate", []string{"export_vs_raw_read", "dupes_100k_events_s"}, benchInvestigate},
	{"projector throughput", []string{"projector_tput_vs_raw_consume"}, benchProjectorTput},
	{"projector lag", []string{"projector_lag_p99_ms"}, benchProjectorLag},
	{"snapshotter gain", []string{"snapshotter_cold_get_vs_without", "snapshotter_start_after_crash_vs_without"}, benchSnapshotterGain},
}

// clusterScenarios are bench -cluster's, in this order: the node kill
// last, so that the others run on three healthy members.
var clusterScenarios = []benchScenario{
	{"cluster: mutate vs raw publish", []string{"cluster_mutate_p50_vs_raw"}, clusterMutateVsRaw},
	{"cluster: trade", []string{"cluster_trade_p50_ms"}, clusterTrade},
	{"cluster: hand-over", []string{"cluster_handover_p99_ms"}, clusterHandover},
	{"cluster: take-over", []string{"cluster_takeover_dead_vs_ttl"}, clusterTakeover},
	{"cluster: node kill", []string{"cluster_takeover_after_node_kill"}, clusterNodeKill},
}

// benchRun is what scenarios share.
type benchRun struct {
	env      *benchEnv
	size     Size
	progress io.Writer
}

func (r *benchRun) printf(format string, args ...any) {
	fmt.Fprintf(r.progress, "bench          "+format+"\n", args...)
}

// result returns a result of spec name with the given value and, if
// baseline > 0, the ratio over it.
func result(name string, value float64, unit string, baseline float64, note string, args ...any) Result {
	res := Result{Name: name, Value: round3(value), Unit: unit, Note: fmt.Sprintf(note, args...)}
	if spec := benchSpecOf(name); spec != nil && spec.baseline != "" {
		res.Baseline = spec.baseline
		res.BaselineValue = ptr(round3(baseline))
		res.Ratio = ratioOf(value, baseline)
	}
	return res
}
