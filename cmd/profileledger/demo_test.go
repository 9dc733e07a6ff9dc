package main

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/profileledger/profileledger/internal/demorun"
)

func TestDemoPasses(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	// 5 s: the traders must get some trades through while players hop
	// (in 3 s under -race a run once had all three of its trades fail cleanly).
	code, stdout, stderr := run(t, ctx, "demo", "-duration", "5s", "-players", "8", "-servers", "3")
	t.Logf("output:\n%s", stdout)
	if stderr != "" {
		t.Logf("stderr:\n%s", stderr)
	}
	if code != exitOK {
		t.Fatalf("exit code %d, want 0", code)
	}
	for _, want := range []string{"lost: 0\n", "duplicated: 0\n", "rejected but present: 0\n", "audit violations: 0\n", "gems duplicated: 0\n", "gems lost: 0\n", "gold created or destroyed: 0\n", "dupes (the dupes command, -path /gems/*): 0\n",
		"dupes seen as they appeared: 0\n", "caught up after play: yes\n", "\nPASS\n"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output does not say %q", want)
		}
	}
	if m := regexp.MustCompile(`Trades[^\n]*\n +acknowledged +(\d+)`).FindStringSubmatch(stdout); m == nil || m[1] == "0" {
		t.Errorf("no trade was acknowledged: %v", m)
	}
	crash := regexp.MustCompile(`crashed s\d, holding (\d+) live sessions`).FindStringSubmatch(stdout)
	if crash == nil {
		t.Fatal("output does not report the crash")
	}
	takeovers := regexp.MustCompile(`take-overs after crash +(\d+)`).FindStringSubmatch(stdout)
	if takeovers == nil {
		t.Fatal("output does not report take-overs after the crash")
	}
	// A player whose session was live on the crashed server is taken over
	// at its next start, unless that start steals (10%) or it was ending.
	held, _ := strconv.Atoi(crash[1])
	if n, _ := strconv.Atoi(takeovers[1]); n == 0 && held >= 3 {
		t.Errorf("the crashed server held %d live sessions, yet no profile was taken over from it", held)
	}
}

func TestDemoJSONSummary(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	code, stdout, stderr := run(t, ctx, "demo", "-json", "-duration", "1s", "-players", "4", "-servers", "2", "-crash=false")
	if code != exitOK {
		t.Fatalf("exit code %d, want 0; stderr:\n%s\nstdout:\n%s", code, stderr, stdout)
	}
	var s demorun.Summary
	if err := json.Unmarshal([]byte(stdout), &s); err != nil {
		t.Fatalf("stdout is not the JSON summary: %v\n%s", err, stdout)
	}
	if !s.Pass || s.Verification == nil || s.Verification.Profiles != 4 || s.Acknowledged == 0 {
		t.Fatalf("summary = %+v, verification = %+v", s, s.Verification)
	}
	if g := s.Verification.Gifts; g.Acked == 0 || g.Handled < g.Acked || g.Lost+g.Duplicated+g.Misplaced+g.Unknown != 0 {
		t.Fatalf("gifts = %+v: want some acknowledged, each handled once", g)
	}
	if s.Crashed != "" {
		t.Errorf("crashed %q with -crash=false", s.Crashed)
	}
}

func TestDemoServesMetricsThatAgreeWithItsSummary(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var stdout, stderr syncBuffer
	exit := make(chan int, 1)
	go func() {
		exit <- NewMain(&stdout, &stderr).Run(ctx, []string{"demo", "-json", "-duration", "2s", "-players", "6", "-servers", "3",
			"-metrics", "127.0.0.1:0", "-hold"})
	}()
	// waitFor waits until the progress output (stderr, with -json)
	// matches re, and returns the match.
	waitFor := func(re string) []string {
		t.Helper()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if m := regexp.MustCompile(re).FindStringSubmatch(stderr.String()); m != nil {
				return m
			}
			select {
			case code := <-exit:
				t.Fatalf("the demo exited with %d before its output matched %q; stderr:\n%s\nstdout:\n%s", code, re, stderr.String(), stdout.String())
			case <-ctx.Done():
				t.Fatalf("the demo's output did not match %q in time; stderr:\n%s", re, stderr.String())
			case <-tick.C:
			}
		}
	}
	url := waitFor(`metrics at (http://\S+/metrics)`)[1]
	waitFor(`players start hopping`)
	if got := len(scrape(t, url)["profileledger_sessions_held"].GetMetric()); got != 3 {
		t.Errorf("while playing, /metrics has sessions_held for %d servers, want 3", got)
	}
	waitFor(`holding: `)
	var s demorun.Summary
	if err := json.Unmarshal([]byte(stdout.String()), &s); err != nil {
		t.Fatalf("stdout is not the JSON summary: %v\n%s", err, stdout.String())
	}
	if !s.Pass {
		t.Fatalf("the demo failed:\n%s", stdout.String())
	}
	mfs := scrape(t, url)
	total := func(name string, labels ...string) float64 { return sumMetric(mfs, "profileledger_"+name, labels...) }
	// Every store counts what its callers saw. The demo's own counts: the
	// players' and traders' session starts, and one start and one Apply
	// per player to mint its gems before play.
	for _, c := range []struct {
		what      string
		got, want float64
	}{
		{"sessions started", total("session_starts_total"), float64(s.Sessions + s.Trades.Sessions + s.Players)},
		{"sessions over", total("sessions_ended_total"), total("session_starts_total")},
		{"sessions held after Close", total("sessions_held"), 0},
		{"mutations acknowledged", total("mutations_total", "outcome", "ok"), float64(s.Acknowledged + s.Players)},
		{"mutations uncertain", total("mutations_total", "outcome", "uncertain"), float64(s.Uncertain)},
		{"mutation latencies", total("mutation_seconds"), float64(s.Acknowledged + s.Players)},
		{"trades acknowledged", total("trades_total", "outcome", "ok"), float64(s.Trades.Acknowledged)},
		{"trades uncertain", total("trades_total", "outcome", "uncertain"), float64(s.Trades.Uncertain)},
		{"start latencies", total("session_start_seconds"), total("session_starts_total")},
	} {
		if c.got != c.want {
			t.Errorf("%s: /metrics says %v, the demo %v", c.what, c.got, c.want)
		}
	}
	if s.Handovers > 0 && total("handovers_total") == 0 {
		t.Errorf("the demo saw %d hand-overs, /metrics none", s.Handovers)
	}
	if len(s.Health) != 3 {
		t.Errorf("the summary reports the health of %d servers, want 3", len(s.Health))
	}
	cancel()
	if code := <-exit; code != exitOK {
		t.Errorf("exit code %d after the hold was interrupted, want 0", code)
	}
}

// scrape gets url and parses the metrics it serves.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	return mfs
}

// sumMetric adds up the metric name over the series whose labels include
// the given name-value pairs (a histogram counts its samples).
func sumMetric(mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	var sum float64
next:
	for _, m := range mfs[name].GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

func TestDemoHoldNeedsMetrics(t *testing.T) {
	code, _, stderr := run(t, t.Context(), "demo", "-hold")
	if code != exitUsage || !strings.Contains(stderr, "-hold needs -metrics") {
		t.Errorf("demo -hold: exit %d, stderr:\n%s", code, stderr)
	}
}
