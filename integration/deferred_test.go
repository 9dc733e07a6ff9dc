package integration_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/ledger"
	"github.com/profileledger/profileledger/pltest"
	"github.com/profileledger/profileledger/projector"
)

// Deferred mode (WithDeferredWrites) under DESIGN.md §2's projection
// invariant: a snapshot at version v is the fold of the log up to v, also
// when mutations are applied in memory ahead of the log and flushed later.
// A snapshot that holds a mutation whose event comes after its version
// makes every load from it fold that event twice: an "add /inventory/-"
// becomes a duplicated item.

// TestDeferredFlushSnapshotsAreTheFoldOfTheLog has mutations commit (in
// memory) while explicit Flush calls append them, with a snapshot due at
// almost every flush. The holder reaches NATS through a proxy with a few
// milliseconds of latency, so that every flush's append is in flight long
// enough for mutations to commit meanwhile. Every stored snapshot must be
// the fold of the log up to its version; a read at every version of the
// log a snapshot can serve (and at every 8th of the older ones, which are
// replays) must hold each item once and equal that fold; and a session that
// takes a profile over by steal, with no hand-over (as after a crash),
// must load it with no item twice.
func TestDeferredFlushSnapshotsAreTheFoldOfTheLog(t *testing.T) {
	srv := pltest.Run(t)
	tp := pltest.Proxy(t, srv.URL())
	holder := openNode(t, tp.URL(), "holder", false,
		profileledger.WithDeferredWrites(time.Minute), // only the explicit Flush calls below flush
		profileledger.WithSnapshotEvery(4),
		profileledger.WithLeaseTTL(5*time.Second)) // no take-over here but the steal: a busy machine must not cost the lease
	reader := openNode(t, srv.URL(), "reader", false)
	ctx := testCtx(t, 45*time.Second)

	const flushes = 20
	ended := []string{"deferred-0", "deferred-1", "deferred-2"}
	const stolen = "deferred-stolen"
	durable := map[string][]string{} // profile -> items a Flush or End returned nil after
	for _, key := range ended {
		s, err := holder.st.StartSession(ctx, key)
		if err != nil {
			t.Fatalf("StartSession %q: %v", key, err)
		}
		tp.Latency(5*time.Millisecond, 0)
		applied, _ := pumpDeferred(t, ctx, s, flushes)
		tp.Latency(0, 0)
		if err := s.End(ctx); err != nil {
			t.Fatalf("End %q: %v", key, err)
		}
		durable[key] = applied
		t.Logf("%s: %d items applied during %d flushes, ended at version %d", key, len(applied), flushes, s.Version())
	}

	// The same, but the profile is then taken by steal: the new session
	// loads the newest snapshot (the last flush's) and the events after it.
	s, err := holder.st.StartSession(ctx, stolen)
	if err != nil {
		t.Fatalf("StartSession %q: %v", stolen, err)
	}
	tp.Latency(5*time.Millisecond, 0)
	applied, flushed := pumpDeferred(t, ctx, s, flushes)
	tp.Latency(0, 0)
	durable[stolen] = flushed
	if v := s.Version(); !waitSnapshotAt(ctx, reader, stolen, v) {
		t.Logf("%s: no snapshot at version %d (the last flush's) was stored; the steal loads an older one", stolen, v)
	}
	thief, err := reader.st.StartSession(ctx, stolen, profileledger.Steal())
	if err != nil {
		t.Fatalf("StartSession %q with Steal: %v", stolen, err)
	}
	got, rep := thief.Data(), thief.LoadReport()
	recs := readLog(t, reader.js, stolen)
	if dupes := twiceHeld(got.Inventory); len(dupes) > 0 {
		t.Errorf("%s: the session that stole it (loaded from snapshot %d and %d events) holds %d item(s) twice: %v",
			stolen, rep.SnapshotVersion, rep.Replayed, len(dupes), firstFive(dupes))
	}
	if want := foldLog(t, recs, started(recs, thief.ID())); !samePlayer(got, want) {
		inLog := itemCounts(want.Inventory)
		var phantoms []string
		for _, it := range got.Inventory {
			if inLog[it] == 0 {
				phantoms = append(phantoms, it)
			}
		}
		t.Errorf("%s: the session that stole it (loaded from snapshot %d and %d events) holds %d items, %d of them in no event of the log (%v); the log's fold up to its start holds %d",
			stolen, rep.SnapshotVersion, rep.Replayed, len(got.Inventory), len(phantoms), firstFive(phantoms), len(want.Inventory))
	}
	if err := thief.End(ctx); err != nil {
		t.Fatalf("End %q (the thief): %v", stolen, err)
	}
	if err := waitDone(t, s, "the holder it was stolen from"); !errors.Is(err, profileledger.ErrSessionLost) {
		t.Errorf("%s: the holder it was stolen from ended with %v, want ErrSessionLost", stolen, err)
	}
	t.Logf("%s: %d items applied, %d of them flushed, then stolen; the thief loaded snapshot %d and %d events",
		stolen, len(applied), len(flushed), rep.SnapshotVersion, rep.Replayed)

	// Close waits for the snapshots saved in the background.
	if err := holder.st.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}

	auditStore(t, reader.js)
	for _, key := range append(ended, stolen) {
		recs := readLog(t, reader.js, key)
		checkLog(t, key, recs)
		versions, read, bad := checkVersions(t, ctx, reader, key, recs, 8)
		final, err := reader.st.Get(ctx, key)
		if err != nil {
			t.Fatalf("Get %q: %v", key, err)
		}
		n := itemCounts(final.Data.Inventory)
		for _, it := range durable[key] {
			if n[it] != 1 {
				t.Errorf("%s: acknowledged item %s is there %d times, want once", key, it, n[it])
			}
		}
		if key != stolen && len(final.Data.Inventory) != len(durable[key]) {
			t.Errorf("%s: %d items, want the %d applied", key, len(final.Data.Inventory), len(durable[key]))
		}
		t.Logf("%s: %d versions, %d read, %d differ from the log's fold", key, versions, read, bad)
	}
}

