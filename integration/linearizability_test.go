package integration_test

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/ledger"
	"github.com/profileledger/profileledger/pltest"
)

// The linearizability test's model: each profile is one register holding a
// counter (Player.Coins) and a list (Player.Inventory). Operations: inc
// (counter + 1), append (a unique item), read (both). Histories are
// partitioned by profile.

type linInput struct {
	Key  string
	Kind string // "inc", "append", "read"
	Item string // append's item
	Via  string // read: "data" or "get"
}

type linOutput struct {
	Coins int
	Items []string
}

type linState struct {
	Coins int
	Items string // the list, joined by "|"
}

var linModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		by := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(linInput).Key
			if _, ok := by[k]; !ok {
				keys = append(keys, k)
			}
			by[k] = append(by[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, by[k])
		}
		return out
	},
	Init: func() any { return linState{Coins: tmpl().Coins} },
	Step: func(state, input, output any) (bool, any) {
		st, in := state.(linState), input.(linInput)
		switch in.Kind {
		case "inc":
			return true, linState{Coins: st.Coins + 1, Items: st.Items}
		case "append":
			if st.Items == "" {
				return true, linState{Coins: st.Coins, Items: in.Item}
			}
			return true, linState{Coins: st.Coins, Items: st.Items + "|" + in.Item}
		default:
			out := output.(linOutput)
			return out.Coins == st.Coins && strings.Join(out.Items, "|") == st.Items, st
		}
	},
	Hash: func(state any) uint64 {
		st := state.(linState)
		h := fnv.New64a()
		fmt.Fprintf(h, "%d;%s", st.Coins, st.Items)
		return h.Sum64()
	},
	DescribeOperation: func(input, output any) string {
		in := input.(linInput)
		switch in.Kind {
		case "inc":
			return "inc"
		case "append":
			return "append(" + in.Item + ")"
		}
		out, _ := output.(linOutput)
		return fmt.Sprintf("read/%s -> %d [%s]", in.Via, out.Coins, strings.Join(out.Items, " "))
	},
	DescribeState: func(state any) string {
		st := state.(linState)
		return fmt.Sprintf("%d [%s]", st.Coins, strings.ReplaceAll(st.Items, "|", " "))
	},
}

// linOp is one operation as its client saw it.
type linOp struct {
	client  int
	n       int // the client's operation number
	key     string
	kind    string // "inc", "append", "data", "get"
	typ     string // a mutation's event type: unique, so the log names it
	item    string
	call    int64
	ret     int64
	err     error
	out     linOutput
	session string    // data: the session read
	version uint64    // data, get: the version read
	wall    time.Time // data: wall clock at the call, for a statistic only
	live    bool      // data: the session's Err was nil after the read
}

// TestLinearizability runs clients in three Stores, each on its own
// connection, against three profiles for a few seconds: they start
// sessions (asking for a hand-over, stealing, or not waiting), increment,
// append, read a held session's Data and read with Store.Get, with small
// random pauses. The history is checked with porcupine against a register
// model, partitioned by profile, and every log against DESIGN.md §2.
//
// Every mutation has a unique event type, so the log says which of them
// took effect. First the log is checked against what callers were told:
// acknowledged exactly once; ErrSessionLost, ErrSessionEnded or a context
// error before sending never; anything else (ErrUncertain) at most once.
// Then, for the model:
//   - a mutation that returned nil took effect between its call and return;
//   - one that returned an error but is in the log took effect at some
//     unknown point after its call: its return time is infinite
//     (porcupine's way of saying "at any point after the call");
//   - one that is not in the log never took effect and is left out. (With
//     an infinite return time it would mean the same — "after the call, or
//     never" — but porcupine then tries every such write at every point of
//     the history in every combination, and times out on a few dozen.)
//   - Store.Get: a read at some point between call and return;
//   - Session.Data: a read of the session's own copy, which is the
//     profile only while no newer session has written. The fence makes a
//     stolen holder's next append fail, but nothing stops it from reading
//     its stale copy meanwhile (DESIGN.md §2: the lease is for liveness).
//     So a Data read at version v enters the history only when the log
//     confirms it: the next message after v is the same session's — an
//     event of a later operation of its client, or its session.ended.
//     Every Data read, confirmed or not, must equal the log folded to v.
func TestLinearizability(t *testing.T) {
	srv := pltest.Run(t)
	nodes := []*node{
		openNode(t, srv.URL(), "a", false),
		openNode(t, srv.URL(), "b", false),
		openNode(t, srv.URL(), "c", false),
	}
	checkLinearizable(t, nodes, nil)
}

