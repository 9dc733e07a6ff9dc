package profileledger

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Health is what a Store knows of its own health: ProfileStore's
// IsCriticalState, with the figures behind it. Store.Health returns it, and
// the handler of WithCriticalHandler is called with it when the store
// enters or leaves its critical state.
//
// Every duration in it is measured on this process's monotonic clock; no
// judgement compares two machines' clocks. The times in it are for people.
type Health struct {
	// Critical is true while the store is in its critical state: it met
	// errors faster than HealthThresholds allow (Errors within Window), or
	// its NATS connection has been down for longer than they allow
	// (Unreachable). It leaves the state once the connection has been up
	// and no error has happened for Recovery. A game may stop accepting
	// trades while it is true. The store itself works on as it otherwise
	// would: calls fail or succeed on their own merits.
	Critical bool
	// Since is when Critical last changed, or when the store was opened.
	Since time.Time
	// Reasons says, for people, what keeps the store critical now ("NATS
	// unreachable for 3.2s", "7 errors in the last 2m0s") or, while a
	// critical store recovers, how long it has been calm. Empty when the
	// store is not critical and nothing would make it so.
	Reasons []string
	// Reachable is whether the store's NATS connection is connected.
	Reachable bool
	// Errors is the number of errors the critical state counts: those of
	// the last Window, and only those since the store last left its
	// critical state (leaving it starts the count anew).
	Errors int
	// Window is the window Errors counts over (HealthThresholds.Window).
	Window time.Duration
	// ErrorsTotal counts every error since Open.
	ErrorsTotal uint64
	// LastError is the latest error, an *OpError; nil if none since Open.
	LastError error
	// LastErrorAt is when LastError happened.
	LastErrorAt time.Time
	// SessionsHeld is the number of live sessions the store holds.
	SessionsHeld int
	// SessionsLost counts the store's sessions that ended as lost since
	// Open: fenced by a newer session (a steal, a take-over), or lost with
	// the store's heartbeat when it could not be renewed in time. A steal makes one on purpose, so a lost
	// session is not an error by itself; the NATS errors that lose a
	// session are.
	SessionsLost uint64
	// RenewalsLate counts renewals of the store's heartbeat (the liveness
	// of all its leases) that succeeded more than half a lease TTL after
	// the previous one (they are due every third of it): it came within
	// half a TTL of lapsing. Each is an error too.
	RenewalsLate uint64
	// RenewalsFailed counts heartbeat renewal attempts that failed for a
	// reason other than the heartbeat having lapsed. Each is an error too.
	RenewalsFailed uint64
}

// HealthThresholds sets when a Store enters and leaves its critical state
// (WithHealthThresholds). A zero or negative field keeps its default.
type HealthThresholds struct {
	// Errors is how many errors within Window make the store critical
	// (default 5, ProfileStore's CRITICAL_STATE_ERROR_COUNT).
	Errors int
	// Window is how long an error counts (default 2 minutes, ProfileStore's
	// CRITICAL_STATE_ERROR_EXPIRE).
	Window time.Duration
	// Unreachable is how long the NATS connection may be down before the
	// store is critical (default 2 s: well within the default lease TTL of
	// 5 s, after which the store's sessions are lost).
	Unreachable time.Duration
	// Recovery is how long the connection must have been up, with no error,
	// before a critical store leaves its critical state (default 30 s;
	// ProfileStore's CRITICAL_STATE_EXPIRE is 120 s).
	Recovery time.Duration
}

// Defaults of HealthThresholds.
const (
	defaultCriticalErrors = 5
	defaultErrorWindow    = 2 * time.Minute
	defaultUnreachable    = 2 * time.Second
	defaultRecovery       = 30 * time.Second
)

func (t HealthThresholds) withDefaults() HealthThresholds {
	if t.Errors <= 0 {
		t.Errors = defaultCriticalErrors
	}
	if t.Window <= 0 {
		t.Window = defaultErrorWindow
	}
	if t.Unreachable <= 0 {
		t.Unreachable = defaultUnreachable
	}
	if t.Recovery <= 0 {
		t.Recovery = defaultRecovery
	}
	return t
}

// healthConfig is the health part of a Store's configuration.
type healthConfig struct {
	thresholds HealthThresholds
	onCritical func(critical bool, h Health)
	onError    func(err error)
}

// WithHealthThresholds sets when the store enters and leaves its critical
// state; see HealthThresholds for the defaults.
func WithHealthThresholds(t HealthThresholds) Option {
	return func(c *config) { c.health.thresholds = t }
}

