package demorun

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/examples/projections"
)

// SnapshotterEvery is the demo snapshotter's interval: below the holders'
// own 256, so that the profiles of the crashed server get snapshots too.
const SnapshotterEvery = 64

// ProjectionReport is what the demo's projections did: the snapshotter and
// the item-owner index of the gems, run as another process would, on
// their own connection, from before the gems were minted to after the
// servers closed.
type ProjectionReport struct {
	Snapshotter profileledger.ProjectionCounts `json:"snapshotter"`
	Items       profileledger.ProjectionCounts `json:"items"`
	// MaxLagEvents and MaxLagMs are the most events either projection was
	// behind, and the oldest event it was handed, sampled every 50 ms
	// during play.
	MaxLagEvents uint64  `json:"max_lag_events"`
	MaxLagMs     float64 `json:"max_lag_ms"`
	// CaughtUp says both reached the end of the log after play (each's
	// lag 0 by its consumer's own count).
	CaughtUp bool `json:"caught_up"`
	// Dupes are the dupes the item index saw as they appeared.
	Dupes []projections.Dupe `json:"dupes"`
	// Gems is how many gems the index holds at the end; Misplaced lists
	// those it places elsewhere than the verification's read of the log.
	Gems      int      `json:"gems_indexed"`
	Misplaced []string `json:"misplaced,omitempty"`
	Error     string   `json:"error,omitempty"`
}

// projectionRun is the demo's projector process.
type projectionRun struct {
	nc          *nats.Conn
	st          *profileledger.Store[Player]
	snap, items *profileledger.Projection[Player]
	idx         *projections.ItemIndex[Player]
	cancel      context.CancelFunc
	wg          sync.WaitGroup
	mu          sync.Mutex
	errs        []error
	maxEvents   uint64
	maxLag      time.Duration
	closeOnce   sync.Once
}

func (d *demo) startProjections(ctx context.Context) (*projectionRun, error) {
	nc, err := nats.Connect(d.url, nats.Name("profileledger-demo-projector"))
	if err != nil {
		return nil, fmt.Errorf("projector: connect: %w", err)
	}
	st, err := d.openStore(ctx, nc, "projector")
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("projector: %w", err)
	}
	r := &projectionRun{nc: nc, st: st}
	r.idx = projections.NewItemIndex(func(p *Player) []string { return p.Gems }, nil)
	if r.snap, err = st.Snapshotter(SnapshotterEvery); err == nil {
		r.items, err = st.Project("items", r.idx.Handle, profileledger.ProjectFromStart())
	}
	if err != nil {
		r.close()
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	for _, p := range []*profileledger.Projection[Player]{r.snap, r.items} {
		r.wg.Go(func() {
			if err := p.Run(rctx); err != nil {
				r.mu.Lock()
				r.errs = append(r.errs, fmt.Errorf("%s: %w", p.Name(), err))
				r.mu.Unlock()
			}
		})
	}
	r.wg.Go(func() { // the lag, sampled
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-rctx.Done():
				return
			case <-t.C:
			}
			r.mu.Lock()
			for _, p := range []*profileledger.Projection[Player]{r.snap, r.items} {
				c := p.Counts()
				r.maxEvents = max(r.maxEvents, c.Pending)
				r.maxLag = max(r.maxLag, time.Duration(c.LagSeconds*float64(time.Second)))
			}
			r.mu.Unlock()
		}
	})
	return r, nil
}

// finish waits (within ctx) for both projections to reach the end of the
// log, stops them and reports, the index checked against owners (gem ->
// the profile the verification found it in).
func (r *projectionRun) finish(ctx context.Context, owners map[string]string) *ProjectionReport {
	rep := &ProjectionReport{}
	for {
		s1, err1 := r.snap.Status(ctx)
		s2, err2 := r.items.Status(ctx)
		if err1 == nil && err2 == nil && s1.LagEvents() == 0 && s2.LagEvents() == 0 {
			rep.CaughtUp = true
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
			continue
		}
		break
	}
	r.close()
	rep.Snapshotter, rep.Items = r.snap.Counts(), r.items.Counts()
	rep.MaxLagEvents, rep.MaxLagMs = r.maxEvents, ms(r.maxLag)
	rep.Dupes = r.idx.Dupes()
	if rep.Dupes == nil {
		rep.Dupes = []projections.Dupe{}
	}
	index := r.idx.Index()
	rep.Gems = len(index)
	for gem, want := range owners {
		if got := index[gem]; len(got) != 1 || got[0] != want {
			rep.Misplaced = append(rep.Misplaced, fmt.Sprintf("%s: index %v, log %s", gem, got, want))
		}
	}
	if len(r.errs) > 0 {
		rep.Error = fmt.Sprint(r.errs)
	}
	return rep
}

// ok reports whether the projections agree with the log.
func (rep *ProjectionReport) ok() bool {
	return rep.CaughtUp && len(rep.Dupes) == 0 && len(rep.Misplaced) == 0 && rep.Error == ""
}

// close stops the projections and closes the projector's store and
// connection; calling it again does nothing.
func (r *projectionRun) close() {
	r.closeOnce.Do(func() {
		if r.cancel != nil {
			r.cancel()
		}
		r.wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.st.Close(ctx)
		r.nc.Close()
	})
}
