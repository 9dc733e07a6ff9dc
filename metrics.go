package profileledger

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/profileledger/profileledger/internal/keys"
	"github.com/profileledger/profileledger/lease"
	"github.com/profileledger/profileledger/ledger"
	"github.com/prometheus/client_golang/prometheus"
)

// Collector returns the store's metrics as a Prometheus collector. The
// store keeps them from Open on (they cost a few atomic adds per call) and
// registers them nowhere: register the collector on your own registry.
// Every metric carries the constant label store=<name>; to register the
// collectors of two Stores of one name in one registry, tell them apart
// with prometheus.WrapRegistererWith (a "node" label, say). The collector
// still reports the final counts after Close, until you unregister it.
//
// The metrics, all prefixed profileledger_:
//
//	sessions_held                    gauge: live sessions the store holds
//	critical                         gauge: 1 while the store is in its critical state (Health)
//	nats_connected                   gauge: 1 while the store's NATS connection is connected
//	session_starts_total             counter: StartSession calls that returned a live session
//	handovers_total                  counter: profiles a live holder handed to this store on request
//	steals_total                     counter: live leases this store took at once (Steal)
//	takeovers_total                  counter: profiles this store took over from a holder that did not answer a
//	                                 hand-over request and whose node's heartbeat then lapsed (counted when it
//	                                 lapses, before the store takes the lease; a racing contender may win it)
//	sessions_ended_total{reason}     counter: sessions over, by reason: ended (End, Close), handed_over, lost
//	mutations_total{outcome}         counter: Mutate and Apply calls, by outcome: ok, uncertain (ErrUncertain),
//	                                 lost (ErrSessionLost), ended (ErrSessionEnded), invalid (ErrInvalidInput,
//	                                 ErrTooLarge), failed (anything else: the function's own error, a context)
//	trades_total{outcome}            counter: Trade calls that ran, by outcome: ok, uncertain, lost, failed
//	appends_total{outcome}           counter: appends to the log (one message or one atomic batch; mutations,
//	                                 group commits, session markers, trades, deferred flushes), by outcome:
//	                                 ok, fenced (refused by the fence: a newer session, or a rewound log),
//	                                 stale (refused: a foreign message moved the log; read and retried),
//	                                 too_large, uncertain (no acknowledgement), error (refused by NATS)
//	events_appended_total            counter: events in the appends that were acknowledged
//	lease_renewals_total{outcome}    counter: renewals of the store's heartbeat (the liveness of all its leases):
//	                                 ok, late (more than half a TTL after the previous one), failed, lost (it
//	                                 lapsed: every session of the store was lost)
//	errors_total{op}                 counter: errors counted against the store's health (OpError.Op)
//	messages_pending                 gauge: inbox messages the store's sessions (HandleMessages) have read and not
//	                                 yet handled: a handler that keeps refusing one shows here
//	messages_handled_total           counter: inbox messages handled, their events committed
//	mutation_seconds                 histogram: acknowledged Mutate and Apply calls, from call to return
//	session_start_seconds            histogram: StartSession calls that returned a session, from call to return
//	handover_seconds                 histogram: hand-over requests the holder granted, from request to reply
//	trade_seconds                    histogram: acknowledged Trade calls, from call to return
func (st *Store[T]) Collector() prometheus.Collector { return st.obs }

// observer counts what a store does, for its metrics (Collector) and its
// health (Health). The store's code calls its hooks; they are cheap
// (atomic adds, a histogram observation) and never block.
type observer struct {
	nc  *nats.Conn
	mon *monitor

	held                                atomic.Int64
	pending                             atomic.Int64 // inbox messages read by a delivery loop, not yet handled
	handled                             atomic.Uint64
	starts, handovers, steals, takeover atomic.Uint64
	ended                               [numEndReasons]atomic.Uint64
	mutations                           [numOutcomes]atomic.Uint64
	trades                              [numOutcomes]atomic.Uint64
	appends                             [numAppendOutcomes]atomic.Uint64
	events                              atomic.Uint64
	renewals                            [numRenewalOutcomes]atomic.Uint64
	errors                              [numOps]atomic.Uint64

	mutationSeconds, startSeconds, handoverSeconds, tradeSeconds prometheus.Histogram
	desc                                                         descs
}