// WithCriticalHandler makes the store call fn each time it enters
// (critical true) or leaves (false) its critical state — ProfileStore's
// OnCriticalToggle — with its health at that moment. A store starts out
// not critical, so the first call says true. Calls come one at a time, in
// order, from a goroutine of the store's, until Close; fn must return
// promptly and must not call the store's Close (Close waits for it).
func WithCriticalHandler(fn func(critical bool, h Health)) Option {
	return func(c *config) { c.health.onCritical = fn }
}

// WithErrorHandler makes the store call fn with every error it counts
// against its health — ProfileStore's OnError. Each is an *OpError naming
// what failed and for which profile: an append whose outcome is unknown or
// that NATS refused, a lease renewal that failed or was late, a lease that
// could not be read or written while starting a session, a read of the log
// (to settle an unknown outcome) that failed, a snapshot or a deferred
// flush that failed. Rejections that keep the store safe (a
// fenced append, a profile locked by another session) and the caller's own
// errors (bad input, a cancelled context) are not counted.
//
// Calls come one at a time, in order, from a goroutine of the store's (the
// same as WithCriticalHandler's), until Close; fn must return promptly and
// must not call the store's Close. If fn falls behind by more than 1024
// errors, the excess is counted but not delivered.
func WithErrorHandler(fn func(err error)) Option {
	return func(c *config) { c.health.onError = fn }
}

// OpError is an error the store counted against its health, as the
// handler of WithErrorHandler receives it and Health.LastError holds it.
type OpError struct {
	// Op is what failed: "append", "read" (reading the log to settle an
	// earlier unknown outcome), "renew" (the store's heartbeat: Key is
	// empty), "lease" (reading or writing a lease while starting a
	// session), "snapshot" or "flush".
	Op string
	// Key is the profile's key ("" for the store's heartbeat).
	Key string
	// Err is the cause.
	Err error
}

func (e *OpError) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("profileledger: %s: %v", e.Op, e.Err)
	}
	return fmt.Sprintf("profileledger: %s %q: %v", e.Op, e.Key, e.Err)
}

// Unwrap returns the cause.
func (e *OpError) Unwrap() error { return e.Err }

// Health returns the store's health. Critical and Reasons are as the
// store last judged them (it judges at once when an error happens or its
// connection's status changes, and otherwise at least every second); the
// counts are current. After Close, Health returns the last judgement.
func (st *Store[T]) Health() Health { return st.obs.health() }

// errorQueueCap bounds the errors waiting for the error handler.
const errorQueueCap = 1024

// Operations an OpError names.
const (
	opAppend   = "append"
	opRead     = "read"
	opRenew    = "renew"
	opLease    = "lease"
	opSnapshot = "snapshot"
	opFlush    = "flush"
)

// monitor judges a store's health: it counts errors in a sliding window,
// watches the NATS connection, and enters and leaves the critical state.
// Its loop (run) is the store's goroutine that calls the handlers.
type monitor struct {
	nc     *nats.Conn
	thr    HealthThresholds
	cfg    healthConfig
	wake   chan struct{} // an error happened: judge now
	counts func(*Health) // adds the observer's counts to a Health

	mu          sync.Mutex
	critical    bool
	since       time.Time
	reasons     []string
	reachable   bool
	downSince   time.Time // when the connection was first seen down; zero while up
	lastTrouble time.Time // the last error, or the last time the connection was seen down
	window      errWindow
	total       uint64
	lastErr     error
	lastErrAt   time.Time
	queue       []error // for the error handler
}

func newMonitor(nc *nats.Conn, cfg healthConfig) *monitor {
	thr := cfg.thresholds.withDefaults()
	now := time.Now()
	return &monitor{
		nc: nc, thr: thr, cfg: cfg,
		wake:      make(chan struct{}, 1),
		since:     now,
		reachable: nc.Status() == nats.CONNECTED,
		window:    errWindow{origin: now, width: max(thr.Window/windowSlots, 1)},
	}
}

