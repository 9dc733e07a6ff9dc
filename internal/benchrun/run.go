package benchrun

import (
	"context"
	"errors"
	"fmt"
	"github.com/nats-io/nats.go"
	"io"
	"log/slog"
	"math"
	"os"
	"runtime/pprof"
	"slices"
	"time"
)

// Size scales a run. Names of results keep their nominal sizes
// ("start_p50_100k"); the notes say what ran.
type Size struct {
	Label        string
	Samples      int           // latency samples per side of the Mutate figures
	StartSamples int           // StartSession samples per history size
	Rounds       int           // throughput rounds per side
	Round        time.Duration // one throughput round of one side
	Sessions     int           // aggregate_tput_vs_async: sessions (AggregateWorkers workers)
	History      [4]int        // start: the 10, 1k, 10k and 100k histories
	Handovers    int
	Crashers     int // takeover_dead_vs_ttl: crashed holders per round
	CrashRounds  int
	LeaseTTL     time.Duration // takeover_dead_vs_ttl
	IdleSessions int
	// ScaleSessions are the sessions of the *_100k figures, held for
	// IdleWindow.
	ScaleSessions int
	IdleWindow    time.Duration
	Messages      int // message_delivery_*: latency samples
	Burst         int // message_handled_tput: messages per burst
	Bursts        int // message_handled_tput: bursts
	// DupesProfiles are the profiles of dupes_100k_events_s and
	// export_vs_raw_read at each of three sizes, of DupesEvents events each.
	DupesProfiles [3]int
	DupesEvents   int
	// ProjectorProfiles x ProjectorEvents is projector_tput's backlog,
	// folded ProjectorRounds times by each side.
	ProjectorProfiles, ProjectorEvents, ProjectorRounds int
	// LagLoad is how long projector_lag_p99_ms's mutation load runs.
	LagLoad time.Duration
	// CrashedProfiles are the snapshotter_* profiles per store.
	CrashedProfiles int
	// ClusterKills is the node kills of cluster_takeover_after_node_kill
	// (each costs a raft election, 4 to 9 s, and all but the last a
	// restart).
	ClusterKills int
}

// DefaultSize is the bench's default size: about 50 s on a 2-core machine.
var DefaultSize = Size{
	Label: "default", Samples: 3000, StartSamples: 500, Rounds: 10, Round: 250 * time.Millisecond,
	Sessions: 1000, History: [4]int{10, 1000, 10000, 100000}, Handovers: 1000,
	Crashers: 8, CrashRounds: 3, LeaseTTL: time.Second, IdleSessions: 10000,
	ScaleSessions: 100000, IdleWindow: 10 * time.Second,
	Messages: 2000, Burst: 1000, Bursts: 5,
	DupesProfiles: [3]int{250, 500, 1000}, DupesEvents: 100,
	ProjectorProfiles: 200, ProjectorEvents: 100, ProjectorRounds: 3, LagLoad: 3 * time.Second, CrashedProfiles: 40,
	ClusterKills: 3,
}

// QuickSize is the bench's small size (-quick): about 10 s.
var QuickSize = Size{
	Label: "quick", Samples: 300, StartSamples: 100, Rounds: 4, Round: 100 * time.Millisecond,
	Sessions: 250, History: [4]int{10, 1000, 5000, 10000}, Handovers: 200,
	Crashers: 4, CrashRounds: 1, LeaseTTL: time.Second, IdleSessions: 1000,
	ScaleSessions: 2000, IdleWindow: 2 * time.Second,
	Messages: 200, Burst: 200, Bursts: 2,
	DupesProfiles: [3]int{50, 100, 200}, DupesEvents: 50,
	ProjectorProfiles: 50, ProjectorEvents: 100, ProjectorRounds: 2, LagLoad: time.Second, CrashedProfiles: 10,
	ClusterKills: 1,
}

// Fixed by the figures' definitions.
const (
	groupCommitWorkers = 8
	// AggregateWorkers is the number of workers of aggregate_tput_vs_async:
	// a Size's Sessions must be at least this.
	AggregateWorkers = 16
)

// Config says what a run measures and where.
type Config struct {
	// Server is the NATS URL of a running server; "" starts an embedded
	// one (file storage in a temporary directory, removed at the end).
	// On a running server the run creates streams and buckets named
	// PL_bench<id>-... and PLBENCH<id>_..., and deletes them at the end.
	Server string
	// Connect are the options of every connection to Server (credentials,
	// TLS); unused with the embedded server.
	Connect []nats.Option
	// Cluster runs the cluster scenarios (results named cluster_*) instead
	// of the others, on an embedded 3-node cluster this run starts (file
	// storage in a temporary directory, removed at the end), with R3
	// streams and buckets. It cannot be combined with Server.
	Cluster bool
	// Only names the results to measure; nil measures all of them.
	Only map[string]bool
	// CPUProfile, if set, is the file to write a CPU profile of the
	// scenarios (and, embedded, the NATS server) to.
	CPUProfile string
	Size       Size
	// Progress gets a line as each scenario starts and ends; nil for none.
	Progress io.Writer
	// Log gets the library's warnings; nil for none.
	Log *slog.Logger
}

