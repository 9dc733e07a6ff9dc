package profileledger

import (
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Option configures a Store.
type Option func(*config)

type config struct {
	leaseTTL        time.Duration
	snapshotEvery   int
	snapshotHistory int
	replicas        int
	storage         jetstream.StorageType
	logger          *slog.Logger
	node            string
	deferred        time.Duration // 0: durable acknowledgement
	maxEventSize    int
	handoverTimeout time.Duration
	skipBadEvents   bool
	maxBatch        int
	validate        any // func(*T) error, checked by Open
	migrations      []Migration
	health          healthConfig // health.go
	inboxLimit      int
	immutableLog    bool // immutable.go
}

func defaultConfig() config {
	return config{
		leaseTTL:        5 * time.Second,
		snapshotEvery:   256,
		snapshotHistory: 5,
		replicas:        1,
		storage:         jetstream.FileStorage,
		logger:          slog.New(slog.DiscardHandler),
		maxEventSize:    256 << 10,
		handoverTimeout: 2 * time.Second,
		maxBatch:        128,
		inboxLimit:      1000,
	}
}

// WithLeaseTTL sets how long a silent holder keeps its lease (default 5 s).
// It is rounded up to whole seconds, the NATS server's TTL granularity. A
// dead holder's profile is taken over about this long after it stopped.
func WithLeaseTTL(d time.Duration) Option { return func(c *config) { c.leaseTTL = d } }

// WithSnapshotEvery sets how many events a session appends between
// snapshots (default 256). Sessions also snapshot when they end.
func WithSnapshotEvery(n int) Option { return func(c *config) { c.snapshotEvery = n } }

// WithReplicas sets the replica count of the stream and buckets (default 1;
// use 3 on a cluster for production).
func WithReplicas(n int) Option { return func(c *config) { c.replicas = n } }

// WithMemoryStorage keeps the stream and buckets in memory: for tests and
// benchmarks only — a server restart loses everything.
func WithMemoryStorage() Option { return func(c *config) { c.storage = jetstream.MemoryStorage } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithNode names this process in leases and events, for people (default:
// the host name).
func WithNode(name string) Option { return func(c *config) { c.node = name } }

// WithDeferredWrites switches Mutate and Apply to deferred mode: a mutation
// changes the session's data at once and returns; its event is appended with
// others every interval and when the session ends (like ProfileService's
// auto-save).
//
// The risk: a mutation that returned nil is not durable until the next
// flush. If the process dies, or a newer session fences this one, before the
// flush, up to interval's worth of mutations are lost — exactly the loss the
// default mode exists to prevent. Version reports the last durable version.
func WithDeferredWrites(interval time.Duration) Option {
	return func(c *config) { c.deferred = interval }
}

// WithMaxEventSize sets the largest encoded event (default 256 KiB; the
// NATS server's max_payload, 1 MiB by default, is the hard ceiling).
func WithMaxEventSize(n int) Option { return func(c *config) { c.maxEventSize = n } }

// WithHandoverTimeout sets how long a contender waits for a live holder's
// hand-over reply before it falls back to waiting for the lease to expire
// (default 2 s).
func WithHandoverTimeout(d time.Duration) Option { return func(c *config) { c.handoverTimeout = d } }

// WithSkipBadEvents makes loads skip events that do not fold onto the
// document (reporting each with its sequence) instead of failing. Messages
// that are not events at all are always skipped and reported.
func WithSkipBadEvents() Option { return func(c *config) { c.skipBadEvents = true } }

// WithValidate makes every change of a profile pass fn before it is
// appended (Lapis's validate, DocumentService's check): fn gets the data as
// the change would leave it — after Mutate's function, Apply's ops, either
// side of a Trade, a Rollback, or a message handler — and a non-nil error
// refuses the change. The caller then gets an error matching both
// ErrInvalidInput and fn's error; nothing is appended and the session stays
// usable. fn must not change the data, and must be fast and pure: it runs
// inside the commit, perhaps more than once. T must be the store's type,
// or Open fails with ErrInvalidInput.
func WithValidate[T any](fn func(*T) error) Option {
	return func(c *config) { c.validate = fn }
}

// WithInboxLimit sets how many messages a profile's inbox holds at most
// (default 1000, as ProfileStore's); past it, Store.Message fails with
// ErrInboxFull. Handled messages count until they are removed, right after
// their events are in the log; if the holder may not remove them (holder
// rights, package roles), only the messages after the profile's handled
// watermark count.
func WithInboxLimit(n int) Option { return func(c *config) { c.inboxLimit = n } }

// SessionOption configures StartSession.
type SessionOption func(*sessionConfig)

type sessionConfig struct {
	steal  bool
	noWait bool
	erase  bool // Erase's session: a fence only (no migration, no reconcile), then the tombstone
}

// Steal makes StartSession take the profile at once, without asking the
// holder. The old holder's next append is rejected by the log's fence and
// its session ends with ErrSessionLost.
func Steal() SessionOption { return func(c *sessionConfig) { c.steal = true } }

// NoWait makes StartSession fail at once with ErrLocked if another session
// holds the profile.
func NoWait() SessionOption { return func(c *sessionConfig) { c.noWait = true } }

// ReadOption configures Get.
type ReadOption func(*readConfig)

type readConfig struct {
	version uint64
	at      time.Time
}

// AtVersion reads the profile as it was at version v (the stream sequence of
// one of its events): every event up to and including v.
func AtVersion(v uint64) ReadOption { return func(c *readConfig) { c.version = v } }

// AtTime reads the profile as it was at t, by the NATS server's timestamps
// of its events.
func AtTime(t time.Time) ReadOption { return func(c *readConfig) { c.at = t } }