// pumpDeferred has three goroutines apply uniquely named items to s
// while it flushes s flushes times, and stops them after the last flush.
// Each flush starts once four mutations were applied since the previous
// one returned, and the mutators go on while it is in flight, the last
// one included (a bucket keeps a profile's five newest snapshots, and those
// are the ones an audit sees); they pause when sixteen are waiting, which
// bounds the profile's size. It returns the items applied, and those
// applied before the last successful Flush began.
func pumpDeferred(t testing.TB, ctx context.Context, s *profileledger.Session[Player], flushes int) (applied, flushed []string) {
	t.Helper()
	var mu sync.Mutex
	returned := 0 // len(applied) when the last flush returned
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for m := range 3 {
		wg.Go(func() {
			for i := 0; ; {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				full := len(applied) >= returned+16
				mu.Unlock()
				if full { // enough until the flush in flight returns
					time.Sleep(100 * time.Microsecond)
					continue
				}
				i++
				item := fmt.Sprintf("%s/m%d-%d", s.Key(), m, i)
				if err := s.Apply(ctx, "item", profileledger.Add("/inventory/-", item)); err != nil {
					t.Errorf("Apply %s: %v", item, err)
					return
				}
				mu.Lock()
				applied = append(applied, item)
				mu.Unlock()
				time.Sleep(time.Duration(rand.IntN(1000)) * time.Microsecond)
			}
		})
	}
	for range flushes {
		var n int
		for {
			mu.Lock()
			n = len(applied)
			mu.Unlock()
			if n >= returned+4 || ctx.Err() != nil {
				break
			}
			time.Sleep(100 * time.Microsecond)
		}
		if err := s.Flush(ctx); err != nil {
			t.Errorf("Flush %q: %v", s.Key(), err)
			break
		}
		mu.Lock()
		flushed = slices.Clone(applied[:n])
		returned = len(applied)
		mu.Unlock()
	}
	close(stop)
	wg.Wait()
	return applied, flushed
}

