package profileledger

import (
	"context"

	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger/internal/names"
	"github.com/profileledger/profileledger/internal/retry"
	"github.com/profileledger/profileledger/ledger"
	"github.com/prometheus/client_golang/prometheus"
)

// ProjectionStatus is where a projection stands, as its consumer and the
// store's stream say: how far behind the log it is, and who is active.
type ProjectionStatus struct {
	// Name is the projection's name; Consumer its durable consumer's.
	Name     string `json:"name"`
	Consumer string `json:"consumer"`
	// StreamLastSeq is the store's stream's last sequence.
	StreamLastSeq uint64 `json:"stream_last_seq"`
	// AckFloor is the sequence through which every event is acknowledged
	// (checkpointed).
	AckFloor uint64 `json:"ack_floor"`
	// BehindSeq is StreamLastSeq - AckFloor: how far the checkpoint is
	// behind the stream's last sequence (inbox messages, which are not
	// projected, count too).
	BehindSeq uint64 `json:"behind_seq"`
	// Pending is how many events the projection has not yet been given;
	// AckPending how many it was given and has not yet acknowledged.
	// Their sum is the lag in events.
	Pending    uint64 `json:"pending"`
	AckPending int    `json:"ack_pending"`
	// Waiting is how many pull requests wait on the consumer: the
	// instances running, roughly.
	Waiting int `json:"waiting"`
	// Pinned is the pin id of the active instance ("" none); PinnedSince
	// when it was pinned.
	Pinned      string    `json:"pinned,omitempty"`
	PinnedSince time.Time `json:"pinned_since,omitzero"`
}

// LagEvents is the projection's lag in events: Pending + AckPending.
func (s ProjectionStatus) LagEvents() uint64 { return s.Pending + uint64(s.AckPending) }

// ProjectionStatuses reads the status of every projection of the store
// called store (by its consumers), in name order. It needs no Store.
func ProjectionStatuses(ctx context.Context, js jetstream.JetStream, store string) ([]ProjectionStatus, error) {
	n, err := names.New(store)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	ctx, cancel := retry.WithDefaultTimeout(ctx, ledger.DefaultTimeout)
	defer cancel()
	stream, err := js.Stream(ctx, n.Stream)
	if err != nil {
		return nil, fmt.Errorf("profileledger: store %s: %w", store, err)
	}
	prefix, _ := n.Projection("x")
	prefix = strings.TrimSuffix(prefix, "x")
	var out []ProjectionStatus
	lister := stream.ListConsumers(ctx)
	for ci := range lister.Info() {
		if name, ok := strings.CutPrefix(ci.Name, prefix); ok {
			out = append(out, statusOf(name, ci, stream.CachedInfo().State.LastSeq))
		}
	}
	if err := lister.Err(); err != nil {
		return nil, fmt.Errorf("profileledger: list projections of %s: %w", store, err)
	}
	// One stream read for all: refresh the last sequence once more, so no
	// consumer reads as ahead of it.
	if info, err := stream.Info(ctx); err == nil {
		for i := range out {
			out[i].StreamLastSeq = max(info.State.LastSeq, out[i].StreamLastSeq)
			out[i].BehindSeq = out[i].StreamLastSeq - out[i].AckFloor
		}
	}
	return out, nil
}

