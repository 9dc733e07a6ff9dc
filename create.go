package profileledger

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger/internal/names"
	"github.com/profileledger/profileledger/internal/retry"
	"github.com/profileledger/profileledger/lease"
	"github.com/profileledger/profileledger/ledger"
	"github.com/profileledger/profileledger/snapshots"
)

// ErrStoreMissing is returned by Open when the store's stream or one of its
// buckets does not exist and this connection could not create it — as a
// user with holder or reader rights cannot (see package roles). Nothing
// was created. The error names the missing parts and the admin step that
// creates them: "profileledger create <store> [flags]" (or Create).
var ErrStoreMissing = errors.New("profileledger: store does not exist")

// Create creates the store called name — its event stream and its lease,
// snapshot and user-id buckets — as Open would, or checks that they exist
// with a compatible configuration. It is the admin step that lets users
// with holder rights (which cannot create streams) Open the store; the
// options that shape the store (WithReplicas, WithMemoryStorage,
// WithMaxEventSize, WithLeaseTTL) must be the ones its users open it
// with. It needs no profile type and starts no background work. ctx
// bounds it (ledger.DefaultTimeout if it has no deadline). Errors:
// ErrInvalidInput, or the NATS error (a user without the rights to
// create streams gets ErrStoreMissing).
func Create(ctx context.Context, js jetstream.JetStream, name string, opts ...Option) error {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	n, err := names.New(name)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	if err := checkConfig(cfg); err != nil {
		return err
	}
	if ctx == nil || js == nil {
		return fmt.Errorf("%w: Create needs a context and a JetStream handle", ErrInvalidInput)
	}
	ctx, cancel := retry.WithDefaultTimeout(ctx, ledger.DefaultTimeout)
	defer cancel()
	_, err = openNATS(ctx, js, n, cfg)
	return err
}

// checkConfig reports an option out of range.
func checkConfig(cfg config) error {
	switch {
	case cfg.leaseTTL <= 0:
		return fmt.Errorf("%w: lease TTL %v must be positive", ErrInvalidInput, cfg.leaseTTL)
	case cfg.snapshotEvery <= 0:
		return fmt.Errorf("%w: snapshot interval %d must be positive", ErrInvalidInput, cfg.snapshotEvery)
	case cfg.replicas < 1 || cfg.replicas > 5:
		return fmt.Errorf("%w: replicas %d must be 1 to 5", ErrInvalidInput, cfg.replicas)
	case cfg.maxEventSize < 1024:
		return fmt.Errorf("%w: max event size %d must be at least 1024", ErrInvalidInput, cfg.maxEventSize)
	case cfg.inboxLimit < 1:
		return fmt.Errorf("%w: inbox limit %d must be at least 1", ErrInvalidInput, cfg.inboxLimit)
	case cfg.deferred < 0:
		return fmt.Errorf("%w: deferred interval %v must not be negative", ErrInvalidInput, cfg.deferred)
	}
	return nil
}

// natsParts are a store's stream and buckets, open.
type natsParts struct {
	stream jetstream.Stream
	leases *lease.Bucket
	snaps  *snapshots.KV
	users  *userIndex
}

// openNATS opens the store's stream and buckets, creating the missing
// ones. When one is missing and cannot be created, the error is
// ErrStoreMissing with the cause; a creation this connection has no right
// to make is given up on as soon as the server reports the permission
// violation, not after ctx's deadline.
func openNATS(ctx context.Context, js jetstream.JetStream, n names.Names, cfg config) (natsParts, error) {
	var missing []string
	for _, s := range []string{n.Stream, names.KVStream(n.Leases), names.KVStream(n.Snapshots), names.KVStream(n.Users)} {
		_, err := js.Stream(ctx, s)
		switch {
		case errors.Is(err, jetstream.ErrStreamNotFound):
			missing = append(missing, s)
		case err != nil:
			return natsParts{}, fmt.Errorf("profileledger: open store %s: look up stream %s: %w", n.Store, s, err)
		}
	}
	if len(missing) > 0 {
		creates := make([]string, len(missing))
		for i, s := range missing {
			creates[i] = "STREAM.CREATE." + s
		}
		cctx, stop := cancelOnDenied(ctx, js.Conn(), creates)
		p, err := openParts(cctx, js, n, cfg)
		if violation := stop(); violation != nil {
			err = violation
		}
		if err != nil {
			return natsParts{}, fmt.Errorf("%w: %s (missing: %s), and this connection could not create it: %w; an admin creates it with: profileledger create %s [flags]",
				ErrStoreMissing, n.Store, strings.Join(missing, ", "), err, n.Store)
		}
		return p, nil
	}
	p, err := openParts(ctx, js, n, cfg)
	if err != nil {
		return natsParts{}, fmt.Errorf("profileledger: open store %s: %w", n.Store, err)
	}
	return p, nil
}

func openParts(ctx context.Context, js jetstream.JetStream, n names.Names, cfg config) (p natsParts, err error) {
	p.stream, err = ledger.OpenStream(ctx, js, ledger.StreamConfig{
		Name: n.Stream, Subjects: n.Subjects(), Replicas: cfg.replicas, Storage: cfg.storage,
		MaxMsgSize: int32(cfg.maxEventSize + 4096), Immutable: cfg.immutableLog,
	})
	if err != nil {
		return p, err
	}
	if p.leases, err = lease.OpenBucket(ctx, js, lease.Config{Bucket: n.Leases, TTL: cfg.leaseTTL, Replicas: cfg.replicas, Storage: cfg.storage}); err != nil {
		return p, err
	}
	if p.snaps, err = snapshots.OpenKV(ctx, js, snapshots.KVConfig{Bucket: n.Snapshots, Replicas: cfg.replicas, History: cfg.snapshotHistory, Storage: cfg.storage}); err != nil {
		return p, err
	}
	p.users, err = openUserIndex(ctx, js, n.Users, cfg.replicas, cfg.storage)
	return p, err
}

// cancelOnDenied returns ctx cancelled once nc reports a permission
// violation for publishing to one of the JetStream API requests apis (such
// as "STREAM.CREATE.PL_players"): NATS answers a denied request with an
// asynchronous error only, so the request itself would wait for its
// deadline. Only a violation reported after the call counts. stop ends the
// watch, waits for it, and returns the violation seen, if any (looking
// once more, for a request that failed for another reason first).
func cancelOnDenied(ctx context.Context, nc *nats.Conn, apis []string) (context.Context, func() error) {
	ctx, cancel := context.WithCancel(ctx)
	before := nc.LastError()
	violation := func() error {
		err := nc.LastError()
		if err == nil || err == before || !errors.Is(err, nats.ErrPermissionViolation) {
			return nil
		}
		for _, api := range apis {
			if strings.Contains(err.Error(), "."+api+`"`) {
				return err
			}
		}
		return nil
	}
	var seen error
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if err := violation(); err != nil {
				seen = err
				cancel()
				return
			}
		}
	}()
	return ctx, func() error {
		close(done)
		wg.Wait()
		cancel()
		if seen == nil {
			seen = violation()
		}
		return seen
	}
}