// waitSnapshotAt waits until a read of key through n starts from a snapshot
// at version v or later, and reports whether it did within five seconds.
func waitSnapshotAt(ctx context.Context, n *node, key string, v uint64) bool {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		view, err := n.st.Get(ctx, key)
		if err == nil && view.Report.SnapshotVersion >= v {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// TestDeferredWorkloadNeverDuplicates races, on three nodes in deferred
// mode with a short flush interval and a snapshot every few events,
// mutations that add uniquely named items, explicit flushes, trades that
// move an item and coins between two profiles held by one node, and
// hand-overs (a node starting a session on a profile another session holds
// asks that one to hand over). At the end: all sessions are over, the
// audit is clean, no profile holds an item twice at any version, a read at
// every version equals the fold of the log, no item is in two profiles,
// every item acknowledged durable (by a Flush or End that returned nil
// after it was applied) is in exactly one profile, no rejected one is in
// any, and trades conserved the coins.
//
// Deferred mode may lose applied mutations whose session is lost before
// they are flushed (WithDeferredWrites documents the risk), so an applied
// item that no Flush or End acknowledged may be missing; it may never be
// there twice.
func TestDeferredWorkloadNeverDuplicates(t *testing.T) {
	load := 3 * time.Second
	if testing.Short() {
		load = 1500 * time.Millisecond
	}
	const snapshotEvery = 4
	srv := pltest.Run(t)
	opts := []profileledger.Option{
		profileledger.WithDeferredWrites(20 * time.Millisecond),
		profileledger.WithSnapshotEvery(snapshotEvery),
	}
	nodes := []*node{
		openNode(t, srv.URL(), "a", false, opts...),
		openNode(t, srv.URL(), "b", false, opts...),
		openNode(t, srv.URL(), "c", false, opts...),
	}
	profiles := []string{"dw-0", "dw-1", "dw-2", "dw-3"}
	ctx := testCtx(t, 2*time.Minute)

	w := &dupeWorkload{nodes: nodes, profiles: profiles, items: map[string]*dupeItem{}, errs: map[string]int{}}
	until := time.Now().Add(load)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() { w.worker(ctx, g, until) })
	}
	wg.Wait()
	// End what the workers left to be handed over, then check that every
	// session is over.
	for _, h := range w.abandoned {
		ectx, cancel := context.WithTimeout(ctx, 5*time.Second)
		h.end(ectx, w)
		cancel()
	}
	for _, h := range w.all {
		select {
		case <-h.s.Done():
		default:
			t.Errorf("session %s of %q is still live after the workload ended it", h.s.ID(), h.key)
		}
		if errors.Is(h.s.Err(), profileledger.ErrHandedOver) {
			w.handedOver++
		}
	}
	// Close waits for the snapshots saved in the background.
	for _, n := range nodes {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := n.st.Close(cctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		cancel()
	}
	w.log(t)
	if w.tradesOK == 0 {
		t.Error("no trade went through: the workload did not run")
	}
	if w.handedOver == 0 {
		t.Error("no session was handed over: the workload did not race hand-overs")
	}

	auditor := openNode(t, srv.URL(), "auditor", false)
	auditStore(t, auditor.js)
	w.verify(t, ctx, auditor, snapshotEvery)
}

// dupeWorkload is the state of TestDeferredWorkloadNeverDuplicates.
type dupeWorkload struct {
	nodes    []*node
	profiles []string

	mu         sync.Mutex
	items      map[string]*dupeItem
	all        []*dupeHold // every session started
	abandoned  []*dupeHold // left open for a hand-over or the final End
	errs       map[string]int
	rounds     int
	flushesOK  int
	tradesOK   int
	noDeal     int
	handedOver int
}

// dupeItem is what the workload knows of one item.
type dupeItem struct {
	profile string // the profile it was added to
	applied bool   // Apply returned nil
	durable bool   // a Flush or End returned nil after Apply did
}

// dupeHold is one session of the workload with the items applied
// through it, in order.
type dupeHold struct {
	s   *profileledger.Session[Player]
	key string

	mu      sync.Mutex
	applied []string
}

var errNothingToMove = errors.New("nothing to trade")

// worker runs rounds until the deadline: it takes one profile (or two, to
// trade) on a random node, hammers it for a few tens of milliseconds with
// concurrent mutations, flushes and trades, and then ends its sessions or
// leaves them open for the next contender to take by hand-over.
func (w *dupeWorkload) worker(ctx context.Context, g int, until time.Time) {
	rng := rand.New(rand.NewPCG(uint64(g), 7))
	n := 0
	for ctx.Err() == nil && time.Now().Before(until) {
		nd := w.nodes[rng.IntN(len(w.nodes))]
		i := rng.IntN(len(w.profiles))
		picked := []string{w.profiles[i]}
		if rng.IntN(3) == 0 {
			j := rng.IntN(len(w.profiles) - 1)
			if j >= i {
				j++
			}
			picked = append(picked, w.profiles[j])
		}
		var holds []*dupeHold
		for _, key := range picked {
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			s, err := nd.st.StartSession(sctx, key)
			cancel()
			if err != nil {
				w.note("start", err)
				break
			}
			h := &dupeHold{s: s, key: key}
			holds = append(holds, h)
			w.mu.Lock()
			w.all = append(w.all, h)
			w.mu.Unlock()
		}
		if len(holds) < len(picked) {
			for _, h := range holds {
				ectx, cancel := context.WithTimeout(ctx, 5*time.Second)
				h.end(ectx, w)
				cancel()
			}
			time.Sleep(5 * time.Millisecond)
			continue
		}
		w.mu.Lock()
		w.rounds++
		w.mu.Unlock()

		stopAt := time.Now().Add(time.Duration(10+rng.IntN(50)) * time.Millisecond)
		var rw sync.WaitGroup
		for _, h := range holds {
			for m := range 2 {
				n++
				prefix := fmt.Sprintf("g%d-r%d-m%d", g, n, m)
				rw.Go(func() { w.mutate(ctx, h, prefix, stopAt) })
			}
			rw.Go(func() { w.flush(ctx, h, stopAt) })
		}
		if len(holds) == 2 {
			rw.Go(func() { w.trade(ctx, holds[0], holds[1], stopAt) })
		}
		rw.Wait()

		for _, h := range holds {
			if rng.IntN(3) == 0 {
				w.mu.Lock()
				w.abandoned = append(w.abandoned, h)
				w.mu.Unlock()
				continue
			}
			ectx, cancel := context.WithTimeout(ctx, 5*time.Second)
			h.end(ectx, w)
			cancel()
		}
	}
}

// mutate adds uniquely named items to h's profile until stopAt or until
// the session refuses one.
func (w *dupeWorkload) mutate(ctx context.Context, h *dupeHold, prefix string, stopAt time.Time) {
	for i := 0; time.Now().Before(stopAt); i++ {
		item := fmt.Sprintf("%s/%s-%d", h.key, prefix, i)
		w.mu.Lock()
		w.items[item] = &dupeItem{profile: h.key}
		w.mu.Unlock()
		mctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := h.s.Apply(mctx, "item", profileledger.Add("/inventory/-", item))
		cancel()
		if err != nil {
			w.note("apply", err)
			return
		}
		h.mu.Lock()
		h.applied = append(h.applied, item)
		h.mu.Unlock()
		w.mu.Lock()
		w.items[item].applied = true
		w.mu.Unlock()
		time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
	}
}

// flush flushes h every few milliseconds until stopAt or until it fails.
func (w *dupeWorkload) flush(ctx context.Context, h *dupeHold, stopAt time.Time) {
	for time.Now().Before(stopAt) {
		time.Sleep(time.Duration(rand.IntN(5000)) * time.Microsecond)
		h.mu.Lock()
		before := slices.Clone(h.applied)
		h.mu.Unlock()
		fctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := h.s.Flush(fctx)
		cancel()
		if err != nil {
			w.note("flush", err)
			return
		}
		w.acknowledge(before)
		w.mu.Lock()
		w.flushesOK++
		w.mu.Unlock()
	}
}

// trade moves a random item, and some coins the other way, between a's
// and b's profiles, in a random direction, every few milliseconds until
// stopAt or until a trade fails other than for want of an item.
func (w *dupeWorkload) trade(ctx context.Context, a, b *dupeHold, stopAt time.Time) {
	for time.Now().Before(stopAt) {
		time.Sleep(time.Duration(2+rand.IntN(6)) * time.Millisecond)
		from, to := a, b
		if rand.IntN(2) == 0 {
			from, to = b, a
		}
		tctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := profileledger.Trade(tctx, "trade", from.s, to.s, func(pf, pt *Player) error {
			if len(pf.Inventory) == 0 {
				return errNothingToMove
			}
			k := rand.IntN(len(pf.Inventory))
			pt.Inventory = append(pt.Inventory, pf.Inventory[k])
			pf.Inventory = slices.Delete(pf.Inventory, k, k+1)
			price := min(rand.IntN(20), pt.Coins)
			pf.Coins += price
			pt.Coins -= price
			return nil
		})
		cancel()
		w.mu.Lock()
		switch {
		case err == nil:
			w.tradesOK++
		case errors.Is(err, errNothingToMove):
			w.noDeal++
		}
		w.mu.Unlock()
		if err != nil && !errors.Is(err, errNothingToMove) {
			w.note("trade", err)
			return
		}
	}
}

// end ends h's session; if End returns nil, every item applied through it
// is durable.
func (h *dupeHold) end(ctx context.Context, w *dupeWorkload) {
	h.mu.Lock()
	before := slices.Clone(h.applied)
	h.mu.Unlock()
	if err := h.s.End(ctx); err != nil {
		w.note("end", err)
		return
	}
	w.acknowledge(before)
}

func (w *dupeWorkload) acknowledge(items []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, it := range items {
		w.items[it].durable = true
	}
}

var quotedText = regexp.MustCompile(`"[^"]*"`)

func (w *dupeWorkload) note(what string, err error) {
	s := quotedText.ReplaceAllString(err.Error(), `"…"`) // profile names and ids vary
	if len(s) > 120 {
		s = s[:120]
	}
	w.mu.Lock()
	w.errs[what+": "+s]++
	w.mu.Unlock()
}

func (w *dupeWorkload) log(t testing.TB) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	applied, durable := 0, 0
	for _, it := range w.items {
		if it.applied {
			applied++
		}
		if it.durable {
			durable++
		}
	}
	t.Logf("workload: %d rounds, %d sessions (%d handed over), %d items applied (%d acknowledged durable), %d flushes, %d trades (%d without an item to trade)",
		w.rounds, len(w.all), w.handedOver, applied, durable, w.flushesOK, w.tradesOK, w.noDeal)
	t.Logf("errors seen: %v", w.errs)
}

