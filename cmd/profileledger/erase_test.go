package main

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/audit"
	"github.com/profileledger/profileledger/ledger"
	"github.com/profileledger/profileledger/pltest"
)

func TestEraseAsksFirstAndLeavesATombstone(t *testing.T) {
	srv := pltest.Run(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	st, js := openInboxStore(t, ctx, srv.URL(), "game-1")
	s, err := st.StartSession(ctx, "user:3")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddUserID(ctx, "roblox:3"); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(ctx, "coin", profileledger.Inc("/coins", 5)); err != nil {
		t.Fatal(err)
	}
	exists := func(key string) bool {
		t.Helper()
		info, err := st.Info(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		return info.Exists
	}

	// Not confirmed: a wrong answer, and no input at all.
	for _, answer := range []string{"no\n", "y\n", ""} {
		code, out, errOut := runIn(t, ctx, answer, "erase", "-server", srv.URL(), "game", "user:3")
		if code != exitFail || out != "" || !strings.Contains(errOut, "nothing was erased") ||
			!strings.Contains(errOut, `About to erase profile "user:3" of store game (version `) || !strings.Contains(errOut, "held by game-1") {
			t.Fatalf("answer %q: exit %d; stdout:\n%s\nstderr:\n%s", answer, code, out, errOut)
		}
	}
	if !exists("user:3") || s.Err() != nil {
		t.Fatal("an unconfirmed erase erased, or ended the holder's session")
	}

	// Confirmed: the holder hands over; only the tombstone is left, with
	// who and why.
	code, out, errOut := runIn(t, ctx, "yes\n", "erase", "-server", srv.URL(), "game", "user:3", "-reason", "ticket 12", "-actor", "support:alice")
	if code != exitOK || !strings.Contains(out, `erased profile "user:3" of store game: only its tombstone is left`) {
		t.Fatalf("exit %d; stdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	select {
	case <-s.Done():
	case <-ctx.Done():
		t.Fatal("the holder's session did not end")
	}
	if err := s.Apply(ctx, "coin", profileledger.Inc("/coins", 1)); err == nil {
		t.Fatal("the old holder could still write")
	}
	log := pltest.ReadLog(t, js, "game", "user:3")
	if len(log) != 1 || log[0].Event.Type != ledger.TypeErased || log[0].Event.Meta["actor"] != "support:alice" || log[0].Event.Meta["reason"] != "ticket 12" {
		t.Fatalf("log after the erasure: %+v", log)
	}
	if exists("user:3") {
		t.Fatal("the erased profile still exists")
	}

	// By user id, without asking, -json: every linked profile.
	for _, key := range []string{"alt:1", "alt:2"} {
		a, err := st.StartSession(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.AddUserID(ctx, "roblox:9"); err != nil {
			t.Fatal(err)
		}
		if err := a.End(ctx); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errOut = runIn(t, ctx, "", "erase", "-server", srv.URL(), "-yes", "-json", "-user", "roblox:9", "game")
	var got eraseOutput
	if code != exitOK || json.Unmarshal([]byte(out), &got) != nil || !slices.Equal(got.Erased, []string{"alt:1", "alt:2"}) || got.UserID != "roblox:9" {
		t.Fatalf("-user: exit %d, %+v; stdout:\n%s\nstderr:\n%s", code, got, out, errOut)
	}
	// Again: nothing is linked any more.
	code, out, _ = runIn(t, ctx, "", "erase", "-server", srv.URL(), "-yes", "-user", "roblox:9", "game")
	if code != exitOK || !strings.Contains(out, `no profile of store game is linked to user id "roblox:9"`) {
		t.Fatalf("-user again: exit %d:\n%s", code, out)
	}
	// Erasing an erased profile again is harmless.
	if code, _, errOut := runIn(t, ctx, "", "erase", "-server", srv.URL(), "-yes", "game", "user:3"); code != exitOK {
		t.Fatalf("erase again: exit %d:\n%s", code, errOut)
	}
	if code, _, errOut := runIn(t, ctx, "", "erase", "-server", srv.URL(), "-yes", "nosuchstore", "k"); code != exitFail || !strings.Contains(errOut, "no such store") {
		t.Errorf("unknown store: exit %d:\n%s", code, errOut)
	}

	rep, err := audit.Store(ctx, js, "game")
	if err != nil || !rep.Clean() {
		t.Fatalf("audit after the erasures: %v, %v", err, rep.Violations)
	}
	if !errors.Is(s.Err(), profileledger.ErrSessionEnded) && !errors.Is(s.Err(), profileledger.ErrSessionLost) {
		t.Errorf("the old holder's session ended with %v", s.Err())
	}
}