// fail counts err, met doing op on the profile key, against the store's
// health.
func (m *monitor) fail(op, key string, err error) {
	oe := &OpError{Op: op, Key: key, Err: err}
	now := time.Now()
	m.mu.Lock()
	m.window.add(now)
	m.total++
	m.lastErr, m.lastErrAt, m.lastTrouble = oe, now, now
	if m.cfg.onError != nil && len(m.queue) < errorQueueCap {
		m.queue = append(m.queue, oe)
	}
	m.mu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// tick is how often the loop judges without being woken: often enough to
// notice a threshold passing, at most once a second.
func (m *monitor) tick() time.Duration {
	d := min(m.thr.Unreachable, m.thr.Recovery, m.thr.Window) / 4
	return min(max(d, 10*time.Millisecond), time.Second)
}

// run judges the store's health until ctx ends, at every error, every
// change of the connection's status and every tick, and calls the
// handlers. It is the store's goroutine; wg is the store's.
func (m *monitor) run(ctx context.Context, wg *sync.WaitGroup) {
	defer wg.Done()
	status := m.nc.StatusChanged()
	defer m.nc.RemoveStatusListener(status)
	t := time.NewTicker(m.tick())
	defer t.Stop()
	for {
		toggled, h := m.judge(time.Now())
		m.deliver()
		if toggled && m.cfg.onCritical != nil {
			m.counts(&h)
			m.cfg.onCritical(h.Critical, h)
		}
		select {
		case <-ctx.Done():
			m.deliver() // errors met while the store closed
			return
		case <-t.C:
		case <-m.wake:
		case _, ok := <-status:
			if !ok {
				status = nil
			}
		}
	}
}

// judge looks at the connection and the errors at now, enters or leaves
// the critical state, and reports whether it did, with the health then.
func (m *monitor) judge(now time.Time) (toggled bool, h Health) {
	up := m.nc.Status() == nats.CONNECTED
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reachable = up
	if up {
		m.downSince = time.Time{}
	} else {
		if m.downSince.IsZero() {
			m.downSince = now
		}
		m.lastTrouble = now
	}
	var reasons []string
	if n := m.window.count(now); n >= m.thr.Errors {
		reasons = append(reasons, fmt.Sprintf("%d errors in the last %v", n, m.thr.Window))
	}
	if !up {
		if down := now.Sub(m.downSince); down >= m.thr.Unreachable {
			reasons = append(reasons, fmt.Sprintf("NATS unreachable for %v", down.Round(time.Millisecond)))
		}
	}
	// Errors within the window make the store critical; once it is, what
	// ends the state is calm: the connection up and no error for Recovery.
	switch calm := now.Sub(m.lastTrouble); {
	case !m.critical:
		if len(reasons) > 0 {
			m.critical, m.since, toggled = true, now, true
		}
	case up && calm >= m.thr.Recovery:
		m.critical, m.since, toggled = false, now, true
		m.window.reset() // the errors that made it critical are behind it
		reasons = nil
	case up:
		reasons = append(reasons, fmt.Sprintf("recovering: no error for %v of %v", calm.Round(time.Millisecond), m.thr.Recovery))
	}
	m.reasons = reasons
	return toggled, m.healthLocked(now)
}

// deliver hands the queued errors to the error handler.
func (m *monitor) deliver() {
	m.mu.Lock()
	q := m.queue
	m.queue = nil
	m.mu.Unlock()
	for _, err := range q {
		m.cfg.onError(err)
	}
}

// healthLocked returns the health as last judged, with the current error
// counts; counts adds the session and renewal counts.
func (m *monitor) healthLocked(now time.Time) Health {
	return Health{
		Critical:    m.critical,
		Since:       m.since,
		Reasons:     append([]string(nil), m.reasons...),
		Reachable:   m.reachable,
		Errors:      m.window.count(now),
		Window:      m.thr.Window,
		ErrorsTotal: m.total,
		LastError:   m.lastErr,
		LastErrorAt: m.lastErrAt,
	}
}

func (m *monitor) snapshot() Health {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.healthLocked(time.Now())
}

func (m *monitor) isCritical() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.critical
}

// windowSlots is the number of slots an errWindow divides its window into.
const windowSlots = 64

// errWindow counts events over a sliding window of windowSlots slots, each
// a windowSlots-th of the window, on the monotonic clock: the count covers
// the current slot and the ones before it that are within the window.
type errWindow struct {
	origin time.Time
	width  time.Duration
	slots  [windowSlots]struct {
		at int64 // the slot's number since origin
		n  int
	}
}

func (w *errWindow) slot(now time.Time) int64 { return int64(now.Sub(w.origin) / w.width) }

func (w *errWindow) add(now time.Time) {
	i := w.slot(now)
	s := &w.slots[i%windowSlots]
	if s.at != i {
		s.at, s.n = i, 0
	}
	s.n++
}

func (w *errWindow) count(now time.Time) int {
	i, n := w.slot(now), 0
	for _, s := range w.slots {
		if s.at > i-windowSlots && s.at <= i {
			n += s.n
		}
	}
	return n
}

func (w *errWindow) reset() {
	for i := range w.slots {
		w.slots[i].n = 0
	}
}
