package pltest

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/ledger"
	"github.com/profileledger/profileledger/projector"
)

// maxProblems bounds the lines a failed verification prints.
const maxProblems = 100

// placed is one event of the logs, and whose log it is in.
type placed struct {
	key string
	ev  ledger.Event
	idx int // its position in its message
}

func (p placed) before(q placed) int {
	return cmp.Or(cmp.Compare(p.ev.Seq, q.ev.Seq), cmp.Compare(p.idx, q.idx))
}

// verify reads every profile's log back through js and checks it against
// the calls (see Workload), then audits the store.
func (r *run[T]) verify(ctx context.Context, t testing.TB, js jetstream.JetStream) {
	t.Helper()
	var problems []string
	problem := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	byType := make(map[string]*call, len(r.calls))
	for _, c := range r.calls {
		byType[c.typ] = c
	}
	logs := map[string][]ledger.Event{}
	var all []placed
	for _, key := range r.keys {
		recs, err := readLog(ctx, js, StoreName, key)
		if err != nil {
			t.Fatalf("pltest: workload: read the log of %q: %v", key, err)
		}
		for _, rec := range recs {
			if rec.Err != nil {
				continue // Audit reports it
			}
			logs[key] = append(logs[key], rec.Event)
			all = append(all, placed{key: key, ev: rec.Event, idx: rec.Index})
		}
	}
	r.report.Events = len(all)
	slices.SortFunc(all, placed.before)

	// Where each call's events are.
	found := map[*call]map[string][]placed{}
	for _, p := range all {
		if strings.HasPrefix(p.ev.Type, "session.") {
			continue
		}
		c := byType[p.ev.Type]
		switch {
		case c == nil:
			problem("%q seq %d: event %q was never written by the workload", p.key, p.ev.Seq, p.ev.Type)
			continue
		case !slices.Contains(c.keys, p.key):
			problem("%q seq %d: event %s is of %v, not of this profile", p.key, p.ev.Seq, c.typ, c.keys)
			continue
		}
		if found[c] == nil {
			found[c] = map[string][]placed{}
		}
		found[c][p.key] = append(found[c][p.key], p)
	}
	for _, c := range r.calls {
		told := c.outcome.String()
		if c.declined {
			told = "declined by its function"
		}
		if c.errText != "" {
			told += " (" + brief(c.errText, 120) + ")"
		}
		for _, k := range c.keys {
			n := len(found[c][k])
			switch {
			case n > 1:
				problem("%s, %s, is in %q's log %d times", c.typ, told, k, n)
			case c.outcome == Acknowledged && n == 0:
				problem("%s, acknowledged, is missing from %q's log (did its function change nothing? a change of nothing appends nothing)", c.typ, k)
			case c.outcome == Rejected && n > 0:
				problem("%s, %s, is in %q's log at seq %d", c.typ, told, k, found[c][k][0].ev.Seq)
			}
		}
		if c.outcome == Uncertain && len(found[c][c.keys[0]]) > 0 {
			r.report.UncertainLanded++
		}
		if len(c.keys) == 2 && (len(found[c][c.keys[0]]) > 0) != (len(found[c][c.keys[1]]) > 0) {
			problem("trade %s, %s, is in the log of one side only", c.typ, told)
		}
	}

	// Each session's acknowledged events are in acknowledgement order.
	type sideOf struct {
		c   *call
		key string
	}
	bySession := map[string][]sideOf{}
	for _, c := range r.calls {
		if c.outcome == Acknowledged {
			for i, sid := range c.sessions {
				bySession[sid] = append(bySession[sid], sideOf{c, c.keys[i]})
			}
		}
	}
	for sid, sides := range bySession {
		slices.SortFunc(sides, func(a, b sideOf) int { return cmp.Compare(a.c.ackSeq, b.c.ackSeq) })
		var prev *placed
		for _, s := range sides {
			ps := found[s.c][s.key]
			if len(ps) != 1 {
				continue // reported above
			}
			if prev != nil && ps[0].before(*prev) < 0 {
				problem("session %s: %s was acknowledged after %s, but is before it in %q's log (seq %d < %d)",
					sid, s.c.typ, prev.ev.Type, s.key, ps[0].ev.Seq, prev.ev.Seq)
			}
			prev = &ps[0]
		}
	}

	r.compareData(ctx, t, js, all, logs, byType, problem)

	if len(problems) > 0 {
		var b strings.Builder
		fmt.Fprintf(&b, "pltest: workload: %d problems in the logs of store %s:", len(problems), StoreName)
		for i, p := range problems {
			if i == maxProblems {
				fmt.Fprintf(&b, "\n… and %d more", len(problems)-maxProblems)
				break
			}
			b.WriteString("\n")
			b.WriteString(p)
		}
		t.Error(b.String())
	}
	Audit(t, js, StoreName)
}