// verify reads every profile back through n: every version of its log,
// then the final data of all of them together.
func (w *dupeWorkload) verify(t testing.TB, ctx context.Context, n *node, snapshotEvery int) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	owner := map[string][]string{} // item -> the profiles holding it at the end
	coins := 0
	for _, key := range w.profiles {
		recs := readLog(t, n.js, key)
		checkLog(t, key, recs)
		events := 0
		for _, r := range recs {
			if r.Err == nil {
				events++
			}
		}
		if events < 2*snapshotEvery {
			t.Errorf("%s: %d events in the log: the workload reached too few snapshots", key, events)
		}
		// Every 16th of the replayed versions: thousands of full replays
		// would cost minutes under the race detector.
		versions, read, bad := checkVersions(t, ctx, n, key, recs, 16)
		final, err := n.st.Get(ctx, key)
		if err != nil {
			t.Fatalf("Get %q: %v", key, err)
		}
		coins += final.Data.Coins
		for _, it := range final.Data.Inventory {
			owner[it] = append(owner[it], key)
		}
		t.Logf("%s: %d events in %d messages, %d versions read (%d differ), final version %d, %d items, %d coins",
			key, events, versions, read, bad, final.Version, len(final.Data.Inventory), final.Data.Coins)
	}
	for it, keys := range owner {
		if w.items[it] == nil {
			t.Errorf("%s is in %v but was never written", it, keys)
		}
	}
	lost, doubled, ghosts, missingOK := 0, 0, 0, 0
	for name, it := range w.items {
		switch c := len(owner[name]); {
		case c > 1:
			doubled++
			t.Errorf("item %s (added to %s) is held %d times: by %v", name, it.profile, c, owner[name])
		case c == 0 && it.durable:
			lost++
			t.Errorf("item %s, acknowledged durable on %s, is in no profile", name, it.profile)
		case c == 1 && !it.applied:
			ghosts++
			t.Errorf("item %s, whose Apply failed, is in %s", name, owner[name][0])
		case c == 0 && it.applied:
			missingOK++ // applied, never acknowledged durable, and lost: the documented risk
		}
	}
	if want := len(w.profiles) * tmpl().Coins; coins != want {
		t.Errorf("coins add up to %d, want %d", coins, want)
	}
	t.Logf("items: %d held once, %d doubled, %d acknowledged but lost, %d rejected but present, %d applied unacknowledged and lost",
		len(owner)-doubled, doubled, lost, ghosts, missingOK)
}