var _ prometheus.Collector = (*observer)(nil)

// Label values, in the order of their counters.
var (
	endReasons      = [...]string{"ended", "handed_over", "lost"}
	outcomes        = [...]string{"ok", "uncertain", "lost", "ended", "invalid", "failed"}
	appendOutcomes  = [...]string{"ok", "fenced", "stale", "too_large", "uncertain", "error"}
	renewalOutcomes = [...]string{"ok", "late", "failed", "lost"}
	ops             = [...]string{opAppend, opRead, opRenew, opLease, opSnapshot, opFlush}
)

const (
	endEnded = iota
	endHandedOver
	endLost
	numEndReasons
)

const (
	outcomeOK = iota
	outcomeUncertain
	outcomeLost
	outcomeEnded
	outcomeInvalid
	outcomeFailed
	numOutcomes
)

const (
	appendOK = iota
	appendFenced
	appendStale
	appendTooLarge
	appendUncertain
	appendError
	numAppendOutcomes
)

const (
	renewalOK = iota
	renewalLate
	renewalFailed
	renewalLost
	numRenewalOutcomes
)

const numOps = len(ops)

type descs struct {
	held, critical, connected                   *prometheus.Desc
	starts, handovers, steals, takeovers, ended *prometheus.Desc
	mutations, trades, appends, events          *prometheus.Desc
	renewals, errors                            *prometheus.Desc
	pending, handled                            *prometheus.Desc
}

// latencyBuckets are the histograms' buckets: 25 µs to 13 s, doubling.
var latencyBuckets = prometheus.ExponentialBuckets(25e-6, 2, 20)

func newObserver(store string, nc *nats.Conn, hc healthConfig) *observer {
	labels := prometheus.Labels{"store": store}
	desc := func(name, help string, variable ...string) *prometheus.Desc {
		return prometheus.NewDesc("profileledger_"+name, help, variable, labels)
	}
	hist := func(name, help string) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "profileledger_" + name, Help: help, ConstLabels: labels, Buckets: latencyBuckets,
		})
	}
	o := &observer{
		nc:              nc,
		mon:             newMonitor(nc, hc),
		mutationSeconds: hist("mutation_seconds", "Acknowledged Mutate and Apply calls, from call to return."),
		startSeconds:    hist("session_start_seconds", "StartSession calls that returned a session, from call to return."),
		handoverSeconds: hist("handover_seconds", "Hand-over requests the holder granted, from request to reply."),
		tradeSeconds:    hist("trade_seconds", "Acknowledged Trade calls, from call to return."),
		desc: descs{
			held:      desc("sessions_held", "Live sessions the store holds."),
			critical:  desc("critical", "1 while the store is in its critical state."),
			connected: desc("nats_connected", "1 while the store's NATS connection is connected."),
			starts:    desc("session_starts_total", "StartSession calls that returned a live session."),
			handovers: desc("handovers_total", "Profiles a live holder handed to this store on request."),
			steals:    desc("steals_total", "Live leases this store took at once (Steal)."),
			takeovers: desc("takeovers_total", "Profiles this store took over from a holder that did not answer and stopped renewing."),
			ended:     desc("sessions_ended_total", "Sessions over, by reason.", "reason"),
			mutations: desc("mutations_total", "Mutate and Apply calls, by outcome.", "outcome"),
			trades:    desc("trades_total", "Trade calls that ran, by outcome.", "outcome"),
			appends:   desc("appends_total", "Appends to the log (one message or one atomic batch), by outcome.", "outcome"),
			events:    desc("events_appended_total", "Events in acknowledged appends."),
			renewals:  desc("lease_renewals_total", "Renewals of the store's heartbeat (the liveness of every lease it holds), by outcome.", "outcome"),
			errors:    desc("errors_total", "Errors counted against the store's health, by operation.", "op"),
			pending:   desc("messages_pending", "Inbox messages the store's sessions have read and not yet handled."),
			handled:   desc("messages_handled_total", "Inbox messages handled (HandleMessages): their events are committed."),
		},
	}
	o.mon.counts = o.addCounts
	return o
}

