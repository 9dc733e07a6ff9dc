package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

const benchDescription = `
Bench measures profileledger against baselines measured in the same run.
Each figure and its baseline run in small alternating rounds (sample by
sample for latencies, rounds of a fraction of a second for throughput), so
that the machine's noise hits both alike; the ratio is this project's
figure over the baseline's. It prints one row per figure with its target
and a mark where the target is missed; a missed target does not fail the
command (exit status 1 means a scenario could not run).

By default it starts its own NATS server with JetStream in this process
(file storage in a temporary directory, default sync interval), so the
server's CPU and heap are this process's too. -server uses a running server
instead: bench then creates streams and buckets named PL_bench<id>-... and
PLBENCH<id>_... on it, and deletes them at the end.

The default size takes about 50 s on a 2-core machine, -quick about 10 s
(its histories and session counts are smaller: each row's note gives the
sizes used). The flags below scale single dimensions (0 keeps the size's
default). Notes also give the
process's CPU time per operation (with the embedded server, its work too).

Results (-only takes a comma-separated list of these names):
`

// benchConfig is bench's flags.
type benchConfig struct {
	json       bool
	server     string
	only       map[string]bool // nil: all
	verbose    bool
	cpuprofile string
	size       benchSize
}

// benchSize scales the bench. Names of results keep their nominal sizes
// ("start_p50_100k"); the notes say what ran.
type benchSize struct {
	label        string
	samples      int           // latency samples per side of the Mutate figures
	startSamples int           // StartSession samples per history size
	rounds       int           // throughput rounds per side
	round        time.Duration // one throughput round of one side
	sessions     int           // aggregate_tput_vs_async: sessions (16 workers)
	history      [4]int        // start: the 10, 1k, 10k and 100k histories
	handovers    int
	crashers     int // takeover_dead_vs_ttl: crashed holders per round
	crashRounds  int
	leaseTTL     time.Duration // takeover_dead_vs_ttl
	idleSessions int
	messages     int // message_delivery_*: latency samples
	burst        int // message_handled_tput: messages per burst
	bursts       int // message_handled_tput: bursts
	// dupes_100k_events_s and export_vs_raw_read: profiles at each of
	// three sizes, of dupesEvents events each.
	dupesProfiles [3]int
	dupesEvents   int
}

var defaultBenchSize = benchSize{
	label: "default", samples: 3000, startSamples: 500, rounds: 10, round: 250 * time.Millisecond,
	sessions: 1000, history: [4]int{10, 1000, 10000, 100000}, handovers: 1000,
	crashers: 8, crashRounds: 3, leaseTTL: time.Second, idleSessions: 10000,
	messages: 2000, burst: 1000, bursts: 5,
	dupesProfiles: [3]int{250, 500, 1000}, dupesEvents: 100,
}

var quickBenchSize = benchSize{
	label: "quick", samples: 300, startSamples: 100, rounds: 4, round: 100 * time.Millisecond,
	sessions: 250, history: [4]int{10, 1000, 5000, 10000}, handovers: 200,
	crashers: 4, crashRounds: 1, leaseTTL: time.Second, idleSessions: 1000,
	messages: 200, burst: 200, bursts: 2,
	dupesProfiles: [3]int{50, 100, 200}, dupesEvents: 50,
}

// benchQuickSize is what -quick runs. Tests shrink it further.
var benchQuickSize = quickBenchSize

// Fixed by the figures' definitions.
const (
	groupCommitWorkers = 8
	aggregateWorkers   = 16
)