// TestLinearizabilityWithResets runs the same workload with one of the
// three Stores behind a pltest proxy that resets its connection (Reset: TCP
// RST both ways) every 700 ms: appends lose their acknowledgements or never arrive,
// hand-over requests and replies vanish, some outcomes become unknown. The
// history must still be linearizable.
func TestLinearizabilityWithResets(t *testing.T) {
	srv := pltest.Run(t)
	fp := pltest.Proxy(t, srv.URL())
	nodes := []*node{
		openNode(t, srv.URL(), "a", false),
		openNode(t, srv.URL(), "b", false),
		openNode(t, fp.URL(), "c", true),
	}
	resets := 0
	checkLinearizable(t, nodes, func(stop <-chan struct{}) {
		tick := time.NewTicker(700 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				t.Logf("%d connections reset", resets)
				return
			case <-tick.C:
				resets += fp.Reset()
			}
		}
	})
}

// checkLinearizable runs the workload on nodes, with fault running
// meanwhile if it is not nil (it must return when stop is closed), and
// checks the history and the logs.
func checkLinearizable(t *testing.T, nodes []*node, fault func(stop <-chan struct{})) {
	faulty := fault != nil
	keys := []string{"lin-0", "lin-1", "lin-2"}
	ctx := testCtx(t, 2*time.Minute)
	const clients = 6
	run := 3 * time.Second
	opTimeout := 10 * time.Second
	if faulty {
		opTimeout = 3 * time.Second // a reply lost in a reset is waited for until then
	}
	base := time.Now()
	now := func() int64 { return int64(time.Since(base)) }
	until := base.Add(run)
	stopFault := make(chan struct{})
	var faultDone sync.WaitGroup
	if faulty {
		faultDone.Go(func() { fault(stopFault) })
	}

	var mu sync.Mutex
	var ops []*linOp
	starts := map[string]int{}
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), 99))
			nd := nodes[c%len(nodes)]
			n := 0
			record := func(op *linOp) {
				mu.Lock()
				ops = append(ops, op)
				mu.Unlock()
			}
			for time.Now().Before(until) {
				key := keys[rng.IntN(len(keys))]
				var opts []profileledger.SessionOption
				mode := "hand-over"
				switch r := rng.IntN(10); {
				case r >= 9:
					opts, mode = append(opts, profileledger.NoWait()), "no-wait"
				case r >= 6:
					opts, mode = append(opts, profileledger.Steal()), "steal"
				}
				sctx, cancel := context.WithTimeout(ctx, opTimeout)
				s, err := nd.st.StartSession(sctx, key, opts...)
				cancel()
				mu.Lock()
				switch {
				case err == nil:
					starts[mode]++
				case errors.Is(err, profileledger.ErrLocked):
					starts[mode+": locked"]++
				default:
					starts[mode+": "+shortErr(err)]++
				}
				mu.Unlock()
				if err != nil {
					// Starts that did not happen, for the model: ErrLocked (no
					// wait, or beaten to the fence), ErrSessionLost (stolen while
					// starting), and a steal that loses the race to a busy
					// holder's appends (TestStealFromABusyHolder's subject).
					busy := strings.Contains(err.Error(), "the log keeps moving")
					expected := errors.Is(err, profileledger.ErrLocked) || errors.Is(err, profileledger.ErrSessionLost) || busy
					if !expected && !faulty {
						t.Errorf("client %d: start %q (%s): %v", c, key, mode, err)
					}
					time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond)
					continue
				}
				for range 1 + rng.IntN(6) {
					n++
					op := &linOp{client: c, n: n, key: key}
					mctx, cancel := context.WithTimeout(ctx, opTimeout)
					switch rng.IntN(4) {
					case 0:
						op.kind, op.typ = "inc", fmt.Sprintf("lin.inc.c%d.%d", c, n)
						op.call = now()
						op.err = s.Mutate(mctx, op.typ, func(p *Player) error { p.Coins++; return nil })
						op.ret = now()
					case 1:
						op.kind, op.typ, op.item = "append", fmt.Sprintf("lin.append.c%d.%d", c, n), fmt.Sprintf("c%d.%d", c, n)
						op.call = now()
						op.err = s.Mutate(mctx, op.typ, addItem(op.item))
						op.ret = now()
					case 2:
						op.kind, op.session, op.wall = "data", s.ID(), time.Now()
						op.call = now()
						v1 := s.Version()
						d := s.Data()
						v2 := s.Version()
						op.ret = now()
						op.live = s.Err() == nil
						op.out = linOutput{Coins: d.Coins, Items: d.Inventory}
						op.version = v1
						if v1 != v2 {
							op.err = fmt.Errorf("version moved during the read: %d then %d", v1, v2)
						}
					case 3:
						op.kind = "get"
						op.call = now()
						v, err := nd.st.Get(mctx, key)
						op.ret = now()
						op.err = err
						op.out = linOutput{Coins: v.Data.Coins, Items: v.Data.Inventory}
						op.version = v.Version
						if err != nil && !faulty {
							t.Errorf("client %d: Get %q: %v", c, key, err)
						}
					}
					cancel()
					record(op)
					if op.typ != "" && op.err != nil {
						break // the session is (probably) over
					}
					time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond)
				}
				if rng.IntN(2) == 0 {
					ectx, cancel := context.WithTimeout(ctx, opTimeout)
					err := s.End(ectx)
					cancel()
					if err != nil && !errors.Is(err, profileledger.ErrSessionLost) && !faulty {
						t.Errorf("client %d: End: %v", c, err)
					}
				} // else left open: a hand-over, a steal or Close ends it
			}
		})
	}
	wg.Wait()
	close(stopFault)
	faultDone.Wait()
	// End what was left open, so that the log confirms or refutes every
	// Data read.
	for _, nd := range nodes {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := nd.st.Close(cctx); err != nil && !faulty {
			t.Errorf("Close: %v", err)
		}
		cancel()
	}
	t.Logf("%d operations by %d clients in %v; starts: %v", len(ops), clients, run, starts)

	logs := map[string][]ledger.Record{}
	byType := map[string]*linOp{}
	for _, op := range ops {
		if op.typ != "" {
			byType[op.typ] = op
		}
	}
	for _, k := range keys {
		recs := readLog(t, nodes[0].js, k)
		checkLog(t, k, recs)
		logs[k] = recs
	}

	// The log against what callers were told.
	landed := map[*linOp]int{}
	for k, recs := range logs {
		for _, r := range recs {
			if op, ok := byType[r.Event.Type]; ok {
				if op.key != k {
					t.Errorf("%s of profile %q is in the log of %q", op.typ, op.key, k)
				}
				landed[op]++
			}
		}
	}
	var history []porcupine.Operation
	told := map[string]int{}
	dataReads, confirmed, stale := 0, 0, 0
	for _, op := range ops {
		in := linInput{Key: op.key, Kind: op.kind, Item: op.item}
		switch op.kind {
		case "inc", "append":
			n := landed[op]
			switch {
			case op.err == nil:
				told["acknowledged"]++
				if n != 1 {
					t.Errorf("acknowledged %s is in the log %d times", op.typ, n)
				}
			case errors.Is(op.err, profileledger.ErrSessionLost), errors.Is(op.err, profileledger.ErrSessionEnded),
				errors.Is(op.err, context.Canceled), errors.Is(op.err, context.DeadlineExceeded) && !errors.Is(op.err, profileledger.ErrUncertain):
				// Documented as failed or never sent (ErrSessionLost: "its
				// pending mutations failed"; Mutate: "if the append fails
				// ... nothing is appended").
				told["failed"]++
				if n != 0 {
					t.Errorf("%s, failed with %q, is in the log %d times", op.typ, op.err, n)
				}
			default:
				told[fmt.Sprintf("unknown outcome (%s)", shortErr(op.err))]++
				if n > 1 {
					t.Errorf("%s (%v) is in the log %d times", op.typ, op.err, n)
				}
			}
			switch {
			case n == 0:
				// It never took effect: the log is the ground truth. (Left in
				// with an infinite return time it would mean the same —
				// "at any point after the call, or never" — but porcupine
				// would try it at every point of the history, in every
				// combination with the other such writes, and time out.)
				continue
			case op.err != nil:
				op.ret = math.MaxInt64 // it took effect, but when is unknown: any time after the call
			}
			history = append(history, porcupine.Operation{ClientId: op.client, Input: in, Call: op.call, Output: linOutput{}, Return: op.ret})
		case "get", "data":
			if op.err != nil {
				continue
			}
			if want := foldLog(t, logs[op.key], op.version); want.Coins != op.out.Coins || !slices.Equal(want.Inventory, op.out.Items) {
				t.Errorf("client %d read %q via %s at version %d: %d %v; the log folds to %d %v there",
					op.client, op.key, op.kind, op.version, op.out.Coins, op.out.Items, want.Coins, want.Inventory)
			}
			in.Kind, in.Via = "read", op.kind
			if op.kind == "data" {
				dataReads++
				if !confirmedRead(op, logs[op.key], byType) {
					if op.live && fencedBefore(op, logs[op.key]) {
						stale++
					}
					continue
				}
				confirmed++
			}
			history = append(history, porcupine.Operation{ClientId: op.client, Input: in, Call: op.call, Output: op.out, Return: op.ret})
		}
	}
	t.Logf("mutations: %v; Data reads: %d, %d confirmed by the log, %d of the others stale on a session that still looked live",
		told, dataReads, confirmed, stale)
	if told["acknowledged"] == 0 || confirmed == 0 {
		t.Fatalf("the workload did not run: %v acknowledged mutations, %d confirmed Data reads", told["acknowledged"], confirmed)
	}

	t0 := time.Now()
	res := porcupine.CheckOperationsTimeout(linModel, history, 30*time.Second)
	t.Logf("porcupine: %s on %d operations in %v", res, len(history), time.Since(t0))
	if res != porcupine.Ok {
		_, info := porcupine.CheckOperationsVerbose(linModel, history, 30*time.Second)
		f, err := os.CreateTemp("", "profileledger-linearizability-*.html")
		if err == nil {
			f.Close()
			err = porcupine.VisualizePath(linModel, info, f.Name())
		}
		if err != nil {
			t.Errorf("visualization not written: %v", err)
		}
		t.Fatalf("history is not linearizable (%s); visualization: %s", res, f.Name())
	}
}

// confirmedRead reports whether the log shows that a Data read of session
// op.session at version op.version saw the profile as it was: the next
// message after op.version is that session's own, written by a later
// operation of the same client or by its end.
func confirmedRead(op *linOp, recs []ledger.Record, byType map[string]*linOp) bool {
	for _, r := range recs {
		if r.Seq <= op.version {
			continue
		}
		if r.Err != nil || r.Event.Session != op.session {
			return false
		}
		if r.Event.Type == ledger.TypeSessionEnded {
			return true
		}
		later, ok := byType[r.Event.Type]
		return ok && later.client == op.client && later.n > op.n
	}
	return false
}

// fencedBefore reports whether a newer session's fence was already stored
// (by the server's clock, on this same machine) when the Data read op
// began: the read returned a stolen session's stale copy. A statistic for
// the log only; no check depends on it.
func fencedBefore(op *linOp, recs []ledger.Record) bool {
	for _, r := range recs {
		if r.Seq > op.version && r.Err == nil && r.Event.Session != op.session {
			return r.Event.Type == ledger.TypeSessionStarted && r.Stored.Before(op.wall)
		}
	}
	return false
}