// checkVersions reads key through n at the versions of its log, recs,
// and fails t for every read that holds an item twice or differs from the
// fold of the log up to its version, and for every version at which that
// fold itself holds an item twice. Reads go newest first and cover every
// version down to the newest one that no stored snapshot is at or below: a
// read there, or below, is a replay from the first event, which no
// snapshot can spoil, and of those every stride-th is read (1: all). It
// returns how many versions the log has, how many were read, and how many
// were wrong.
func checkVersions(t testing.TB, ctx context.Context, n *node, key string, recs []ledger.Record, stride int) (versions, read, bad int) {
	t.Helper()
	vs, folds := foldsByVersion(t, recs)
	if len(vs) == 0 {
		t.Errorf("%s: the log is empty", key)
		return 0, 0, 0
	}
	// The incremental fold agrees with the one every other test uses.
	if last := vs[len(vs)-1]; !samePlayer(folds[last], foldLog(t, recs, 0)) {
		t.Errorf("%s: the incremental fold at %d differs from foldLog", key, last)
	}
	replay := false
	for i, v := range slices.Backward(vs) {
		if dupes := twiceHeld(folds[v].Inventory); len(dupes) > 0 {
			if bad++; bad <= 3 {
				t.Errorf("%s: the log itself, folded up to version %d, holds %d item(s) twice: %v", key, v, len(dupes), firstFive(dupes))
			}
			continue
		}
		if replay && i%stride != 0 {
			continue
		}
		view, err := n.st.Get(ctx, key, profileledger.AtVersion(v))
		if err != nil {
			t.Fatalf("Get %q at version %d: %v", key, v, err)
		}
		read++
		if !readEqualsFold(t, key, v, view, folds[v], bad < 3) {
			bad++
		}
		replay = view.Report.SnapshotVersion == 0
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d versions are wrong: read with an item twice, or not as the fold of the log up to them", key, bad, len(vs))
	}
	return len(vs), read, bad
}

