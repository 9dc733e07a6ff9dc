package profileledger_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/pltest"
)

// metricValue returns the value of the metric name with labels in what reg
// gathers (a histogram's sample count), failing the test if there is none.
func metricValue(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				return m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				return m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	t.Fatalf("no metric %s%v", name, labels)
	return 0
}

func TestMetricsCountWhatTheStoreDid(t *testing.T) {
	srv := pltest.Run(t)
	reg := prometheus.NewPedanticRegistry()
	var deadConn *nats.Conn
	open := func(node string) *profileledger.Store[Player] {
		js := pltest.Connect(t, srv.URL())
		if node == "dead" {
			deadConn = js.Conn()
		}
		st := openOn(t, js, "metrics", profileledger.WithNode(node))
		prometheus.WrapRegistererWith(prometheus.Labels{"node": node}, reg).MustRegister(st.Collector())
		return st
	}
	a, b, c, dead := open("a"), open("b"), open("c"), open("dead")
	ctx := ctxT(t)
	value := func(node, name string, labels ...string) float64 {
		t.Helper()
		want := map[string]string{"node": node, "store": "metrics"}
		for i := 0; i+1 < len(labels); i += 2 {
			want[labels[i]] = labels[i+1]
		}
		return metricValue(t, reg, "profileledger_"+name, want)
	}

	// a: a fresh start, four acknowledged mutations, one that changes
	// nothing and one whose function fails.
	sa := start(t, a, "p1")
	for range 3 {
		if err := sa.Mutate(ctx, "coins", addCoins(1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := sa.Apply(ctx, "coins", profileledger.Inc("/coins", 1)); err != nil {
		t.Fatal(err)
	}
	if err := sa.Mutate(ctx, "nothing", func(*Player) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := sa.Mutate(ctx, "refused", func(*Player) error { return errors.New("no") }); err == nil {
		t.Fatal("a failing function's mutation succeeded")
	}
	// b steals p1; a's session is lost (by b's notice, or at its next
	// mutation, which is fenced).
	start(t, b, "p1", profileledger.Steal())
	if err := sa.Mutate(ctx, "coins", addCoins(1)); !errors.Is(err, profileledger.ErrSessionLost) {
		t.Fatalf("the robbed session's Mutate: %v, want ErrSessionLost", err)
	}
	// c asks b to hand p1 over, and trades between p1 and p2.
	sc1 := start(t, c, "p1")
	sc2 := start(t, c, "p2")
	if err := profileledger.Trade(ctx, "trade", sc1, sc2, func(x, y *Player) error {
		x.Coins, y.Coins = x.Coins-10, y.Coins+10
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// dead holds p3 and goes silent; c takes p3 over when its lease expires.
	start(t, dead, "p3")
	deadConn.Close()
	start(t, c, "p3")
	dctx, cancel := context.WithTimeout(ctx, time.Second)
	dead.Close(dctx) // its session cannot end: it is abandoned
	cancel()

	for _, tt := range []struct {
		node, name string
		labels     []string
		want       float64
	}{
		{"a", "session_starts_total", nil, 1},
		{"a", "session_start_seconds", nil, 1},
		{"a", "mutations_total", []string{"outcome", "ok"}, 5},
		{"a", "mutations_total", []string{"outcome", "failed"}, 1},
		{"a", "mutations_total", []string{"outcome", "lost"}, 1},
		{"a", "mutation_seconds", nil, 5},
		{"a", "appends_total", []string{"outcome", "ok"}, 5}, // the fence and four changes
		{"a", "events_appended_total", nil, 5},
		{"a", "sessions_ended_total", []string{"reason", "lost"}, 1},
		{"a", "sessions_held", nil, 0},
		{"b", "steals_total", nil, 1},
		{"b", "sessions_ended_total", []string{"reason", "handed_over"}, 1},
		{"c", "handovers_total", nil, 1},
		{"c", "handover_seconds", nil, 1},
		{"c", "takeovers_total", nil, 1},
		{"c", "session_starts_total", nil, 3},
		{"c", "sessions_held", nil, 3},
		{"c", "trades_total", []string{"outcome", "ok"}, 1},
		{"c", "trade_seconds", nil, 1},
		{"c", "critical", nil, 0},
		{"c", "nats_connected", nil, 1},
		{"dead", "nats_connected", nil, 0},
		{"dead", "sessions_ended_total", []string{"reason", "lost"}, 1},
		{"dead", "sessions_held", nil, 0},
	} {
		if got := value(tt.node, tt.name, tt.labels...); got != tt.want {
			t.Errorf("%s: %s%v = %v, want %v", tt.node, tt.name, tt.labels, got, tt.want)
		}
	}

	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := c.Close(cctx); err != nil {
		t.Fatal(err)
	}
	if got := value("c", "sessions_ended_total", "reason", "ended"); got != 3 {
		t.Errorf("c: sessions ended by Close = %v, want 3", got)
	}
	if got := value("c", "sessions_held", nil...); got != 0 {
		t.Errorf("c: sessions held after Close = %v, want 0", got)
	}
}

// TestMetricsCountPendingAndHandledMessages: a handler that refuses a
// message leaves it (and those behind it) pending in the gauge; once it
// takes them, they count as handled and the gauge falls to zero.
func TestMetricsCountPendingAndHandledMessages(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	st := e.open(t, "players")
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(st.Collector()); err != nil {
		t.Fatal(err)
	}
	s := start(t, st, "k")
	var refuse atomic.Bool
	refuse.Store(true)
	s.HandleMessages(func(p *Player, m profileledger.Message) error {
		if refuse.Load() {
			return errors.New("not now")
		}
		p.Coins++
		return nil
	})
	for range 3 {
		if err := st.Message(ctx, "k", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "3 pending in the gauge", func() bool {
		return metricValue(t, reg, "profileledger_messages_pending", nil) == 3
	})
	refuse.Store(false)
	if err := st.Message(ctx, "k", []byte("x")); err != nil { // a wake
		t.Fatal(err)
	}
	waitFor(t, "4 handled", func() bool {
		return metricValue(t, reg, "profileledger_messages_handled_total", nil) == 4
	})
	waitFor(t, "none pending", func() bool {
		return metricValue(t, reg, "profileledger_messages_pending", nil) == 0
	})
	if err := s.End(ctx); err != nil {
		t.Fatal(err)
	}
}
