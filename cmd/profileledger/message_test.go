package main

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/ledger"
	"github.com/profileledger/profileledger/pltest"
)

// inboxPlayer is the profile type of the message, info and erase tests.
type inboxPlayer struct {
	Coins int      `json:"coins"`
	Gifts []string `json:"gifts"`
}

// runIn runs the program with stdin and args, as run does.
func runIn(t *testing.T, ctx context.Context, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut syncBuffer
	m := NewMain(&out, &errOut)
	m.stdin = strings.NewReader(stdin)
	code = m.Run(ctx, args)
	return code, out.String(), errOut.String()
}

// openInboxStore opens store "game" on its own connection to url, as a
// game server would, and closes it at cleanup.
func openInboxStore(t *testing.T, ctx context.Context, url, node string) (*profileledger.Store[inboxPlayer], jetstream.JetStream) {
	t.Helper()
	js := pltest.Connect(t, url)
	st, err := profileledger.Open(ctx, js, "game", inboxPlayer{Coins: 10, Gifts: []string{}},
		profileledger.WithNode(node), profileledger.WithLeaseTTL(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st.Close(cctx)
	})
	return st, js
}

// gift is a message handler that keeps each payload as a gift.
func gift(p *inboxPlayer, m profileledger.Message) error {
	p.Gifts = append(p.Gifts, string(m.Payload))
	return nil
}

// waitGifts waits until s's data holds n gifts: until n messages are
// handled and their events are in the log.
func waitGifts(t *testing.T, ctx context.Context, s *profileledger.Session[inboxPlayer], n int) {
	t.Helper()
	for len(s.Data().Gifts) < n {
		select {
		case <-ctx.Done():
			t.Fatalf("%d of %d messages handled", len(s.Data().Gifts), n)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func TestMessageIsHandledByTheHolder(t *testing.T) {
	srv := pltest.Run(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	st, js := openInboxStore(t, ctx, srv.URL(), "game-1")
	s, err := st.StartSession(ctx, "user:1")
	if err != nil {
		t.Fatal(err)
	}
	s.HandleMessages(gift)

	// Flags after the arguments; -json.
	code, out, errOut := run(t, ctx, "message", "game", "user:1", "sword", "-server", srv.URL(), "-id", "order-1", "-meta", "actor=shop", "-meta", "reason=purchase", "-json")
	var sent messageOutput
	if code != exitOK || json.Unmarshal([]byte(out), &sent) != nil || sent.ID != "order-1" || sent.Bytes != 5 || sent.Meta["actor"] != "shop" {
		t.Fatalf("exit %d, %+v; stdout:\n%s\nstderr:\n%s", code, sent, out, errOut)
	}
	// The payload from standard input; a retry of order-1 (a no-op); a
	// payload that starts with a dash, after "--".
	code, out, errOut = runIn(t, ctx, "shield\n", "message", "-server", srv.URL(), "game", "user:1", "-")
	if code != exitOK || !strings.Contains(out, `sent 7 bytes to profile "user:1" in store game (message id `) {
		t.Fatalf("stdin payload: exit %d; stdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if code, _, errOut := run(t, ctx, "message", "-server", srv.URL(), "-id", "order-1", "game", "user:1", "sword"); code != exitOK {
		t.Fatalf("retry: exit %d; stderr:\n%s", code, errOut)
	}
	if code, _, errOut := run(t, ctx, "message", "-server", srv.URL(), "game", "user:1", "--", "-5 coins"); code != exitOK {
		t.Fatalf("dash payload: exit %d; stderr:\n%s", code, errOut)
	}
	waitGifts(t, ctx, s, 3)
	if got, want := s.Data().Gifts, []string{"sword", "shield\n", "-5 coins"}; !slices.Equal(got, want) {
		t.Fatalf("gifts %q, want %q (the retry of order-1 handled once)", got, want)
	}
	// The handling event records the sender's metadata and the message id.
	var found bool
	for ev, err := range st.History(ctx, "user:1", profileledger.OfType(ledger.TypeMessage)) {
		if err != nil {
			t.Fatal(err)
		}
		if ev.Meta[ledger.MetaMsgID] == "order-1" {
			found = ev.Meta["actor"] == "shop" && ev.Meta["reason"] == "purchase"
		}
	}
	if !found {
		t.Error("no handled order-1 with the sender's metadata in the log")
	}

	// A store that does not exist is not created.
	code, _, errOut = run(t, ctx, "message", "-server", srv.URL(), "nosuchstore", "k", "x")
	if code != exitFail || !strings.Contains(errOut, "no such store") {
		t.Errorf("unknown store: exit %d; stderr:\n%s", code, errOut)
	}
	if _, err := js.Stream(ctx, "PL_nosuchstore"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("message created the store it was given: %v", err)
	}
}

// TestMessageToAProfileNobodyHolds: the next session handles it.
func TestMessageToAProfileNobodyHolds(t *testing.T) {
	srv := pltest.Run(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	st, _ := openInboxStore(t, ctx, srv.URL(), "game-1")
	if code, _, errOut := run(t, ctx, "message", "-server", srv.URL(), "game", "offline", "gift"); code != exitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut)
	}
	s, err := st.StartSession(ctx, "offline")
	if err != nil {
		t.Fatal(err)
	}
	s.HandleMessages(gift)
	waitGifts(t, ctx, s, 1)
}

func TestInboxCommandsUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"message without a payload", []string{"message", "game", "k"}, "want a store, a key and a payload, got 2"},
		{"message with a bad -meta", []string{"message", "-meta", "novalue", "game", "k", "x"}, "want key=value"},
		{"message with a reserved -meta key", []string{"message", "-meta", "pl.msg.seq=1", "game", "k", "x"}, "reserved"},
		{"message to an empty key", []string{"message", "game", "", "x"}, `key ""`},
		{"message with a long -id", []string{"message", "-id", strings.Repeat("x", 200), "game", "k", "x"}, "-id is 200 bytes"},
		{"a TLS certificate without its key", []string{"message", "-tlscert", "c.pem", "game", "k", "x"}, "-tlscert and -tlskey go together"},
		{"info without a key", []string{"info", "game"}, "want a store and a key, got 1"},
		{"info with a bad flag", []string{"info", "-nope", "game", "k"}, "flag provided but not defined"},
		{"erase without a key", []string{"erase", "game"}, "want a store and a key"},
		{"erase of a key and a user", []string{"erase", "-user", "u", "game", "k"}, "with -user, want a store only"},
		{"a negative timeout", []string{"erase", "-timeout", "-1s", "game", "k"}, "-timeout -1s: must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, t.Context(), tt.args...)
			if code != exitUsage {
				t.Errorf("exit code %d, want %d", code, exitUsage)
			}
			if !strings.Contains(stderr, tt.want) || !strings.Contains(stderr, "Usage: profileledger "+tt.args[0]) {
				t.Errorf("stderr does not say %q and the usage:\n%s", tt.want, stderr)
			}
			if stdout != "" {
				t.Errorf("usage error wrote to stdout:\n%s", stdout)
			}
		})
	}
	for _, c := range []string{"message", "info", "erase"} {
		code, _, stderr := run(t, t.Context(), c, "-h")
		if code != exitOK || !strings.Contains(stderr, "-server") || !strings.Contains(stderr, "-creds") || !strings.Contains(stderr, "-tlsca") {
			t.Errorf("%s -h: exit %d, no connection flags:\n%s", c, code, stderr)
		}
	}
}
