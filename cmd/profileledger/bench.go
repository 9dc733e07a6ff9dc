package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"

	"github.com/profileledger/profileledger/internal/benchrun"
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

-cluster runs the cluster figures (named cluster_*) instead: bench starts
an embedded 3-node cluster in this process (routed over loopback, file
storage in a temporary directory, removed at the end, also on Ctrl-C),
opens every store with WithReplicas(3) and makes every baseline stream R3.
Clients connect to members that follow the store's stream, so every
append crosses a route, as it does for two clients in three; each note
says where. Its node kill resets the victim's routes before it stops, as
a crash does, and costs a raft election (4 to 9 s) per kill: -cluster
takes 1.5 to 3 minutes, -cluster -quick about 15 s.

The default size takes about 50 s on a 2-core machine, -quick about 10 s
(its histories and session counts are smaller: each row's note gives the
sizes used). The flags below scale single dimensions (0 keeps the size's
default). Notes also give the
process's CPU time per operation (with the embedded server, its work too).

Results (-only takes a comma-separated list of these names):
`

// benchQuickSize is what -quick runs. Tests shrink it further.
var benchQuickSize = benchrun.QuickSize

func (m *Main) runBench(ctx context.Context, args []string) int {
	fs := m.newFlagSet("bench", "[flags]", benchDescription+benchResultsHelp())
	var cfg benchrun.Config
	var asJSON, quick, verbose bool
	var only string
	var over benchrun.Size
	fs.BoolVar(&asJSON, "json", false, "print one JSON object {machine, run, results} instead of the table")
	fs.StringVar(&cfg.Server, "server", "", "NATS `URL` of a running server (default: an embedded server)")
	auth := addAuthFlags(fs)
	fs.BoolVar(&cfg.Cluster, "cluster", false, "run the cluster_* figures on an embedded 3-node cluster with R3 streams and buckets")
	fs.BoolVar(&quick, "quick", false, "small sizes: the whole run in under 10 s")
	fs.StringVar(&only, "only", "", "run only these results (`names`, comma-separated)")
	fs.BoolVar(&verbose, "v", false, "print progress and the library's warnings to stderr")
	fs.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write a CPU profile of the scenarios (and, embedded, the NATS server) to `file`")
	fs.IntVar(&over.Samples, "samples", 0, "latency samples per side of the Mutate figures (`n`)")
	fs.IntVar(&over.StartSamples, "start-samples", 0, "StartSession samples per history size (`n`)")
	fs.IntVar(&over.Rounds, "rounds", 0, "throughput rounds per side (`n`)")
	fs.DurationVar(&over.Round, "round", 0, "length of one throughput round of one side")
	fs.IntVar(&over.Sessions, "sessions", 0, "sessions of aggregate_tput_vs_async (`n`)")
	fs.IntVar(&over.History[3], "history", 0, "events of the largest history, start_p50_100k (`n`)")
	fs.IntVar(&over.Handovers, "handovers", 0, "hand-overs of handover_p99_ms (`n`)")
	fs.IntVar(&over.IdleSessions, "idle", 0, "sessions of idle_session_heap_bytes (`n`)")
	fs.IntVar(&over.Messages, "messages", 0, "delivery samples of message_delivery_p50_us and _p99_us (`n`)")
	fs.IntVar(&over.Burst, "burst", 0, "messages per burst of message_handled_tput (`n`)")
	fs.IntVar(&over.ClusterKills, "kills", 0, "node kills of cluster_takeover_after_node_kill (`n`)")
	if code, ok := m.parse(fs, args); !ok {
		return code
	}
	if err := auth.check(); err != nil {
		return m.usageError(fs, "%v", err)
	}
	if cfg.Server != "" {
		opts, err := auth.options()
		if err != nil {
			return m.usageError(fs, "%v", err)
		}
		cfg.Connect = opts
	}
	cfg.Size = benchrun.DefaultSize
	if quick {
		cfg.Size = benchQuickSize
	}
	for _, f := range []struct {
		name string
		v    int
		dst  *int
		min  int
	}{
		{"samples", over.Samples, &cfg.Size.Samples, 1},
		{"start-samples", over.StartSamples, &cfg.Size.StartSamples, 1},
		{"rounds", over.Rounds, &cfg.Size.Rounds, 1},
		{"sessions", over.Sessions, &cfg.Size.Sessions, benchrun.AggregateWorkers},
		{"history", over.History[3], &cfg.Size.History[3], cfg.Size.History[2]},
		{"handovers", over.Handovers, &cfg.Size.Handovers, 1},
		{"idle", over.IdleSessions, &cfg.Size.IdleSessions, 1},
		{"messages", over.Messages, &cfg.Size.Messages, 1},
		{"burst", over.Burst, &cfg.Size.Burst, 1},
		{"kills", over.ClusterKills, &cfg.Size.ClusterKills, 1},
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
	case over.Round < 0:
		return m.usageError(fs, "-round %v: must be positive", over.Round)
	case over.Round > 0:
		cfg.Size.Round = over.Round
	}
	if cfg.Cluster && cfg.Server != "" {
		return m.usageError(fs, "-cluster starts a cluster of its own: it cannot be used with -server")
	}
	if only != "" {
		cluster := map[string]bool{} // known results: are they cluster ones?
		for _, s := range benchrun.Specs() {
			cluster[s.Name] = s.Cluster
		}
		cfg.Only = map[string]bool{}
		for _, n := range strings.Split(only, ",") {
			n = strings.TrimSpace(n)
			isCluster, known := cluster[n]
			switch {
			case !known:
				return m.usageError(fs, "-only: unknown result %q", n)
			case isCluster && !cfg.Cluster:
				return m.usageError(fs, "-only: %s is measured on a cluster: add -cluster", n)
			case !isCluster && cfg.Cluster:
				return m.usageError(fs, "-only: %s is not measured on a cluster: drop -cluster", n)
			}
			cfg.Only[n] = true
		}
	}
	if verbose {
		cfg.Progress = m.stderr
		cfg.Log = slog.New(slog.NewTextHandler(m.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	rep, err := benchrun.Run(ctx, cfg)
	if rep != nil {
		var werr error
		if asJSON {
			werr = writeBenchJSON(m.stdout, rep)
		} else {
			werr = writeBenchText(m.stdout, rep)
		}
		err = errors.Join(err, werr)
	}
	if err != nil {
		fmt.Fprintf(m.stderr, "profileledger bench: %v\n", err)
		return exitFail
	}
	return exitOK
}

// writeBenchJSON prints rep as one JSON object.
func writeBenchJSON(w io.Writer, rep *benchrun.Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// writeBenchText prints rep as a table of the results, then their notes.
func writeBenchText(w io.Writer, rep *benchrun.Report) error {
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
	case benchrun.UnitMicros:
		return fmt.Sprintf("%.1f", v)
	case benchrun.UnitMillis:
		return fmt.Sprintf("%.2f", v)
	case benchrun.UnitSeconds:
		return fmt.Sprintf("%.3f", v)
	}
	return fmt.Sprintf("%.0f", v)
}

// benchResultsHelp lists the results for the usage text.
func benchResultsHelp() string {
	var b strings.Builder
	for _, s := range benchrun.Specs() {
		fmt.Fprintf(&b, "\n  %-32s %s", s.Name, s.What)
		if s.Baseline != "" {
			fmt.Fprintf(&b, "; vs %s", s.Baseline)
		}
		fmt.Fprintf(&b, "; target: %s", s.Target)
	}
	return b.String()
}