func (m *Main) runBench(ctx context.Context, args []string) int {
	fs := m.newFlagSet("bench", "[flags]", benchDescription+benchResultsHelp())
	var cfg benchConfig
	var quick bool
	var only string
	var over benchSize
	fs.BoolVar(&cfg.json, "json", false, "print one JSON object {machine, run, results} instead of the table")
	fs.StringVar(&cfg.server, "server", "", "NATS `URL` of a running server (default: an embedded server)")
	fs.BoolVar(&quick, "quick", false, "small sizes: the whole run in under 10 s")
	fs.StringVar(&only, "only", "", "run only these results (`names`, comma-separated)")
	fs.BoolVar(&cfg.verbose, "v", false, "print progress and the library's warnings to stderr")
	fs.StringVar(&cfg.cpuprofile, "cpuprofile", "", "write a CPU profile of the scenarios (and, embedded, the NATS server) to `file`")
	fs.IntVar(&over.samples, "samples", 0, "latency samples per side of the Mutate figures (`n`)")
	fs.IntVar(&over.startSamples, "start-samples", 0, "StartSession samples per history size (`n`)")
	fs.IntVar(&over.rounds, "rounds", 0, "throughput rounds per side (`n`)")
	fs.DurationVar(&over.round, "round", 0, "length of one throughput round of one side")
	fs.IntVar(&over.sessions, "sessions", 0, "sessions of aggregate_tput_vs_async (`n`)")
	fs.IntVar(&over.history[3], "history", 0, "events of the largest history, start_p50_100k (`n`)")
	fs.IntVar(&over.handovers, "handovers", 0, "hand-overs of handover_p99_ms (`n`)")
	fs.IntVar(&over.idleSessions, "idle", 0, "sessions of idle_session_heap_bytes (`n`)")
	fs.IntVar(&over.messages, "messages", 0, "delivery samples of message_delivery_p50_us and _p99_us (`n`)")
	fs.IntVar(&over.burst, "burst", 0, "messages per burst of message_handled_tput (`n`)")
	if code, ok := m.parse(fs, args); !ok {
		return code
	}
	cfg.size = defaultBenchSize
	if quick {
		cfg.size = benchQuickSize
	}
	for _, f := range []struct {
		name string
		v    int
		dst  *int
		min  int
	}{
		{"samples", over.samples, &cfg.size.samples, 1},
		{"start-samples", over.startSamples, &cfg.size.startSamples, 1},
		{"rounds", over.rounds, &cfg.size.rounds, 1},
		{"sessions", over.sessions, &cfg.size.sessions, aggregateWorkers},
		{"history", over.history[3], &cfg.size.history[3], cfg.size.history[2]},
		{"handovers", over.handovers, &cfg.size.handovers, 1},
		{"idle", over.idleSessions, &cfg.size.idleSessions, 1},
		{"messages", over.messages, &cfg.size.messages, 1},
		{"burst", over.burst, &cfg.size.burst, 1},
	} {
		switch {
		case f.v == 0:
		case f.v < f.min:
			return m.usageError(fs, "-%s %d: must be at least %d", f.name, f.v, f.min)
		default:
			*f.dst = f.v
		}
	}
	switch {
	case over.round < 0:
		return m.usageError(fs, "-round %v: must be positive", over.round)
	case over.round > 0:
		cfg.size.round = over.round
	}
	if only != "" {
		cfg.only = map[string]bool{}
		for _, n := range strings.Split(only, ",") {
			n = strings.TrimSpace(n)
			if benchSpecOf(n) == nil {
				return m.usageError(fs, "-only: unknown result %q", n)
			}
			cfg.only[n] = true
		}
	}
	progress := io.Discard
	logger := slog.New(slog.DiscardHandler)
	if cfg.verbose {
		progress = m.stderr
		logger = slog.New(slog.NewTextHandler(m.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	rep, err := runBench(ctx, cfg, progress, logger)
	if rep != nil {
		var werr error
		if cfg.json {
			werr = rep.writeJSON(m.stdout)
		} else {
			werr = rep.writeText(m.stdout)
		}
		err = errors.Join(err, werr)
	}
	if err != nil {
		fmt.Fprintf(m.stderr, "profileledger bench: %v\n", err)
		return exitFail
	}
	return exitOK
}

// benchReport is what bench prints.
type benchReport struct {
	Machine benchMachine  `json:"machine"`
	Run     benchRunInfo  `json:"run"`
	Results []benchResult `json:"results"`
}

// benchRunInfo says how the run was made.
type benchRunInfo struct {
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

// benchResult is one figure.
type benchResult struct {
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

// runBench runs the scenarios that produce the wanted results. A scenario
// that fails is reported in the returned error and in the report's
// failures; the others still run. The report is nil only if nothing could
// run at all.
func runBench(ctx context.Context, cfg benchConfig, progress io.Writer, log *slog.Logger) (*benchReport, error) {
	start := time.Now()
	env, err := newBenchEnv(ctx, cfg.server, log, progress)
	if err != nil {
		return nil, err
	}
	defer env.close()
	r := &benchRun{env: env, size: cfg.size, progress: progress}
	rep := &benchReport{Machine: env.machine(), Run: benchRunInfo{Size: cfg.size.label, Started: start.UTC(), LoadBefore: loadAverage()}}

	if cfg.cpuprofile != "" {
		f, err := os.Create(cfg.cpuprofile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
		defer pprof.StopCPUProfile()
	}
	want := func(name string) bool { return cfg.only == nil || cfg.only[name] }
	var errs []error
	for _, sc := range benchScenarios {
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
	slices.SortStableFunc(rep.Results, func(a, b benchResult) int { return specIndex(a.Name) - specIndex(b.Name) })
	rep.Run.Seconds = math.Round(time.Since(start).Seconds()*10) / 10
	rep.Run.LoadAfter = loadAverage()
	return rep, errors.Join(errs...)
}

// judge fills in res's target from its spec and whether it is met.
func judge(res benchResult) benchResult {
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

func (rep *benchReport) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

func (rep *benchReport) writeText(w io.Writer) error {
	m := rep.Machine
	fmt.Fprintf(w, "profileledger bench (%s size, %.1fs): %s %s/%s, %d CPUs (GOMAXPROCS %d), nats-server %s (%s, %s storage)\n",
		rep.Run.Size, rep.Run.Seconds, m.Go, m.GOOS, m.GOARCH, m.CPUs, m.GOMAXPROCS, m.NATSServer, m.Server, m.Storage)
	if rep.Run.LoadBefore != "" {
		fmt.Fprintf(w, "load average %s before, %s after\n", rep.Run.LoadBefore, rep.Run.LoadAfter)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "name\tvalue\tunit\tbaseline\tratio\ttarget\t")
	missed := 0
	for _, r := range rep.Results {
		base, ratio, mark := r.Baseline, "", ""
		if r.BaselineValue != nil {
			base = fmt.Sprintf("%s: %s %s", r.Baseline, formatValue(*r.BaselineValue, r.Unit), r.Unit)
		}
		if r.Ratio != nil {
			ratio = fmt.Sprintf("%.2f", *r.Ratio)
		}
		if r.Met != nil && !*r.Met {
			mark = "MISSED"
			missed++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, formatValue(r.Value, r.Unit), r.Unit, base, ratio, r.Target, mark)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%d results, %d targets missed.\n", len(rep.Results), missed)
	if len(rep.Run.Failures) > 0 {
		fmt.Fprintf(w, "Scenarios that could not run:\n")
		for _, f := range rep.Run.Failures {
			fmt.Fprintf(w, "  %s\n", f)
		}
	}
	fmt.Fprintln(w, "\nNotes:")
	width := len("machine")
	for _, r := range rep.Results {
		width = max(width, len(r.Name))
	}
	for _, r := range rep.Results {
		if r.Note != "" {
			fmt.Fprintf(w, "  %-*s %s\n", width, r.Name, r.Note)
		}
	}
	_, err := fmt.Fprintf(w, "  %-*s %s\n", width, "machine", m.Notes)
	return err
}

// formatValue prints v with the precision its unit deserves.
func formatValue(v float64, unit string) string {
	switch unit {
	case unitMicros:
		return fmt.Sprintf("%.1f", v)
	case unitMillis:
		return fmt.Sprintf("%.2f", v)
	case unitSeconds:
		return fmt.Sprintf("%.3f", v)
	}
	return fmt.Sprintf("%.0f", v)
}

// Units of results.
const (
	unitMicros  = "µs"
	unitMillis  = "ms"
	unitSeconds = "s"
	unitRate    = "ops/s"
	unitBytes   = "B"
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