// start starts the health monitor's loop, a goroutine of the store's.
func (o *observer) start(ctx context.Context, wg *sync.WaitGroup) {
	wg.Add(1)
	go o.mon.run(ctx, wg)
}

func (o *observer) health() Health {
	h := o.mon.snapshot()
	o.addCounts(&h)
	return h
}

// addCounts sets the session and renewal counts of h.
func (o *observer) addCounts(h *Health) {
	h.SessionsHeld = int(o.held.Load())
	h.SessionsLost = o.ended[endLost].Load()
	h.RenewalsLate = o.renewals[renewalLate].Load()
	h.RenewalsFailed = o.renewals[renewalFailed].Load()
}

// fail counts an error against the store's health.
func (o *observer) fail(op, key string, err error) {
	if err == nil || errors.Is(err, context.Canceled) {
		return
	}
	for i, name := range ops {
		if name == op {
			o.errors[i].Add(1)
		}
	}
	o.mon.fail(op, key, err)
}

// readFailed counts a failed read of the log of the profile key, made to
// settle an earlier unknown outcome before an append. A session found lost
// by the read is not an error.
func (o *observer) readFailed(key string, err error) {
	if !errors.Is(err, ErrSessionLost) {
		o.fail(opRead, key, err)
	}
}

// leaseUnreachable counts a failed lease read or write while starting the
// session of the profile whose key encodes to token.
func (o *observer) leaseUnreachable(token string, err error) {
	key, derr := keys.Decode(token)
	if derr != nil {
		key = token
	}
	o.fail(opLease, key, err)
}

// started counts a session that became live t0 after StartSession was
// called.
func (o *observer) started(t0 time.Time) {
	o.starts.Add(1)
	o.held.Add(1)
	o.startSeconds.Observe(time.Since(t0).Seconds())
}

// handover counts a hand-over request sent at t0 and answered now.
func (o *observer) handover(t0 time.Time, released bool) {
	if released {
		o.handovers.Add(1)
		o.handoverSeconds.Observe(time.Since(t0).Seconds())
	}
}

func (o *observer) stole() { o.steals.Add(1) }

// waited counts the end of a wait for a holder that did not answer a
// hand-over request: its lease went (expired on the server, or released
// late), or it was silent for a TTL by this process's clock. Either way
// the store takes the lease next (unless another contender is quicker).
func (o *observer) waited(res lease.WaitResult) {
	if res == lease.Free || res == lease.Expired {
		o.takeover.Add(1)
	}
}

// over counts a live session that ended with err (its Err).
func (o *observer) over(err error) {
	o.held.Add(-1)
	switch {
	case errors.Is(err, ErrHandedOver):
		o.ended[endHandedOver].Add(1)
	case errors.Is(err, ErrSessionLost):
		o.ended[endLost].Add(1)
	default:
		o.ended[endEnded].Add(1)
	}
}

// outcome classifies what a Mutate, Apply or Trade call returned.
func outcome(err error) int {
	switch {
	case err == nil:
		return outcomeOK
	case errors.Is(err, ErrUncertain):
		return outcomeUncertain
	case errors.Is(err, ErrSessionLost):
		return outcomeLost
	case errors.Is(err, ErrSessionEnded), errors.Is(err, ErrClosed):
		return outcomeEnded
	case errors.Is(err, ErrInvalidInput), errors.Is(err, ErrTooLarge):
		return outcomeInvalid
	}
	return outcomeFailed
}

