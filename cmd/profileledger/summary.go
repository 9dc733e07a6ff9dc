package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// summary is the demo's result, printed as text or JSON. Durations are in
// milliseconds.
type summary struct {
	Servers    int     `json:"servers"`
	Players    int     `json:"players"`
	Seed       uint64  `json:"seed"`
	LeaseTTLMs float64 `json:"lease_ttl_ms"`
	RunSeconds float64 `json:"run_seconds"`
	Crashed    string  `json:"crashed_server,omitempty"`
	CrashedAt  float64 `json:"crashed_at_seconds,omitempty"`

	Sessions        int      `json:"sessions_started"`
	Fresh           int      `json:"fresh_starts"`
	Handovers       int      `json:"handovers"`
	HandoverP50Ms   float64  `json:"handover_p50_ms"`
	HandoverP99Ms   float64  `json:"handover_p99_ms"`
	HandoverMaxMs   float64  `json:"handover_max_ms"`
	Steals          int      `json:"steals"`
	Takeovers       int      `json:"takeovers_after_crash"`
	TakeoverP50Ms   float64  `json:"takeover_p50_ms"`
	TakeoverMaxMs   float64  `json:"takeover_max_ms"`
	OtherStarts     int      `json:"starts_after_a_lost_session"`
	OtherNotes      []string `json:"starts_after_a_lost_session_samples,omitempty"`
	StartsOnCrashed int      `json:"starts_cut_by_crash"`
	StartErrors     int      `json:"start_errors"`
	StartErrorNotes []string `json:"start_error_samples,omitempty"`
	Ends            int      `json:"sessions_ended"`
	EndErrors       []string `json:"end_errors,omitempty"`
	CloseErrors     []string `json:"close_errors,omitempty"`
	Stragglers      int      `json:"stray_writers"`

	Attempted         int      `json:"mutations_attempted"`
	Acknowledged      int      `json:"mutations_acknowledged"`
	PerSecond         float64  `json:"acknowledged_per_second"`
	Rejected          int      `json:"rejected"`
	StragglerRejects  int      `json:"rejected_stray_writes"`
	Uncertain         int      `json:"uncertain"`
	Unexplained       int      `json:"unexplained_errors"`
	UnexplainedErrors []string `json:"unexplained_error_samples,omitempty"`
	FailedOnCrashed   int      `json:"failed_on_crashed_server"`

	Trades     tradeStats `json:"trades"`
	TradeP50Ms float64    `json:"trade_p50_ms"`
	TradeP99Ms float64    `json:"trade_p99_ms"`

	Health []storeHealth `json:"health"` // each server's Store.Health when play ended

	Verification *verification `json:"verification"`
	Pass         bool          `json:"pass"`
}

func (d *demo) summarize(elapsed time.Duration, closeErrs []string, v *verification) *summary {
	st := &d.stats
	st.mu.Lock()
	defer st.mu.Unlock()
	s := &summary{
		Servers: d.cfg.servers, Players: d.cfg.players, Seed: d.cfg.seed,
		LeaseTTLMs: ms(d.cfg.leaseTTL), RunSeconds: elapsed.Seconds(),
		Sessions: st.sessions, Fresh: st.fresh,
		Handovers:     len(st.handovers),
		HandoverP50Ms: ms(percentile(st.handovers, 50)), HandoverP99Ms: ms(percentile(st.handovers, 99)),
		HandoverMaxMs: ms(percentile(st.handovers, 100)),
		Steals:        st.steals,
		Takeovers:     len(st.takeovers),
		TakeoverP50Ms: ms(percentile(st.takeovers, 50)), TakeoverMaxMs: ms(percentile(st.takeovers, 100)),
		OtherStarts: st.otherStarts, OtherNotes: st.otherNotes, StartsOnCrashed: st.startsOnCrashed,
		StartErrors: st.startErrors, StartErrorNotes: st.startErrorNotes,
		Ends: st.ends, EndErrors: st.endErrors, CloseErrors: closeErrs, Stragglers: st.stragglers,
		Acknowledged: st.outcomes[acked], Rejected: st.outcomes[rejected], StragglerRejects: st.stragglerRejects,
		Uncertain: st.outcomes[uncertain], Unexplained: st.outcomes[unexplained], UnexplainedErrors: st.unexplainedErrs,
		FailedOnCrashed: st.onCrashed,
		Trades:          st.trades,
		TradeP50Ms:      ms(percentile(st.trades.latencies, 50)), TradeP99Ms: ms(percentile(st.trades.latencies, 99)),
		Verification: v,
	}
	for _, n := range st.outcomes {
		s.Attempted += n
	}
	s.PerSecond = float64(s.Acknowledged) / elapsed.Seconds()
	if d.victim != nil {
		s.Crashed, s.CrashedAt = d.victim.name, d.crashAt.Seconds()
	}
	s.Pass = v.ok()
	return s
}

func (s *summary) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

func (s *summary) writeText(w io.Writer) error {
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
	line("  dupes (the dupes command, -path %s): %d", demoDupesPattern, v.Dupes)
	g := v.Gifts
	line("  gifts (Store.Message, handled by the sessions): %d sent, %d acknowledged, %d handled (%d after play); lost %d, handled twice %d, misplaced %d, unknown %d",
		g.Sent, g.Acked, g.Handled, g.Drained, g.Lost, g.Duplicated, g.Misplaced, g.Unknown)
	for _, p := range v.Problems {
		line("    %s", p)
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

// percentile returns the p-th percentile of ds by nearest rank (100: the
// maximum), 0 if ds is empty.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

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
