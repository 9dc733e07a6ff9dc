package audit

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger/internal/keys"
	"github.com/profileledger/profileledger/internal/names"
	"github.com/profileledger/profileledger/internal/retry"
	"github.com/profileledger/profileledger/ledger"
)

// ErrInvalidStore is returned by Store, before any I/O, for a store name
// that no store can have.
var ErrInvalidStore = errors.New("audit: invalid store name")

// ErrNoStore is returned by Store when the store's event stream does not
// exist.
var ErrNoStore = errors.New("audit: no such store")

// Report is what Store found.
type Report struct {
	// Store is the store's name.
	Store string `json:"store"`
	// Profiles is how many profiles were audited: every profile with a
	// subject in the event stream or a key in the snapshot bucket.
	Profiles int `json:"profiles"`
	// Messages is how many messages were read from the profiles' subjects.
	Messages int `json:"messages"`
	// Events is how many events those messages held (a group commit is one
	// message of several events; a message that is not an event holds none).
	Events int `json:"events"`
	// Snapshots is how many stored snapshot values were checked: every
	// revision in the bucket's history, delete and purge markers aside.
	Snapshots int `json:"snapshots"`
	// Violations are all the violations found, by profile (in order of
	// their subject tokens) and sequence. Never nil.
	Violations []Violation `json:"violations"`
}

// Clean reports whether the audit found no violation.
func (r *Report) Clean() bool { return len(r.Violations) == 0 }

// Progress is how far an audit has got, as given to the WithProgress
// callback.
type Progress struct {
	// Profiles is how many of the Total listed profiles have been audited
	// (a listed name that is not a profile key's encoding counts as one).
	Profiles, Total int
	// Events, Snapshots and Violations count what was found so far, as in
	// Report.
	Events, Snapshots, Violations int
}

// Option changes how Store audits.
type Option func(*config)

type config struct {
	progressEvery int
	progress      func(Progress)
	// visit sees each profile's records after they are checked, and
	// returns more violations (TakeDigest, VerifyDigest).
	visit func(key string, recs []ledger.Record) []Violation
}

// WithProgress makes Store call fn after every every-th profile, and once
// after the last one, from the goroutine that called Store. every below 1
// counts as 1. fn must not block for long: the audit waits for it.
func WithProgress(every int, fn func(Progress)) Option {
	return func(c *config) { c.progressEvery, c.progress = max(every, 1), fn }
}

// catchUpTimeout bounds the wait for a lagging replica of the event stream
// to serve the events up to a snapshot's version.
const catchUpTimeout = 10 * time.Second

