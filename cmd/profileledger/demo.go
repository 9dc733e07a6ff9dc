package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/profileledger/profileledger/internal/demorun"
)

const demoDescription = `
Demo starts an embedded NATS server with JetStream in a temporary directory
and runs simulated game servers on it, each with its own connection and
profileledger Store. Players hop from server to server: each start asks the
current holder to hand the profile over (or, sometimes, steals it), makes a
few mutations, then ends the session or leaves it for the next server while
a stray writer keeps mutating the old session. Midway one server crashes:
its connection is closed without ending anything, and its players are taken
over by the others when their leases expire.

At the end every session is ended and every profile's log is read back:
each acknowledged mutation must be in it exactly once, no rejected one at
all, the log must pass audit.Check, and Store.Get must equal the fold of the
log. Exit status 1 if any check fails.

With -metrics the demo serves Prometheus metrics at http://ADDRESS/metrics
(every server's Store.Collector, labelled server=sN; see the address it
prints) while it runs, and with -hold after the summary too, until it is
interrupted. Each server's store health (Store.Health: critical or not, and
why) is reported as it changes and in the summary.`

func (m *Main) runDemo(ctx context.Context, args []string) int {
	fs := m.newFlagSet("demo", "[flags]", demoDescription)
	var cfg demorun.Config
	var asJSON, verbose, hold bool
	var metrics string
	fs.IntVar(&cfg.Servers, "servers", 4, "`n` simulated game servers")
	fs.IntVar(&cfg.Players, "players", 40, "`n` players hopping between servers")
	fs.DurationVar(&cfg.Duration, "duration", 15*time.Second, "how long the players play")
	fs.Uint64Var(&cfg.Seed, "seed", 0, "`seed` of the players' random choices (0: from the clock)")
	fs.DurationVar(&cfg.LeaseTTL, "lease", time.Second, "lease `TTL`: how long a crashed server's players stay locked (whole seconds)")
	fs.Float64Var(&cfg.Steal, "steal", 0.1, "`fraction` of session starts that steal instead of asking for a hand-over")
	fs.BoolVar(&cfg.Crash, "crash", true, "crash one server midway")
	fs.BoolVar(&asJSON, "json", false, "print the summary as JSON (progress goes to stderr)")
	fs.BoolVar(&verbose, "v", false, "log the library's warnings to stderr")
	fs.StringVar(&metrics, "metrics", "", "serve Prometheus metrics at http://`host:port`/metrics (port 0 picks a free port; the address is printed)")
	fs.BoolVar(&hold, "hold", false, "with -metrics: after the summary, keep serving /metrics until interrupted")
	fs.StringVar(&cfg.Keep, "keep", "", "keep the NATS data in `dir` instead of a temporary directory, for \"profileledger serve -data dir\" and the investigation commands (log, trace, dupes, ...)")
	if code, ok := m.parse(fs, args); !ok {
		return code
	}
	switch {
	case cfg.Servers < 1 || cfg.Crash && cfg.Servers < 2:
		return m.usageError(fs, "-servers %d: need at least 2 (one crashes), or 1 with -crash=false", cfg.Servers)
	case cfg.Players < 1:
		return m.usageError(fs, "-players %d: need at least 1", cfg.Players)
	case cfg.Duration <= 0:
		return m.usageError(fs, "-duration %v: must be positive", cfg.Duration)
	case cfg.LeaseTTL <= 0:
		return m.usageError(fs, "-lease %v: must be positive", cfg.LeaseTTL)
	case cfg.Steal < 0 || cfg.Steal > 1:
		return m.usageError(fs, "-steal %v: must be between 0 and 1", cfg.Steal)
	case hold && metrics == "":
		return m.usageError(fs, "-hold needs -metrics")
	}
	if cfg.Seed == 0 {
		cfg.Seed = uint64(time.Now().UnixNano())
	}
	progress := m.stdout
	if asJSON {
		progress = m.stderr
	}
	cfg.Progress = progress
	if verbose {
		cfg.Log = slog.New(slog.NewTextHandler(m.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	if metrics != "" {
		ms, err := demorun.ServeMetrics(metrics)
		if err != nil {
			fmt.Fprintf(m.stderr, "profileledger demo: -metrics: %v\n", err)
			return exitFail
		}
		defer ms.Close()
		cfg.Metrics = ms
	}
	sum, err := demorun.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(m.stderr, "profileledger demo: %v\n", err)
		return exitFail
	}
	if asJSON {
		err = writeDemoJSON(m.stdout, sum)
	} else {
		err = writeDemoText(m.stdout, sum)
	}
	if err != nil {
		fmt.Fprintf(m.stderr, "profileledger demo: %v\n", err)
		return exitFail
	}
	if hold {
		fmt.Fprintf(progress, "  holding: %s stays up until interrupted\n", cfg.Metrics.URL)
		<-ctx.Done()
	}
	if !sum.Pass {
		return exitFail
	}
	return exitOK
}

// writeDemoJSON prints the summary as one JSON object.
func writeDemoJSON(w io.Writer, s *demorun.Summary) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

// writeDemoText prints the summary for people, ending in PASS or FAIL.
func writeDemoText(w io.Writer, s *demorun.Summary) error {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	v := s.Verification
	line("")
	line("Run")
	line("  game servers             %7d", s.Servers)
	line("  players                  %7d", s.Players)
	line("  duration                 %7.1fs", s.RunSeconds)
	line("Sessions")
	line("  started                  %7d", s.Sessions)
	line("  hand-overs               %7d   p50 %s  p99 %s  max %s  (live holder asked, flushed, ended, released)",
		s.Handovers, msText(s.HandoverP50Ms), msText(s.HandoverP99Ms), msText(s.HandoverMaxMs))
	line("  steals                   %7d   (the old holder is fenced by the log)", s.Steals)
	if s.Crashed != "" {
		line("  take-overs after crash   %7d   p50 %s  max %s  (%s crashed at %.1fs; lease TTL %s)",
			s.Takeovers, msText(s.TakeoverP50Ms), msText(s.TakeoverMaxMs), s.Crashed, s.CrashedAt, time.Duration(s.LeaseTTLMs*float64(time.Millisecond)))
	}
	line("  fresh starts             %7d   (nobody held the profile)", s.Fresh)
	if s.OtherStarts > 0 {
		line("  after a lost session     %7d", s.OtherStarts)
		for _, o := range s.OtherNotes {
			line("    %s", o)
		}
	}
	if s.StartsOnCrashed > 0 {
		line("  cut short by the crash   %7d", s.StartsOnCrashed)
	}
	line("  ended with End           %7d", s.Ends)
	line("Mutations")
	line("  acknowledged             %7d   %.0f/s", s.Acknowledged, s.PerSecond)
	line("  rejected                 %7d   (session handed over, stolen or ended; %d of them by %d stray writers)",
		s.Rejected, s.StragglerRejects, s.Stragglers)
	line("  uncertain                %7d   (no acknowledgement: may or may not be in the log; %d landed)", s.Uncertain+s.Unexplained, v.UncertainLanded)
	if s.Crashed != "" {
		line("  failed on crashed server %7d   (of the rejected and uncertain above)", s.FailedOnCrashed)
	}
	line("Trades (atomic: gems for gold, both profiles in one JetStream batch)")
	line("  acknowledged             %7d   p50 %s  p99 %s", s.Trades.Acknowledged, msText(s.TradeP50Ms), msText(s.TradeP99Ms))
	line("  failed cleanly           %7d   (a side was handed over, stolen or ended: nothing applied)", s.Trades.Failed)
	line("  no deal                  %7d   (nothing to sell or no gold: the trade function said no)", s.Trades.NoDeal)
	line("  uncertain                %7d", s.Trades.Uncertain)
	line("  sessions started         %7d   (by the traders, who take both profiles on one server)", s.Trades.Sessions)
	line("Health (each server's Store.Health when play ended; critical is ProfileStore's IsCriticalState)")
	for _, h := range s.Health {
		state := "ok"
		if h.Critical {
			state = "CRITICAL"
		}
		line("  %-4s %-9s errors %-5d sessions lost %-5d renewals late %-4d %s",
			h.Server, state, h.Errors, h.SessionsLost, h.RenewalsLate, strings.Join(h.Reasons, "; "))
	}
	line("Verification (%d profiles, %d events read back)", v.Profiles, v.Events)
	line("  lost: %d", v.Lost)
	line("  duplicated: %d", v.Duplicated)
	line("  rejected but present: %d", v.RejectedPresent)
	line("  unknown items: %d", v.UnknownItems)
	line("  coin mismatches: %d", v.CoinMismatches)
	line("  out of acknowledgement order: %d", v.OrderViolations)
	line("  Store.Get differs from the fold: %d", v.GetMismatches)
	line("  audit violations: %d", v.AuditViolations)
	line("  gems duplicated: %d", v.GemsDuplicated)
	line("  gems lost: %d", v.GemsLost)
	line("  gold created or destroyed: %d", v.GoldDelta)
	line("  dupes (the dupes command, -path %s): %d", demorun.DupesPattern, v.Dupes)
	g := v.Gifts
	line("  gifts (Store.Message, handled by the sessions): %d sent, %d acknowledged, %d handled (%d after play); lost %d, handled twice %d, misplaced %d, unknown %d",
		g.Sent, g.Acked, g.Handled, g.Drained, g.Lost, g.Duplicated, g.Misplaced, g.Unknown)
	for _, p := range v.Problems {
		line("    %s", p)
	}
	if pr := s.Projections; pr != nil {
		line("Projections (another process: the snapshotter, every %d events, and the gems' owner index)", demorun.SnapshotterEvery)
		line("  snapshotter              %7d events   %d snapshots written", pr.Snapshotter.Events, pr.Snapshotter.Snapshots)
		line("  item index               %7d events   %d gems indexed, %d misplaced", pr.Items.Events, pr.Gems, len(pr.Misplaced))
		line("  lag during play          max %d events, max %s behind the log; caught up after play: %s",
			pr.MaxLagEvents, msText(pr.MaxLagMs), yesNo(pr.CaughtUp))
		line("  dupes seen as they appeared: %d", len(pr.Dupes))
		for _, d := range pr.Dupes {
			line("    %s held by %s (event %s of %q, seq %d)", d.Item, strings.Join(d.Owners, ", "), d.EventID, d.Key, d.Seq)
		}
		for _, m := range pr.Misplaced {
			line("    misplaced: %s", m)
		}
		if pr.Error != "" {
			line("  error: %s", pr.Error)
		}
	}
	warn := func(title string, list []string) {
		if len(list) > 0 {
			line("Warning: %s:", title)
			for _, e := range list {
				line("    %s", e)
			}
		}
	}
	if s.StartErrors > 0 {
		warn(fmt.Sprintf("%d sessions failed to start on a live server", s.StartErrors), s.StartErrorNotes)
	}
	warn("unexplained mutation errors on a live server", s.UnexplainedErrors)
	warn("End failed on a live server", s.EndErrors)
	warn("Close failed on a live server", s.CloseErrors)
	if s.Pass {
		line("PASS")
	} else {
		line("FAIL")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// msText formats milliseconds for people: "3.2ms", "1.31s".
func msText(v float64) string {
	d := time.Duration(v * float64(time.Millisecond))
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= 10*time.Millisecond:
		return d.Round(time.Millisecond).String()
	default:
		return d.Round(100 * time.Microsecond).String()
	}
}