// Report is what a run found.
type Report struct {
	Machine Machine  `json:"machine"`
	Run     RunInfo  `json:"run"`
	Results []Result `json:"results"`
}

// RunInfo says how the run was made.
type RunInfo struct {
	Size    string    `json:"size"`
	Started time.Time `json:"started"`
	Seconds float64   `json:"seconds"`
	// LoadBefore and LoadAfter are the system's load averages (1, 5, 15
	// minutes) before and after the run, where the system says: other
	// work on the machine shows here, and in every figure.
	LoadBefore string   `json:"load_before,omitempty"`
	LoadAfter  string   `json:"load_after,omitempty"`
	Failures   []string `json:"failures,omitempty"` // scenarios that could not run
}

// Result is one figure.
type Result struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	// Baseline says what Ratio compares Value with ("" for none).
	Baseline string `json:"baseline"`
	// BaselineValue is the baseline's figure, in Unit.
	BaselineValue *float64 `json:"baseline_value,omitempty"`
	// Ratio is Value over BaselineValue (null without a baseline).
	Ratio  *float64 `json:"ratio"`
	Target string   `json:"target,omitempty"`
	// Met says whether Value or Ratio meets Target (null: nothing to meet).
	Met  *bool  `json:"met,omitempty"`
	Note string `json:"note,omitempty"`
}

// Run runs the scenarios that produce the wanted results. A scenario
// that fails is reported in the returned error and in the report's
// failures; the others still run. The report is nil only if nothing could
// run at all. ctx stops the run between scenarios and inside them.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	progress, log := cfg.Progress, cfg.Log
	if progress == nil {
		progress = io.Discard
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	start := time.Now()
	scenarios := benchScenarios
	var env *benchEnv
	var err error
	if cfg.Cluster {
		if cfg.Server != "" {
			return nil, errors.New("bench: the cluster scenarios run on a cluster of their own, not on a running server")
		}
		scenarios = clusterScenarios
		env, err = newClusterEnv(ctx, log, progress, nil)
	} else {
		env, err = newBenchEnv(ctx, cfg.Server, cfg.Connect, log, progress)
	}
	if err != nil {
		return nil, err
	}
	defer env.close()
	r := &benchRun{env: env, size: cfg.Size, progress: progress}
	rep := &Report{Machine: env.machine(), Run: RunInfo{Size: cfg.Size.Label, Started: start.UTC(), LoadBefore: loadAverage()}}

	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
		defer pprof.StopCPUProfile()
	}
	want := func(name string) bool { return cfg.Only == nil || cfg.Only[name] }
	var errs []error
	for _, sc := range scenarios {
		if !slices.ContainsFunc(sc.results, want) {
			continue
		}
		if ctx.Err() != nil {
			errs = append(errs, fmt.Errorf("%s: %w", sc.name, ctx.Err()))
			break
		}
		fmt.Fprintf(progress, "bench %6.1fs  %s ...\n", time.Since(start).Seconds(), sc.name)
		t0 := time.Now()
		res, err := sc.run(ctx, r, want)
		if err != nil {
			err = fmt.Errorf("%s: %w", sc.name, err)
			errs = append(errs, err)
			rep.Run.Failures = append(rep.Run.Failures, err.Error())
			fmt.Fprintf(progress, "bench          %s failed after %v: %v\n", sc.name, time.Since(t0).Round(time.Millisecond), err)
			continue
		}
		for _, res := range res {
			if want(res.Name) {
				rep.Results = append(rep.Results, judge(res))
			}
		}
		fmt.Fprintf(progress, "bench          %s took %v\n", sc.name, time.Since(t0).Round(time.Millisecond))
	}
	slices.SortStableFunc(rep.Results, func(a, b Result) int { return specIndex(a.Name) - specIndex(b.Name) })
	rep.Run.Seconds = math.Round(time.Since(start).Seconds()*10) / 10
	rep.Run.LoadAfter = loadAverage()
	return rep, errors.Join(errs...)
}

// judge fills in res's target from its spec and whether it is met.
func judge(res Result) Result {
	spec := benchSpecOf(res.Name)
	if spec == nil {
		return res
	}
	res.Target = spec.target.text
	if spec.target.limit == 0 {
		return res
	}
	v := res.Value
	if spec.target.ofRatio {
		if res.Ratio == nil {
			return res
		}
		v = *res.Ratio
	}
	met := v <= spec.target.limit
	if !spec.target.atMost {
		met = v >= spec.target.limit
	}
	res.Met = &met
	return res
}

// Units of results.
const (
	UnitMicros  = "µs"
	UnitMillis  = "ms"
	UnitSeconds = "s"
	UnitRate    = "ops/s"
	UnitBytes   = "B"
	UnitPercent = "%"
)

// ratioOf returns a/b, rounded, nil if b is 0.
func ratioOf(a, b float64) *float64 {
	if b == 0 {
		return nil
	}
	return ptr(round3(a / b))
}

// round3 rounds v to three decimals.
func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

func ptr(v float64) *float64 { return &v }