// Store audits every profile of the store called store on js: it lists the
// profiles (the subjects of the store's stream under pl.<store>.ev. and
// the keys of its snapshot bucket), reads each one's snapshot history, then
// its log, then the stream's messages at the inbox sequences its handled
// messages name, and checks them with CheckProfile (WithInbox). A subject
// or bucket key that is not a profile key's encoding is reported with
// RuleSubjectKey.
//
// A store may be audited while it is in use. Each profile's snapshots are
// read before its log, so a snapshot saved during the audit is never taken
// for one from the future; profiles that appear after the listing are not
// audited. On a replicated stream, a snapshot whose version is beyond the
// log a replica served is judged against the stream leader's last sequence,
// after waiting (up to ten seconds) for the replica to serve that far.
//
// ctx bounds the whole audit; each request without a deadline of its own is
// bounded by ledger.DefaultTimeout. The returned error is ErrInvalidStore,
// ErrNoStore, or a failure to read; then the report holds what was audited
// until then. Violations are never errors: they are in the report.
func Store(ctx context.Context, js jetstream.JetStream, store string, opts ...Option) (*Report, error) {
	rep := &Report{Store: store, Violations: []Violation{}}
	n, err := names.New(store)
	if err != nil {
		return rep, fmt.Errorf("%w: %w", ErrInvalidStore, err)
	}
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	var (
		streamName = n.Stream
		evPrefix   = n.EventsPrefix()
		bucket     = n.Snapshots
		kvStream   = names.KVStream(bucket)
		kvPrefix   = "$KV." + bucket + "."
		api        = names.APIPrefix(js)
	)

	stream, err := js.Stream(ctx, streamName)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return rep, fmt.Errorf("%w: %s (stream %s not found)", ErrNoStore, store, streamName)
	}
	if err != nil {
		return rep, fmt.Errorf("audit: store %s: %w", store, err)
	}
	evSubjects, err := subjects(ctx, stream, evPrefix)
	if err != nil {
		return rep, err
	}
	var kvSubjects map[string]uint64
	snapStream, err := js.Stream(ctx, kvStream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		// No snapshot bucket: nothing to check but the logs.
	case err != nil:
		return rep, fmt.Errorf("audit: snapshot bucket %s: %w", bucket, err)
	case !snapStream.CachedInfo().Config.AllowDirect:
		return rep, fmt.Errorf("audit: snapshot bucket %s does not allow direct gets", bucket)
	default:
		if kvSubjects, err = subjects(ctx, snapStream, kvPrefix); err != nil {
			return rep, err
		}
	}

	tokens := make([]string, 0, len(evSubjects)+len(kvSubjects))
	for tok := range evSubjects {
		tokens = append(tokens, tok)
	}
	for tok := range kvSubjects {
		if _, ok := evSubjects[tok]; !ok {
			tokens = append(tokens, tok)
		}
	}
	slices.Sort(tokens)

	log := ledger.NewLog(js, stream, 1<<20)
	defer log.Close()
	hist := &historyReader{nc: js.Conn(), api: api + "DIRECT.GET." + kvStream}
	defer hist.close()
	lookup := &seqReader{nc: js.Conn(), api: api + "DIRECT.GET." + streamName}

	report := func(done int) {
		if cfg.progress != nil && (done%cfg.progressEvery == 0 || done == len(tokens)) {
			cfg.progress(Progress{Profiles: done, Total: len(tokens), Events: rep.Events, Snapshots: rep.Snapshots, Violations: len(rep.Violations)})
		}
	}
	for i, tok := range tokens {
		if err := ctx.Err(); err != nil {
			return rep, fmt.Errorf("audit: store %s: %w", store, err)
		}
		key, err := keys.Decode(tok)
		if err != nil {
			if n, ok := evSubjects[tok]; ok {
				rep.Violations = append(rep.Violations, Violation{Rule: RuleSubjectKey,
					Detail: fmt.Sprintf("subject %s%s, holding %d message(s), is no profile's: %v", evPrefix, tok, n, err)})
			}
			if _, ok := kvSubjects[tok]; ok {
				rep.Violations = append(rep.Violations, Violation{Rule: RuleSubjectKey,
					Detail: fmt.Sprintf("snapshot bucket %s holds key %q, which is no profile's: %v", bucket, tok, err)})
			}
			report(i + 1)
			continue
		}

		// Snapshots first: then no snapshot saved during the audit can be
		// newer than the log read after it.
		var snaps []StoredSnapshot
		if _, ok := kvSubjects[tok]; ok {
			if snaps, err = hist.read(ctx, kvPrefix+tok); err != nil {
				return rep, err
			}
		}
		var recs []ledger.Record
		collect := func(r ledger.Record) error { recs = append(recs, r); return nil }
		subject := evPrefix + tok
		if err := readLog(ctx, log, subject, 0, collect); err != nil {
			return rep, fmt.Errorf("audit: profile %q: %w", key, err)
		}
		if err := catchUp(ctx, log, js, api, streamName, subject, &recs, snaps, collect); err != nil {
			return rep, fmt.Errorf("audit: profile %q: %w", key, err)
		}

		rep.Profiles++
		rep.Snapshots += len(snaps)
		var seq uint64
		for _, r := range recs {
			if r.Seq != seq {
				rep.Messages++
				seq = r.Seq
			}
			if r.Err == nil {
				rep.Events++
			}
		}
		// The messages the handled ones were, where the stream still has
		// them: read after the log, so every one its events name was
		// published before the look-up.
		found, err := lookup.read(ctx, HandledSeqs(recs))
		if err != nil {
			return rep, fmt.Errorf("audit: profile %q: %w", key, err)
		}
		vs := CheckProfile(key, recs, snaps, WithInbox(n.Inbox(tok), found))
		if cfg.visit != nil {
			vs = append(vs, cfg.visit(key, recs)...)
			slices.SortStableFunc(vs, func(a, b Violation) int { return cmp.Compare(a.Seq, b.Seq) })
		}
		rep.Violations = append(rep.Violations, vs...)
		report(i + 1)
	}
	if len(tokens) == 0 && cfg.progress != nil {
		cfg.progress(Progress{})
	}
	return rep, nil
}