// ProjectionStatusOf reads the status of the store's projection called
// name. Errors: ErrInvalidInput, or jetstream.ErrConsumerNotFound wrapped
// if it has never run.
func ProjectionStatusOf(ctx context.Context, js jetstream.JetStream, store, name string) (ProjectionStatus, error) {
	n, err := names.New(store)
	if err != nil {
		return ProjectionStatus{}, fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	consumer, err := n.Projection(name)
	if err != nil {
		return ProjectionStatus{}, fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	ctx, cancel := retry.WithDefaultTimeout(ctx, ledger.DefaultTimeout)
	defer cancel()
	stream, err := js.Stream(ctx, n.Stream)
	if err != nil {
		return ProjectionStatus{}, fmt.Errorf("profileledger: store %s: %w", store, err)
	}
	c, err := stream.Consumer(ctx, consumer)
	if err != nil {
		return ProjectionStatus{}, fmt.Errorf("profileledger: projection %q of %s: %w", name, store, err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return ProjectionStatus{}, fmt.Errorf("profileledger: store %s: %w", store, err)
	}
	return statusOf(name, c.CachedInfo(), info.State.LastSeq), nil
}

func statusOf(name string, ci *jetstream.ConsumerInfo, last uint64) ProjectionStatus {
	s := ProjectionStatus{
		Name: name, Consumer: ci.Name, StreamLastSeq: max(last, ci.AckFloor.Stream), AckFloor: ci.AckFloor.Stream,
		Pending: ci.NumPending, AckPending: ci.NumAckPending, Waiting: ci.NumWaiting,
	}
	s.BehindSeq = s.StreamLastSeq - s.AckFloor
	for _, g := range ci.PriorityGroups {
		if g.Group == names.ProjectionGroup {
			s.Pinned, s.PinnedSince = g.PinnedClientID, g.PinnedTS
		}
	}
	return s
}

// Status reads the projection's status (ProjectionStatusOf).
func (p *Projection[T]) Status(ctx context.Context) (ProjectionStatus, error) {
	return ProjectionStatusOf(ctx, p.st.js, p.st.names.Store, p.name)
}

// Active reports whether this instance is the one the server delivers to:
// it is running and was pinned. (A pin the server moved since the last
// delivery shows only at the next pull.)
func (p *Projection[T]) Active() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running && p.pinID != ""
}

// ProjectionCounts are what this instance of a projection did since it was
// made.
type ProjectionCounts struct {
	Events        uint64  `json:"events"`         // events folded
	Skipped       uint64  `json:"skipped"`        // messages on profile subjects passed over (not events; zombie writes)
	Loads         uint64  `json:"loads"`          // profiles loaded because their fold was not cached
	Redelivered   uint64  `json:"redelivered"`    // messages delivered more than once
	HandlerErrors uint64  `json:"handler_errors"` // handler calls that failed (and were retried)
	Snapshots     uint64  `json:"snapshots"`      // snapshots written (Snapshotter)
	SnapErrors    uint64  `json:"snapshot_errors"`
	LastSeq       uint64  `json:"last_seq"`    // stream sequence of the newest message delivered
	Pending       uint64  `json:"pending"`     // events not yet delivered when the last one was
	LagSeconds    float64 `json:"lag_seconds"` // age of the last message when it was delivered
	Cached        int     `json:"cached"`      // profiles' folds in memory
}

// Counts returns what this instance did (no request).
func (p *Projection[T]) Counts() ProjectionCounts {
	s := &p.stats
	return ProjectionCounts{
		Events: s.events.Load(), Skipped: s.skipped.Load(), Loads: s.loads.Load(), Redelivered: s.redelivered.Load(),
		HandlerErrors: s.handlerErrors.Load(), Snapshots: s.snapshots.Load(), SnapErrors: s.snapshotErrors.Load(),
		LastSeq: s.lastSeq.Load(), Pending: s.pending.Load(), LagSeconds: time.Duration(s.lagNanos.Load()).Seconds(),
		Cached: p.cache.len(),
	}
}

type projectionDescs struct {
	events, skipped, loads, redelivered, handlerErrors, snapshots, snapshotErrors *prometheus.Desc
	pending, lag, cached, stalled                                                 *prometheus.Desc
}

func (s *projectionStats) init(store, name string) {
	labels := prometheus.Labels{"store": store, "projection": name}
	d := func(n, help string) *prometheus.Desc {
		return prometheus.NewDesc("profileledger_projection_"+n, help, nil, labels)
	}
	s.desc = projectionDescs{
		events:         d("events_total", "Events the projection folded."),
		skipped:        d("skipped_total", "Messages on profile subjects the projection passed over, as a load does."),
		loads:          d("loads_total", "Profiles loaded from snapshot and log because their fold was not cached."),
		redelivered:    d("redelivered_total", "Messages delivered to the projection more than once."),
		handlerErrors:  d("handler_errors_total", "Handler calls that failed and were retried."),
		snapshots:      d("snapshots_total", "Snapshots the snapshotter wrote."),
		snapshotErrors: d("snapshot_errors_total", "Snapshots the snapshotter failed to write."),
		pending:        d("lag_events", "Events appended and not yet delivered to the projection, as of the last delivery."),
		lag:            d("lag_seconds", "Age of the last message delivered to the projection when it was delivered."),
		cached:         d("cached_profiles", "Profiles whose fold the projection keeps in memory."),
		stalled:        d("seconds_since_delivery", "Seconds since a message was last delivered to the projection (lag_events and lag_seconds are as of then: alert on this with lag_events > 0)."),
	}
}

// Collector returns the projection's metrics (profileledger_projection_*,
// labels store and projection): events folded, messages skipped, loads,
// redeliveries, handler errors, snapshots written, the lag (events not
// yet delivered, and the age of the last one delivered, both as of the
// last delivery) and the seconds since that delivery (a stuck projection
// shows there). Register it on your own registry.
func (p *Projection[T]) Collector() prometheus.Collector { return projectionCollector[T]{p} }

type projectionCollector[T any] struct{ p *Projection[T] }

func (c projectionCollector[T]) Describe(ch chan<- *prometheus.Desc) {
	prometheus.DescribeByCollect(c, ch)
}

func (c projectionCollector[T]) Collect(ch chan<- prometheus.Metric) {
	s, d := &c.p.stats, c.p.stats.desc
	counter := func(desc *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v))
	}
	counter(d.events, s.events.Load())
	counter(d.skipped, s.skipped.Load())
	counter(d.loads, s.loads.Load())
	counter(d.redelivered, s.redelivered.Load())
	counter(d.handlerErrors, s.handlerErrors.Load())
	counter(d.snapshots, s.snapshots.Load())
	counter(d.snapshotErrors, s.snapshotErrors.Load())
	ch <- prometheus.MustNewConstMetric(d.pending, prometheus.GaugeValue, float64(s.pending.Load()))
	ch <- prometheus.MustNewConstMetric(d.lag, prometheus.GaugeValue, time.Duration(s.lagNanos.Load()).Seconds())
	ch <- prometheus.MustNewConstMetric(d.cached, prometheus.GaugeValue, float64(c.p.cache.len()))
	stalled := 0.0 // nothing delivered yet
	if at := s.deliveredAt.Load(); at != 0 {
		stalled = time.Since(time.Unix(0, at)).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(d.stalled, prometheus.GaugeValue, stalled)
}
