package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/internal/keys"
	"github.com/profileledger/profileledger/internal/names"
	"github.com/profileledger/profileledger/investigate"
	"github.com/profileledger/profileledger/pltest"
)

type gameItem struct {
	ID string `json:"id"`
}

type gamePlayer struct {
	Coins     int        `json:"coins"`
	Inventory []gameItem `json:"inventory"`
}

// history is what the scripted history of investigation tests left.
type history struct {
	url string
	js  jetstream.JetStream
	st  *profileledger.Store[gamePlayer]
	// bobBeforeInc and bobAfterInc bracket bob's +10 coins that the
	// rollback at bobRollback undid.
	bobBeforeInc, bobAfterInc, bobRollback uint64
	// carolBeforeForgery is carol's version before the forged event at
	// forgedSeq (id forgedID).
	carolBeforeForgery, forgedSeq uint64
	forgedID                      string
}

// scriptedHistory writes a store "game" with a history an investigator
// meets: alice loots sword#91 and trades it to bob; carol gets a gem by
// message; bob's +10 coins are rolled back; a second server steals bob;
// and a forged event, written on carol's subject the way a buggy or
// malicious client would, plants a second sword#91 in carol's inventory.
func scriptedHistory(t *testing.T, ctx context.Context) *history {
	t.Helper()
	srv := pltest.Run(t)
	h := &history{url: srv.URL(), js: pltest.Connect(t, srv.URL())}
	tmpl := gamePlayer{Inventory: []gameItem{}}
	st, err := profileledger.Open(ctx, h.js, "game", tmpl, profileledger.WithNode("srv-a"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close(context.Background()) })
	h.st = st
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	alice, err := st.StartSession(ctx, "alice")
	must(err)
	bob, err := st.StartSession(ctx, "bob")
	must(err)
	quest := profileledger.WithMeta(ctx, map[string]string{"actor": "quest-svc", "reason": "boss drop"})
	must(alice.Apply(quest, "loot", profileledger.Add("/inventory/-", gameItem{ID: "sword#91"})))
	must(alice.Apply(quest, "quest.reward", profileledger.Inc("/coins", 50)))
	must(profileledger.Trade(profileledger.WithMeta(ctx, map[string]string{"actor": "market"}), "trade.sword", alice, bob, func(a, b *gamePlayer) error {
		b.Inventory = append(b.Inventory, a.Inventory[0])
		a.Inventory = a.Inventory[1:]
		a.Coins, b.Coins = a.Coins+40, b.Coins-40
		return nil
	}))
	h.bobBeforeInc = bob.Version()
	must(bob.Apply(ctx, "bonus", profileledger.Inc("/coins", 10)))
	h.bobAfterInc = bob.Version()
	must(bob.Rollback(profileledger.WithMeta(ctx, map[string]string{"actor": "support"}), h.bobBeforeInc, "ticket 7"))
	h.bobRollback = bob.Version()

	// carol gets a gem by message.
	must(st.Message(profileledger.WithMeta(ctx, map[string]string{"actor": "gm:eve"}), "carol", []byte("gem#5"), profileledger.MessageID("gift-1")))
	carol, err := st.StartSession(ctx, "carol")
	must(err)
	carol.HandleMessages(func(p *gamePlayer, m profileledger.Message) error {
		p.Inventory = append(p.Inventory, gameItem{ID: string(m.Payload)})
		return nil
	})
	for deadline := time.Now().Add(10 * time.Second); len(carol.Data().Inventory) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("carol's message was not handled")
		}
		time.Sleep(10 * time.Millisecond)
	}
	must(carol.End(ctx))
	must(alice.End(ctx))

	// A second server steals bob.
	st2, err := profileledger.Open(ctx, h.js, "game", tmpl, profileledger.WithNode("srv-b"))
	must(err)
	t.Cleanup(func() { st2.Close(context.Background()) })
	bob2, err := st2.StartSession(ctx, "bob", profileledger.Steal())
	must(err)
	must(bob2.Apply(ctx, "loot", profileledger.Add("/inventory/-", gameItem{ID: "potion#3"})))
	must(bob2.End(ctx))
	<-bob.Done()

	h.carolBeforeForgery, h.forgedSeq, h.forgedID = forge(t, ctx, h.js, st, "carol", gameItem{ID: "sword#91"})
	return h
}