// subjects lists the subjects of stream under prefix (which ends with a
// dot) and their message counts, by the token after prefix. The JetStream
// client pages through the server's answers.
func subjects(ctx context.Context, stream jetstream.Stream, prefix string) (map[string]uint64, error) {
	name := stream.CachedInfo().Config.Name
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(prefix+">"))
	if err != nil {
		return nil, fmt.Errorf("audit: list the subjects of %s: %w", name, err)
	}
	out := make(map[string]uint64, len(info.State.Subjects))
	for subj, n := range info.State.Subjects {
		out[strings.TrimPrefix(subj, prefix)] = n
	}
	return out, nil
}

// catchUp makes sure recs reach every snapshot's version that the stream's
// leader has: a replica serving direct gets may be behind the snapshot
// bucket. Snapshots beyond the leader's last sequence are left for
// CheckProfile to report.
func catchUp(ctx context.Context, log *ledger.Log, js jetstream.JetStream, api, stream, subject string,
	recs *[]ledger.Record, snaps []StoredSnapshot, collect func(ledger.Record) error) error {
	var want uint64
	for _, s := range snaps {
		want = max(want, claimedVersion(s.Data))
	}
	last := func() uint64 {
		if n := len(*recs); n > 0 {
			return (*recs)[n-1].Seq
		}
		return 0
	}
	if want <= last() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, catchUpTimeout)
	defer cancel()
	leader, err := log.LastFromLeader(ctx, subject)
	if err != nil {
		return err
	}
	through := min(want, leader)
	for attempt := 0; last() < through; attempt++ {
		if !retry.Sleep(ctx, retry.Backoff(attempt, time.Millisecond, 100*time.Millisecond)) {
			return fmt.Errorf("audit: read %s: a replica stayed behind sequence %d: %w", subject, through, ctx.Err())
		}
		if err := readLog(ctx, log, subject, last(), collect); err != nil {
			return err
		}
	}
	return nil
}

// readChunk is how many messages one Log.Read call reads at most (a
// variable for tests).
var readChunk = 10_000

// errChunkFull stops a Log.Read call after readChunk messages.
var errChunkFull = errors.New("audit: chunk full")

// readLog calls collect for each record on subject after sequence after, in
// order, in calls of Log.Read of at most readChunk messages each: when ctx
// has no deadline, Log.Read bounds a whole call by ledger.DefaultTimeout,
// which a long log could outlast.
func readLog(ctx context.Context, log *ledger.Log, subject string, after uint64, collect func(ledger.Record) error) error {
	for {
		n, seq := 0, after
		err := log.Read(ctx, subject, after, 0, func(r ledger.Record) error {
			if r.Seq != seq { // the first record of the next message
				if n == readChunk {
					return errChunkFull
				}
				n, seq = n+1, r.Seq
			}
			return collect(r)
		})
		if !errors.Is(err, errChunkFull) {
			return err
		}
		after = seq // every record of message seq was collected
	}
}
