package main

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestUIServesTheStoreOnLoopbackUntilInterrupted: ui prints its URL,
// answers on it (the page and the API), and exits 0 when its context ends.
func TestUIServesTheStoreOnLoopbackUntilInterrupted(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	h := scriptedHistory(t, ctx)
	var out, errOut syncBuffer
	uctx, stop := context.WithCancel(ctx)
	done := make(chan int, 1)
	go func() {
		done <- NewMain(&out, &errOut).Run(uctx, []string{"ui", "-server=" + h.url, "-listen", "127.0.0.1:0", "game"})
	}()
	addr := regexp.MustCompile(`at (http://127\.0\.0\.1:\d+/)`)
	var base string
	for base == "" {
		select {
		case code := <-done:
			t.Fatalf("ui exited %d: %s %s", code, out.String(), errOut.String())
		case <-time.After(10 * time.Millisecond):
		}
		if m := addr.FindStringSubmatch(out.String()); m != nil {
			base = m[1]
		}
	}
	for path, want := range map[string]string{"": `id="profiles">3<`, "api/events?key=alice": `"Type":"session.started"`} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET /%s = %d, lacks %s:\n%s", path, resp.StatusCode, want, body)
		}
	}
	stop()
	if code := <-done; code != exitOK {
		t.Errorf("ui exited %d after Ctrl-C: %s", code, errOut.String())
	}
}

// TestUIRefusesOtherMachinesWithoutTheFlagAndAuth: a non-loopback address
// needs -allow-remote and a token or basic auth; both are usage errors
// before anything is opened.
func TestUIRefusesOtherMachinesWithoutTheFlagAndAuth(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"ui"}, "want one store"},
		{[]string{"ui", "-listen", "0.0.0.0:0", "game"}, "not a loopback address"},
		{[]string{"ui", "-listen", "0.0.0.0:0", "-allow-remote", "game"}, "needs a token or basic authentication"},
		{[]string{"ui", "-basic-auth", ":pw", "game"}, "-basic-auth"},
	} {
		code, _, errOut := run(t, t.Context(), tt.args...)
		if code != exitUsage || !strings.Contains(errOut, tt.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", tt.args, code, errOut, tt.want)
		}
	}
}
