package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/pltest"
)

func TestInfoShowsTheHolderUserIDsAndPendingMessages(t *testing.T) {
	srv := pltest.Run(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	st, _ := openInboxStore(t, ctx, srv.URL(), "game-7")
	s, err := st.StartSession(ctx, "user:1")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"roblox:1", "email:a@b"} {
		if err := s.AddUserID(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Apply(ctx, "coin", profileledger.Inc("/coins", 5)); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := st.Message(ctx, "user:1", []byte("gift")); err != nil { // nobody handles them
			t.Fatal(err)
		}
	}

	code, out, errOut := run(t, ctx, "info", "game", "user:1", "-server", srv.URL())
	if code != exitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut)
	}
	for _, want := range []string{"exists            yes", "epoch             1 (sessions so far)", "holder            game-7 (session " + s.ID() + ", since ",
		"user ids          email:a@b, roblox:1", "pending messages  2", "version           "} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// Aligned: every value starts in one column.
	col := -1
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		i := strings.Index(line, "  ")
		for i >= 0 && i < len(line) && line[i] == ' ' {
			i++
		}
		if col >= 0 && i != col {
			t.Errorf("line %q: value at column %d, others at %d", line, i, col)
		}
		col = i
	}

	code, out, _ = run(t, ctx, "info", "-server", srv.URL(), "-json", "game", "user:1")
	var got infoOutput
	if code != exitOK || json.Unmarshal([]byte(out), &got) != nil {
		t.Fatalf("-json: exit %d:\n%s", code, out)
	}
	if !got.Exists || got.Version != s.Version() || got.Epoch != 1 || got.Holder != "game-7" || got.HolderSession != s.ID() ||
		got.HolderSince == nil || got.PendingMessages != 2 || len(got.UserIDs) != 2 || got.Created == nil || got.Updated == nil {
		t.Errorf("-json: %+v", got)
	}

	// A profile nobody has written: a JSON null nowhere, an empty list.
	code, out, _ = run(t, ctx, "info", "-server", srv.URL(), "-json", "game", "nobody")
	got = infoOutput{}
	if code != exitOK || json.Unmarshal([]byte(out), &got) != nil || got.Exists || got.Holder != "" || got.UserIDs == nil || !strings.Contains(out, `"user_ids": []`) {
		t.Errorf("a new profile: exit %d, %+v:\n%s", code, got, out)
	}
	code, out, _ = run(t, ctx, "info", "-server", srv.URL(), "game", "nobody")
	if code != exitOK || !strings.Contains(out, "exists            no") || !strings.Contains(out, "holder            none") {
		t.Errorf("a new profile:\n%s", out)
	}
	if code, _, errOut := run(t, ctx, "info", "-server", srv.URL(), "nosuchstore", "k"); code != exitFail || !strings.Contains(errOut, "no such store") {
		t.Errorf("unknown store: exit %d:\n%s", code, errOut)
	}
}