// profileVersions returns the distinct sequences of recs, in order: the
// versions of the profile.
func profileVersions(recs []ledger.Record) []uint64 {
	var out []uint64
	for _, r := range recs {
		if len(out) == 0 || out[len(out)-1] != r.Seq {
			out = append(out, r.Seq)
		}
	}
	return out
}

// foldsByVersion folds recs once, as foldLog does, and returns the versions
// and the data at each.
func foldsByVersion(t testing.TB, recs []ledger.Record) ([]uint64, map[uint64]Player) {
	t.Helper()
	versions := profileVersions(recs)
	folds := make(map[uint64]Player, len(versions))
	var doc any
	for i, r := range recs {
		if r.Err == nil {
			next, err := projector.Apply(doc, r.Event.Ops)
			if err != nil {
				t.Fatalf("fold seq %d: %v", r.Seq, err)
			}
			doc = next
		}
		if i+1 < len(recs) && recs[i+1].Seq == r.Seq {
			continue // more events of the same message
		}
		p := tmpl()
		if doc != nil {
			raw, err := projector.Encode(doc)
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(raw, &p); err != nil {
				t.Fatal(err)
			}
		}
		folds[r.Seq] = p
	}
	return versions, folds
}

// readEqualsFold reports whether view, read at version v, holds no item
// twice and equals want, the fold of the log up to v; if not, and detail is
// set, it says how on t.
func readEqualsFold(t testing.TB, key string, v uint64, view profileledger.View[Player], want Player, detail bool) bool {
	t.Helper()
	dupes := twiceHeld(view.Data.Inventory)
	if len(dupes) == 0 && view.Version == v && samePlayer(view.Data, want) {
		return true
	}
	switch {
	case !detail:
	case len(dupes) > 0:
		t.Errorf("%s: Get at version %d (from snapshot %d, %d events replayed) holds %d item(s) twice: %v; the log's fold has %d items, the read %d",
			key, v, view.Report.SnapshotVersion, view.Report.Replayed, len(dupes), firstFive(dupes), len(want.Inventory), len(view.Data.Inventory))
	default:
		t.Errorf("%s: Get at version %d (version %d, from snapshot %d) = %d coins, %d items; the log's fold = %d coins, %d items",
			key, v, view.Version, view.Report.SnapshotVersion, view.Data.Coins, len(view.Data.Inventory), want.Coins, len(want.Inventory))
	}
	return false
}

func itemCounts(items []string) map[string]int {
	n := make(map[string]int, len(items))
	for _, it := range items {
		n[it]++
	}
	return n
}

// twiceHeld returns the items that are in items more than once, sorted.
func twiceHeld(items []string) []string {
	var out []string
	for it, c := range itemCounts(items) {
		if c > 1 {
			out = append(out, it)
		}
	}
	slices.Sort(out)
	return out
}

// firstFive returns up to the first five of items, for a message.
func firstFive(items []string) []string {
	return items[:min(len(items), 5)]
}
