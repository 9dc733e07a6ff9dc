package integration_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/pltest"
)

// workload drives writers that each append uniquely named items to a few
// contended profiles through several nodes, and records what every caller
// was told, so that the log can be checked against it afterwards:
// acknowledged items exactly once, rejected ones never, uncertain ones at
// most once, nothing else.
type workload struct {
	nodes func() []*node // the nodes writers may use now
	keys  []string

	mu       sync.Mutex
	outcome  map[string]pltest.Outcome // item -> what its caller was told
	key      map[string]string         // item -> profile
	acked    int
	uncertOK int // uncertain items that landed
	errs     map[string]int
}

func newWorkload(keys []string, nodes func() []*node) *workload {
	return &workload{nodes: nodes, keys: keys, outcome: map[string]pltest.Outcome{}, key: map[string]string{}, errs: map[string]int{}}
}

// run starts writers writers until ctx ends or the deadline passes.
func (w *workload) run(ctx context.Context, t testing.TB, writers int, until time.Time, steal float64) {
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 42))
			key := w.keys[g%len(w.keys)]
			n := 0
			for ctx.Err() == nil && time.Now().Before(until) {
				nodes := w.nodes()
				nd := nodes[rng.IntN(len(nodes))]
				var opts []profileledger.SessionOption
				if rng.Float64() < steal {
					opts = append(opts, profileledger.Steal())
				}
				sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				s, err := nd.st.StartSession(sctx, key, opts...)
				cancel()
				if err != nil {
					w.note(err)
					time.Sleep(20 * time.Millisecond)
					continue
				}
				for range 1 + rng.IntN(8) {
					n++
					item := fmt.Sprintf("w%d-%d", g, n)
					mctx, cancel := context.WithTimeout(ctx, 2*time.Second)
					err := s.Mutate(mctx, "item", func(p *Player) error {
						p.Inventory = append(p.Inventory, item)
						return nil
					})
					cancel()
					w.record(key, item, err)
					if err != nil {
						break
					}
					time.Sleep(time.Duration(rng.IntN(5)) * time.Millisecond)
				}
				if rng.IntN(3) == 0 {
					ectx, cancel := context.WithTimeout(ctx, 2*time.Second)
					s.End(ectx)
					cancel()
				}
			}
		})
	}
	wg.Wait()
}

func (w *workload) record(key, item string, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	o := pltest.OutcomeOf(err)
	w.outcome[item], w.key[item] = o, key
	if o == pltest.Acknowledged {
		w.acked++
	}
	if err != nil {
		w.errs[shortErr(err)]++
	}
}

func (w *workload) note(err error) {
	w.mu.Lock()
	w.errs["start: "+shortErr(err)]++
	w.mu.Unlock()
}

func shortErr(err error) string {
	s := err.Error()
	if len(s) > 90 {
		s = s[:90]
	}
	return s
}

// verify reads every profile back through n and checks it against the
// record, and checks every log's invariants.
func (w *workload) verify(t testing.TB, n *node) {
	t.Helper()
	ctx := testCtx(t, time.Minute)
	w.mu.Lock()
	defer w.mu.Unlock()
	count := map[string]int{}
	for _, key := range w.keys {
		v, err := n.st.Get(ctx, key)
		if err != nil {
			t.Fatalf("Get %q: %v", key, err)
		}
		for _, it := range v.Data.Inventory {
			count[it]++
			if w.key[it] != key {
				t.Errorf("%q holds %s, which was never written to it", key, it)
			}
		}
		checkLog(t, key, readLog(t, n.js, key))
	}
	lost, doubled, ghost := 0, 0, 0
	for it, o := range w.outcome {
		c := count[it]
		switch {
		case c > 1:
			doubled++
			t.Errorf("%s (%v) is in %q %d times", it, o, w.key[it], c)
		case o == pltest.Acknowledged && c == 0:
			lost++
			t.Errorf("acknowledged %s is missing from %q", it, w.key[it])
		case o == pltest.Rejected && c == 1:
			ghost++
			t.Errorf("rejected %s is in %q", it, w.key[it])
		case o == pltest.Uncertain && c == 1:
			w.uncertOK++
		}
	}
	if w.acked == 0 {
		t.Error("no mutation was acknowledged: the workload did not run")
	}
	t.Logf("acknowledged %d, lost %d, doubled %d, rejected-but-present %d, uncertain-landed %d", w.acked, lost, doubled, ghost, w.uncertOK)
	t.Logf("errors seen: %v", w.errs)
	auditStore(t, n.js)
	for e := range w.errs {
		if strings.Contains(e, "events not in log") {
			t.Errorf("the ledger's internal errNotFound reached a caller: %s", e)
		}
	}
}
