package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/audit"
	"github.com/profileledger/profileledger/pltest"
)

func TestAuditReportsACleanStoreAndThenABrokenOne(t *testing.T) {
	srv := pltest.Run(t)
	js := pltest.Connect(t, srv.URL())
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	st, err := profileledger.Open(ctx, js, "shop", tradePlayer{Coins: 100, Inventory: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(ctx)
	for _, key := range []string{"user:1", "user.2"} {
		s, err := st.StartSession(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Apply(ctx, "loot", profileledger.Add("/inventory/-", "sword")); err != nil {
			t.Fatal(err)
		}
		if err := s.End(ctx); err != nil {
			t.Fatal(err)
		}
	}

	code, out, errOut := run(t, ctx, "audit", "-server", srv.URL(), "-progress", "1", "shop")
	if code != exitOK {
		t.Fatalf("clean store: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if !strings.HasPrefix(out, "store shop: 2 profiles, 6 events, 2 snapshots, 0 violations (") || strings.Count(out, "\n") != 1 {
		t.Errorf("clean store: stdout is\n%s", out)
	}
	if !strings.Contains(errOut, "1/2 profiles") || !strings.Contains(errOut, "2/2 profiles, 6 events, 2 snapshots, 0 violations") {
		t.Errorf("-progress 1: stderr is\n%s", errOut)
	}

	// Garbage on a profile's subject (not an event, and no link in the
	// hash chain); the flags after the store name.
	ack, err := js.Publish(ctx, "pl.shop.ev.user_3A1", []byte("garbage"))
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut = run(t, ctx, "audit", "shop", "-server", srv.URL())
	want := `profile "user:1" seq ` + fmt.Sprint(ack.Sequence) + `: message-is-an-event: `
	if code != exitFail || !strings.HasPrefix(out, want) || !strings.Contains(out, "hash-chain-intact") || !strings.Contains(out, "store shop: 2 profiles, 6 events, 2 snapshots, 2 violations") {
		t.Fatalf("broken store: exit %d, want %d and a line starting %q\nstdout:\n%s\nstderr:\n%s", code, exitFail, want, out, errOut)
	}

	code, out, _ = run(t, ctx, "audit", "-json", "-server", srv.URL(), "shop")
	var rep audit.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("-json: %v in\n%s", err, out)
	}
	if code != exitFail || rep.Store != "shop" || rep.Profiles != 2 || rep.Events != 6 || rep.Messages != 7 || rep.Snapshots != 2 ||
		len(rep.Violations) != 2 || rep.Violations[0].Rule != audit.RuleNotAnEvent || rep.Violations[0].Seq != ack.Sequence || rep.Violations[0].Key != "user:1" ||
		rep.Violations[1].Rule != audit.RuleChain || rep.Violations[1].Seq != ack.Sequence {
		t.Errorf("-json: exit %d, %+v", code, rep)
	}
}

func TestAuditUsageAndFailures(t *testing.T) {
	srv := pltest.Run(t)
	tests := []struct {
		name string
		args []string
		code int
		want string // in stderr
	}{
		{"no store", []string{"audit"}, exitUsage, "want one store, got 0 arguments"},
		{"two stores", []string{"audit", "a", "b"}, exitUsage, "want one store, got 2 arguments"},
		{"bad flag", []string{"audit", "-frobnicate", "a"}, exitUsage, "flag provided but not defined"},
		{"negative progress", []string{"audit", "-progress", "-1", "a"}, exitUsage, "-progress -1"},
		{"invalid store name", []string{"audit", "-server", srv.URL(), "a.b"}, exitUsage, "invalid store name"},
		{"help", []string{"audit", "-h"}, exitOK, "Usage: profileledger audit [connection flags]"},
		{"unknown store", []string{"audit", "-server", srv.URL(), "nosuchstore"}, exitFail, "no such store"},
		{"no server", []string{"audit", "-server", "nats://127.0.0.1:1", "a"}, exitFail, "connect to nats://127.0.0.1:1"},
		{"digest and verify", []string{"audit", "-digest", "-verify-digest", "x.json", "a"}, exitUsage, "one at a time"},
		{"no digest file", []string{"audit", "-verify-digest", "/nonexistent/x.json", "a"}, exitUsage, "-verify-digest: open /nonexistent/x.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := run(t, t.Context(), tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, want %d; stderr lacks %q:\n%s", code, tt.code, tt.want, stderr)
			}
		})
	}
	code, out, _ := run(t, t.Context(), "audit", "-json", "-server", srv.URL(), "nosuchstore")
	var o struct {
		audit.Report
		Error string `json:"error"`
	}
	if code != exitFail || json.Unmarshal([]byte(out), &o) != nil || !strings.Contains(o.Error, "no such store") || o.Violations == nil {
		t.Errorf("-json on an unknown store: exit %d, %+v from\n%s", code, o, out)
	}
}

func TestAuditDigestIsKeptAndLaterVerified(t *testing.T) {
	srv := pltest.Run(t)
	js := pltest.Connect(t, srv.URL())
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	st, err := profileledger.Open(ctx, js, "shop", tradePlayer{Coins: 100, Inventory: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(ctx)
	play := func(key string) {
		s, err := st.StartSession(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Apply(ctx, "loot", profileledger.Add("/inventory/-", "sword")); err != nil {
			t.Fatal(err)
		}
		if err := s.End(ctx); err != nil {
			t.Fatal(err)
		}
	}
	play("user:1")
	play("user:2")
	code, out, errOut := run(t, ctx, "audit", "-server", srv.URL(), "-digest", "shop")
	var d audit.Digest
	if code != exitOK || json.Unmarshal([]byte(out), &d) != nil || len(d.Heads) != 2 || !strings.Contains(errOut, "digest: root "+d.Root+" over 2 profile heads") {
		t.Fatalf("-digest: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	file := filepath.Join(t.TempDir(), "digest.json")
	if err := os.WriteFile(file, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	play("user:1") // the log grows: still verified
	code, out, errOut = run(t, ctx, "audit", "-server", srv.URL(), "-verify-digest", file, "shop")
	if code != exitOK || !strings.Contains(out, "all 2 recorded heads are in the log, unchanged") {
		t.Fatalf("-verify-digest after growth: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	// The root kept elsewhere must match the file's: a file whose heads
	// and root an insider recomputed is refused.
	if code, _, errOut = run(t, ctx, "audit", "-server", srv.URL(), "-verify-digest", file, "-expect-root", d.Root, "shop"); code != exitOK {
		t.Fatalf("-expect-root with the file's own root: exit %d\n%s", code, errOut)
	}
	if code, _, errOut = run(t, ctx, "audit", "-server", srv.URL(), "-verify-digest", file, "-expect-root", strings.Repeat("0", 64), "shop"); code != exitFail || !strings.Contains(errOut, "the file was changed") {
		t.Fatalf("-expect-root with another root: exit %d\n%s", code, errOut)
	}
	// user:2's last message goes: its recorded head is gone.
	stream, err := js.Stream(ctx, "PL_shop")
	if err != nil {
		t.Fatal(err)
	}
	gone := d.Heads[1].Seq
	if err := stream.DeleteMsg(ctx, gone); err != nil {
		t.Fatal(err)
	}
	code, out, _ = run(t, ctx, "audit", "-server", srv.URL(), "-verify-digest", file, "shop")
	want := fmt.Sprintf(`profile "user:2" seq %d: digest-head-in-log: `, gone)
	if code != exitFail || !strings.Contains(out, want) {
		t.Fatalf("-verify-digest after a deletion: exit %d, want a line with %q\n%s", code, want, out)
	}
	// An edited digest is refused before anything is read.
	edited := strings.Replace(string(mustRead(t, file)), d.Heads[0].Hash, strings.Repeat("0", 64), 1)
	if err := os.WriteFile(file, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = run(t, ctx, "audit", "-server", srv.URL(), "-verify-digest", file, "shop")
	if code != exitUsage || !strings.Contains(errOut, "the digest was changed") {
		t.Fatalf("an edited digest: exit %d\n%s", code, errOut)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