// forge appends an event to key's subject behind the library's back, with
// the epoch and session of its last event so that it folds: it adds item
// to the inventory. It returns the version before it, and its sequence
// and id.
func forge(t *testing.T, ctx context.Context, js jetstream.JetStream, st *profileledger.Store[gamePlayer], key string, item gameItem) (before, seq uint64, id string) {
	t.Helper()
	var last profileledger.Event
	for ev, err := range st.History(ctx, key) {
		if err != nil {
			t.Fatal(err)
		}
		last = ev
	}
	value, _ := json.Marshal(item)
	id = "forged-" + key
	ev := map[string]any{
		"v": 1, "id": id, "type": "loot", "session": last.Session, "epoch": last.Epoch,
		"time": time.Now().UTC(), "ops": []map[string]any{{"op": "add", "path": "/inventory/-", "value": json.RawMessage(value)}},
	}
	data, _ := json.Marshal(ev)
	n, _ := names.New("game")
	tok, _ := keys.Encode(key)
	ack, err := js.Publish(ctx, n.Events(tok), data)
	if err != nil {
		t.Fatal(err)
	}
	return last.Seq, ack.Sequence, id
}

func mustRun(t *testing.T, ctx context.Context, want int, args ...string) string {
	t.Helper()
	code, out, errOut := run(t, ctx, args...)
	if code != want {
		t.Fatalf("%q: exit %d, want %d; stdout:\n%s\nstderr:\n%s", args, code, want, out, errOut)
	}
	return out
}

func contains(t *testing.T, what, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, out)
		}
	}
}