// mutated counts a Mutate or Apply call made at t0 that returned err.
func (o *observer) mutated(t0 time.Time, err error) {
	k := outcome(err)
	o.mutations[k].Add(1)
	if k == outcomeOK {
		o.mutationSeconds.Observe(time.Since(t0).Seconds())
	}
}

// traded counts a Trade call made at t0 that returned err.
func (o *observer) traded(t0 time.Time, err error) {
	k := outcome(err)
	o.trades[k].Add(1)
	if k == outcomeOK {
		o.tradeSeconds.Observe(time.Since(t0).Seconds())
	}
}

// appended counts an append of n events to the log of the profile key
// that returned err. An unknown outcome, or a refusal by NATS other than
// the fence's, is an error of the store's health.
func (o *observer) appended(key string, n int, err error) {
	switch {
	case err == nil:
		o.appends[appendOK].Add(1)
		o.events.Add(uint64(n))
	case errors.Is(err, ledger.ErrFenced), errors.Is(err, ledger.ErrRewound):
		o.appends[appendFenced].Add(1)
	case errors.Is(err, ledger.ErrStale):
		o.appends[appendStale].Add(1)
	case errors.Is(err, ledger.ErrTooLarge):
		o.appends[appendTooLarge].Add(1)
	case errors.Is(err, ledger.ErrUncertain):
		o.appends[appendUncertain].Add(1)
		o.fail(opAppend, key, err)
	default:
		o.appends[appendError].Add(1)
		o.fail(opAppend, key, err)
	}
}

// renewed counts a renewal attempt of the store's heartbeat (the liveness
// of every lease it holds; key is ""), under the store's ctx, that
// returned err; last is when it was last renewed, ttl its time to live. Renewals are due every third of ttl: one
// that lands more than half a ttl after the last is late.
func (o *observer) renewed(ctx context.Context, key string, err error, last time.Time, ttl time.Duration) {
	switch since := time.Since(last); {
	case err == nil && since > ttl/2:
		o.renewals[renewalLate].Add(1)
		o.fail(opRenew, key, fmt.Errorf("heartbeat renewed late: %v after the previous renewal (TTL %v)", since.Round(time.Millisecond), ttl))
	case err == nil:
		o.renewals[renewalOK].Add(1)
	case errors.Is(err, lease.ErrLost):
		o.renewals[renewalLost].Add(1)
	case ctx.Err() != nil:
		// The store is closing.
	default:
		o.renewals[renewalFailed].Add(1)
		o.fail(opRenew, key, err)
	}
}

// Describe sends the descriptors of every metric Collect sends.
func (o *observer) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(o, ch) }

// Collect sends the store's metrics.
func (o *observer) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	counter := func(d *prometheus.Desc, v *atomic.Uint64, label ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v.Load()), label...)
	}
	gauge(o.desc.held, float64(o.held.Load()))
	gauge(o.desc.pending, float64(o.pending.Load()))
	counter(o.desc.handled, &o.handled)
	gauge(o.desc.critical, bool01(o.mon.isCritical()))
	gauge(o.desc.connected, bool01(o.nc.Status() == nats.CONNECTED))
	counter(o.desc.starts, &o.starts)
	counter(o.desc.handovers, &o.handovers)
	counter(o.desc.steals, &o.steals)
	counter(o.desc.takeovers, &o.takeover)
	for i, r := range endReasons {
		counter(o.desc.ended, &o.ended[i], r)
	}
	for i, r := range outcomes {
		counter(o.desc.mutations, &o.mutations[i], r)
		counter(o.desc.trades, &o.trades[i], r)
	}
	for i, r := range appendOutcomes {
		counter(o.desc.appends, &o.appends[i], r)
	}
	counter(o.desc.events, &o.events)
	for i, r := range renewalOutcomes {
		counter(o.desc.renewals, &o.renewals[i], r)
	}
	for i, op := range ops {
		counter(o.desc.errors, &o.errors[i], op)
	}
	ch <- o.mutationSeconds
	ch <- o.startSeconds
	ch <- o.handoverSeconds
	ch <- o.tradeSeconds
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
