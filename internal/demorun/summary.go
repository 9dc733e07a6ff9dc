package demorun

import (
	"math"
	"slices"
	"time"
)

// Summary is the demo's result, printed as text or JSON. Durations are in
// milliseconds.
type Summary struct {
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

	Trades     TradeStats `json:"trades"`
	TradeP50Ms float64    `json:"trade_p50_ms"`
	TradeP99Ms float64    `json:"trade_p99_ms"`

	Health []StoreHealth `json:"health"` // each server's Store.Health when play ended

	Verification *Verification     `json:"verification"`
	Projections  *ProjectionReport `json:"projections"`
	Pass         bool              `json:"pass"`
}

func (d *demo) summarize(elapsed time.Duration, closeErrs []string, v *Verification) *Summary {
	st := &d.stats
	st.mu.Lock()
	defer st.mu.Unlock()
	s := &Summary{
		Servers: d.cfg.Servers, Players: d.cfg.Players, Seed: d.cfg.Seed,
		LeaseTTLMs: ms(d.cfg.LeaseTTL), RunSeconds: elapsed.Seconds(),
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