func TestInvestigationCommandsOnAScriptedHistory(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	h := scriptedHistory(t, ctx)
	s := "-server=" + h.url

	t.Run("log shows every event with who, why and a summary", func(t *testing.T) {
		out := mustRun(t, ctx, exitOK, "log", "game", "alice", s)
		contains(t, "log alice", out, "SEQ", "session.started", "srv-a", "loot", `/inventory/- add {"id":"sword#91"}`,
			"quest.reward", "/coins +50", "actor=quest-svc", `reason="boss drop"`, "trade.sword", `with "bob"`, "session.ended")
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if strings.Contains(line, "quest.reward") && !strings.Contains(line, "/coins +50") {
				t.Errorf("the reward's line lacks its op: %q", line)
			}
		}
		out = mustRun(t, ctx, exitOK, "log", "game", "alice", "-path", "/coins", s)
		if strings.Contains(out, "loot") || !strings.Contains(out, "/coins +50") || !strings.Contains(out, "trade.sword") {
			t.Errorf("-path /coins: want the reward and the trade, not the loot:\n%s", out)
		}
		out = mustRun(t, ctx, exitOK, "log", s, "-json", "-type", "pl.rollback", "game", "bob")
		var e investigate.Entry
		if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &e) != nil ||
			e.Seq != h.bobRollback || e.Meta["actor"] != "support" || !strings.Contains(e.How, "rollback to version "+strconv.FormatUint(h.bobBeforeInc, 10)) {
			t.Errorf("-json -type pl.rollback: %+v from:\n%s", e, out)
		}
		out = mustRun(t, ctx, exitOK, "log", "game", "bob", "-from", strconv.FormatUint(h.bobAfterInc, 10), s)
		contains(t, "log bob -from", out, "bonus", "pl.rollback", "srv-b", "potion#3")
		if strings.Contains(out, "trade.sword") {
			t.Errorf("-from %d shows the earlier trade:\n%s", h.bobAfterInc, out)
		}
		out = mustRun(t, ctx, exitOK, "log", "game", "carol", s)
		contains(t, "log carol", out, `message "gift-1"`, `/inventory/- add {"id":"gem#5"}`, "actor=gm:eve")
		if code, _, errOut := run(t, ctx, "log", "game", s); code != exitUsage || !strings.Contains(errOut, "Usage") {
			t.Errorf("missing key: exit %d, stderr:\n%s", code, errOut)
		}
	})

	t.Run("log -follow prints new events until cancelled", func(t *testing.T) {
		fctx, fcancel := context.WithCancel(ctx)
		var out, errOut syncBuffer
		done := make(chan int, 1)
		go func() {
			done <- NewMain(&out, &errOut).Run(fctx, []string{"log", "-follow", "-interval", "20ms", "-type", "late", "game", "alice", s})
		}()
		sess, err := h.st.StartSession(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if err := sess.Apply(ctx, "late", profileledger.Inc("/coins", 7)); err != nil {
			t.Fatal(err)
		}
		if err := sess.End(ctx); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(20 * time.Second); !strings.Contains(out.String(), "/coins +7"); {
			if time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		fcancel()
		if code := <-done; code != exitOK {
			t.Errorf("exit %d; stderr:\n%s", code, errOut.String())
		}
		contains(t, "log -follow", out.String(), "late", "/coins +7")
	})

	t.Run("show prints the data now and then", func(t *testing.T) {
		var now, then showOutput
		if err := json.Unmarshal([]byte(mustRun(t, ctx, exitOK, "show", "game", "bob", s)), &now); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(mustRun(t, ctx, exitOK, "show", "game", "bob", "-at-version", strconv.FormatUint(h.bobAfterInc, 10), s)), &then); err != nil {
			t.Fatal(err)
		}
		if now.Data["coins"] != float64(-40) || then.Data["coins"] != float64(-30) || then.Version != h.bobAfterInc {
			t.Errorf("coins now %v (want -40), at %d %v (want -30)", now.Data["coins"], h.bobAfterInc, then.Data["coins"])
		}
		if !strings.Contains(fmt.Sprint(now.Data["inventory"]), "potion#3") {
			t.Errorf("bob now lacks the potion: %v", now.Data)
		}
		stored := storedAt(t, ctx, h.st, "bob", h.bobAfterInc).Format(time.RFC3339Nano)
		var at showOutput
		if err := json.Unmarshal([]byte(mustRun(t, ctx, exitOK, "show", "game", "bob", "-at-time", stored, s)), &at); err != nil ||
			at.Version != h.bobAfterInc || at.Data["coins"] != float64(-30) {
			t.Errorf("-at-time %s: version %d, coins %v (%v); want %d, -30", stored, at.Version, at.Data["coins"], err, h.bobAfterInc)
		}
		if code, _, errOut := run(t, ctx, "show", "game", "bob", "-at-version", "1", "-at-time", stored, s); code != exitUsage || !strings.Contains(errOut, "one or the other") {
			t.Errorf("both -at-version and -at-time: exit %d:\n%s", code, errOut)
		}
	})

	t.Run("diff prints ops and a side-by-side", func(t *testing.T) {
		a, b := strconv.FormatUint(h.bobBeforeInc, 10), strconv.FormatUint(h.bobAfterInc, 10)
		out := mustRun(t, ctx, exitOK, "diff", "game", "bob", a, b, s)
		contains(t, "diff", out, "1 change(s)", "replace /coins -30", "PATH", "/coins", "-40", "-30")
		var d investigate.DiffResult
		if err := json.Unmarshal([]byte(mustRun(t, ctx, exitOK, "diff", "-json", "game", "bob", b, a, s)), &d); err != nil ||
			len(d.Changes) != 1 || string(d.Changes[0].Before) != "-30" || string(d.Changes[0].After) != "-40" {
			t.Errorf("diff -json backwards: %+v, %v", d, err)
		}
		// The same two points as times.
		ta, tb := storedAt(t, ctx, h.st, "bob", h.bobBeforeInc).Format(time.RFC3339Nano), storedAt(t, ctx, h.st, "bob", h.bobAfterInc).Format(time.RFC3339Nano)
		out = mustRun(t, ctx, exitOK, "diff", "game", "bob", ta, tb, s)
		contains(t, "diff by time", out, fmt.Sprintf(`version %s -> %s: 1 change(s)`, a, b), "replace /coins -30")
		if code, _, errOut := run(t, ctx, "diff", "game", "bob", "1", "99999", s); code != exitFail || !strings.Contains(errOut, "no such point") {
			t.Errorf("a version past the end: exit %d:\n%s", code, errOut)
		}
	})

	t.Run("blame names every change of a path and each element's cause", func(t *testing.T) {
		out := mustRun(t, ctx, exitOK, "blame", "game", "bob", "/coins", s)
		contains(t, "blame /coins", out, "changed by 4 event(s)", "(absent) -> 0", "-40 -> -30", "-30 -> -40", "actor=support", "rollback to version", "trade ")
		out = mustRun(t, ctx, exitOK, "blame", "game", "carol", "/inventory", s)
		contains(t, "blame /inventory", out, "elements now:", `{"id":"gem#5"}`, `message "gift-1"`, `{"id":"sword#91"}`, "mutation loot")
		var b investigate.BlameResult
		if err := json.Unmarshal([]byte(mustRun(t, ctx, exitOK, "blame", "-json", "game", "carol", "/inventory", s)), &b); err != nil || len(b.Elements) != 2 ||
			b.Elements[1].EventID != h.forgedID || b.Elements[1].Seq != h.forgedSeq {
			t.Errorf("blame -json: %+v, %v", b.Elements, err)
		}
	})

	t.Run("trace follows the sword and flags the dupe", func(t *testing.T) {
		code, out, errOut := run(t, ctx, "trace", "game", "sword#91", "-path", "/inventory/*/id", s)
		if code != exitOK {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		contains(t, "trace", out, "3 profile(s) hold or held it", "DUPE: live 2 time(s)", `"alice": gone`, `"bob": holds it at /inventory/0/id`,
			`"carol": holds it at /inventory/1/id`, `trade `, `with "bob"`, "mutation loot", "DUPLICATED here", "event "+h.forgedID, "origin of the dupe:", "suspect: written in session")
		contains(t, "trace progress", errOut, "trace", "profiles")
		var tr investigate.TraceResult
		if err := json.Unmarshal([]byte(mustRun(t, ctx, exitOK, "trace", "-json", "-quiet", "game", "gem#5", s)), &tr); err != nil || tr.Dupe || len(tr.Holders) != 1 || tr.Holders[0].Key != "carol" {
			t.Errorf("trace gem: %+v, %v", tr, err)
		}
	})

	t.Run("dupes finds the planted dupe and traces it to the forged event", func(t *testing.T) {
		out := mustRun(t, ctx, exitFail, "dupes", "game", "-path", "/inventory/*/id", "-quiet", s, "-ui", "http://127.0.0.1:8428/")
		contains(t, "dupes", out, "3 profiles, 4 values; 1 dupe(s) found", `== "sword#91" at "bob" /inventory/0/id; "carol" /inventory/1/id`, "event "+h.forgedID,
			"web: http://127.0.0.1:8428/item?path=%2Finventory%2F%2A%2Fid&value=sword%2391")
		if code, _, errOut := run(t, ctx, "dupes", "game", "-path", "/inventory/*/id", "-ui", "javascript:alert(1)", s); code != exitUsage || !strings.Contains(errOut, "-ui:") {
			t.Errorf("dupes -ui with a bad URL: %d %s", code, errOut)
		}
		var rep investigate.DupesReport
		if err := json.Unmarshal([]byte(mustRun(t, ctx, exitFail, "dupes", "-json", "-quiet", "-path", "/inventory/*/id", "game", s)), &rep); err != nil || len(rep.Dupes) != 1 {
			t.Fatalf("dupes -json: %+v, %v", rep, err)
		}
		o := rep.Dupes[0].Trace.Origins()
		if len(o) != 1 || o[0].Key != "carol" || o[0].EventID != h.forgedID || o[0].Seq != h.forgedSeq || o[0].DupedFrom[0] != "bob" || !strings.Contains(o[0].Suspect, "after it ended") {
			t.Errorf("origins: %+v, want carol's forged event %s at %d", o, h.forgedID, h.forgedSeq)
		}
		if code, _, errOut := run(t, ctx, "dupes", "game", s); code != exitUsage || !strings.Contains(errOut, "-path is required") {
			t.Errorf("no -path: exit %d:\n%s", code, errOut)
		}
	})

	t.Run("export streams every event and resumes from a sequence", func(t *testing.T) {
		code, out, errOut := run(t, ctx, "export", "game", s)
		if code != exitOK {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		lines := exportLines(t, out)
		total := 0
		for _, k := range []string{"alice", "bob", "carol"} {
			for _, err := range h.st.History(ctx, k) {
				if err != nil {
					t.Fatal(err)
				}
				total++
			}
		}
		if len(lines) != total {
			t.Fatalf("exported %d events, the logs hold %d", len(lines), total)
		}
		for i := 1; i < len(lines); i++ {
			if lines[i].Seq < lines[i-1].Seq {
				t.Fatalf("line %d: seq %d after %d", i, lines[i].Seq, lines[i-1].Seq)
			}
		}
		last := lines[len(lines)-1]
		forged := false
		for _, l := range lines {
			if l.Seq == h.forgedSeq {
				forged = l.Key == "carol" && l.Event != nil && l.Event.ID == h.forgedID && l.Event.Type == "loot"
			}
		}
		if !forged {
			t.Errorf("the export lacks carol's forged event at seq %d", h.forgedSeq)
		}
		contains(t, "export stderr", errOut, fmt.Sprintf("%d event(s); resume with -after-seq %d", total, last.Seq))
		mid := lines[len(lines)/2].Seq
		rest := exportLines(t, mustRun(t, ctx, exitOK, "export", "game", "-after-seq", strconv.FormatUint(mid, 10), s))
		if want := countAfter(lines, mid); len(rest) != want || rest[0].Seq <= mid {
			t.Errorf("resumed after %d: %d lines, want %d", mid, len(rest), want)
		}
		bob := exportLines(t, mustRun(t, ctx, exitOK, "export", "-key", "bob", "game", s))
		for _, l := range bob {
			if l.Key != "bob" {
				t.Fatalf("-key bob exported %q", l.Key)
			}
		}
	})

	t.Run("rollback shows the diff, asks, and undoes the forged event", func(t *testing.T) {
		v := strconv.FormatUint(h.carolBeforeForgery, 10)
		code, _, errOut := run(t, ctx, "rollback", "game", "carol", v, "-reason", "dupe", s) // no "yes" on stdin
		if code != exitFail || !strings.Contains(errOut, "not confirmed") || !strings.Contains(errOut, "remove /inventory/1") {
			t.Fatalf("unconfirmed: exit %d:\n%s", code, errOut)
		}
		out := mustRun(t, ctx, exitOK, "rollback", "game", "carol", v, "-reason", "dupe of sword#91", "-actor", "investigator", "-yes", s)
		contains(t, "rollback", out, fmt.Sprintf("back to version %s", v))
		out = mustRun(t, ctx, exitOK, "log", "game", "carol", "-type", "pl.rollback", s)
		contains(t, "log after rollback", out, "actor=investigator", `reason="dupe of sword#91"`, "rollback to version "+v)
		out = mustRun(t, ctx, exitOK, "dupes", "game", "-path", "/inventory/*/id", "-quiet", s)
		contains(t, "dupes after rollback", out, "0 dupe(s) found")
		if code, _, errOut := run(t, ctx, "rollback", "game", "carol", v, s); code != exitUsage || !strings.Contains(errOut, "-reason is required") {
			t.Errorf("no reason: exit %d:\n%s", code, errOut)
		}
	})
}

// storedAt returns when the server stored key's event at seq.
func storedAt(t *testing.T, ctx context.Context, st *profileledger.Store[gamePlayer], key string, seq uint64) time.Time {
	t.Helper()
	for ev, err := range st.History(ctx, key, profileledger.FromVersion(seq), profileledger.ToVersion(seq)) {
		if err != nil {
			t.Fatal(err)
		}
		return ev.Stored
	}
	t.Fatalf("%s has no event at %d", key, seq)
	return time.Time{}
}

func exportLines(t *testing.T, out string) []investigate.ExportLine {
	t.Helper()
	var lines []investigate.ExportLine
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l investigate.ExportLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		lines = append(lines, l)
	}
	return lines
}

func countAfter(lines []investigate.ExportLine, seq uint64) int {
	n := 0
	for _, l := range lines {
		if l.Seq > seq {
			n++
		}
	}
	return n
}

func TestInvestigationCommandsPrintUsage(t *testing.T) {
	for _, c := range []string{"log", "show", "diff", "blame", "trace", "dupes", "export", "rollback"} {
		if code, out, errOut := run(t, t.Context(), c, "-h"); code != exitOK || out != "" || !strings.Contains(errOut, "Usage: profileledger "+c) {
			t.Errorf("%s -h: exit %d, stderr:\n%s", c, code, errOut)
		}
		if code, _, errOut := run(t, t.Context(), c, "-no-such-flag"); code != exitUsage || !strings.Contains(errOut, "flag provided but not defined") {
			t.Errorf("%s -no-such-flag: exit %d, stderr:\n%s", c, code, errOut)
		}
	}
}