// compareData checks every profile's Store.Get against the plain fold of
// its log and against the replay of the landed calls' functions on the
// template, in log order; then the Workload's Check.
func (r *run[T]) compareData(ctx context.Context, t testing.TB, js jetstream.JetStream, all []placed,
	logs map[string][]ledger.Event, byType map[string]*call, problem func(string, ...any)) {
	t.Helper()
	w := r.w
	st, err := profileledger.Open(ctx, js, StoreName, w.Template, w.Options...)
	if err != nil {
		t.Fatalf("pltest: workload: open the store to read it: %v", err)
	}
	defer closeStore(st)

	model := map[string]*T{}
	for _, k := range r.keys {
		p, err := copyOf(w.Template)
		if err != nil {
			t.Fatalf("pltest: workload: copy the template: %v", err)
		}
		model[k] = p
	}
	replayed := map[*call]bool{}
	for _, p := range all {
		c := byType[p.ev.Type]
		if c == nil || replayed[c] || !slices.Contains(c.keys, p.key) {
			continue
		}
		replayed[c] = true
		var err error
		if c.mutation >= 0 {
			err = w.Mutations[c.mutation].Fn(model[p.key])
		} else {
			err = w.Trades[c.trade].Fn(model[c.keys[0]], model[c.keys[1]])
		}
		if err != nil {
			problem("replaying %s (seq %d) in log order on the template failed: %v (functions must depend only on the profiles they are given)", c.typ, p.ev.Seq, err)
		}
	}

	final := map[string]T{}
	for _, key := range r.keys {
		v, err := st.Get(ctx, key)
		if err != nil {
			problem("%q: Store.Get: %v", key, err)
			continue
		}
		final[key] = v.Data
		got, err := json.Marshal(v.Data)
		if err != nil {
			t.Fatalf("pltest: workload: %v", err)
		}
		events := logs[key]
		if len(events) == 0 {
			continue
		}
		if last := events[len(events)-1].Seq; v.Version != last {
			problem("%q: Store.Get is at version %d, the log's last event at %d", key, v.Version, last)
		}
		if folded, err := r.fold(events); err != nil {
			problem("%q: fold of the log: %v", key, err)
		} else if !bytes.Equal(got, folded) {
			problem("%q: Store.Get is %s, the fold of its log is %s", key, brief(string(got), 200), brief(string(folded), 200))
		}
		want, err := json.Marshal(*model[key])
		if err != nil {
			t.Fatalf("pltest: workload: %v", err)
		}
		if !bytes.Equal(got, want) {
			problem("%q: Store.Get is %s; replaying the landed calls' functions in log order on the template gives %s",
				key, brief(string(got), 200), brief(string(want), 200))
		}
	}
	if w.Check != nil {
		if err := w.Check(final); err != nil {
			problem("Check: %v", err)
		}
	}
}

// fold returns the plain fold of events, from nothing, as T encodes it:
// decoded over a copy of the template, as a load decodes it.
func (r *run[T]) fold(events []ledger.Event) ([]byte, error) {
	doc, err := projector.Fold(nil, events)
	if err != nil {
		return nil, err
	}
	raw, err := projector.Encode(doc)
	if err != nil {
		return nil, err
	}
	p, err := copyOf(r.w.Template)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, p); err != nil {
		return nil, err
	}
	return json.Marshal(*p)
}

// copyOf returns a deep copy of v, through its JSON form (a profile is a
// JSON document).
func copyOf[T any](v T) (*T, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	p := new(T)
	return p, json.Unmarshal(raw, p)
}
