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

func TestServeMonitorServesTheNATSMonitoringEndpoints(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	srv := startServe(t, ctx, "-listen", "127.0.0.1:0", "-data", t.TempDir(), "-monitor", "127.0.0.1:0")
	m := regexp.MustCompile(`monitoring at (http://127\.0\.0\.1:\d+/)`).FindStringSubmatch(srv.stdout.String())
	if m == nil {
		t.Fatalf("serve -monitor printed no monitoring address; stdout:\n%s", srv.stdout.String())
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for _, path := range []string{"healthz", "jsz"} {
		resp, err := client.Get(m[1] + path)
		if err != nil {
			t.Fatalf("GET /%s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(strings.TrimSpace(string(body)), "{") {
			t.Errorf("GET /%s: %s %s", path, resp.Status, body)
		}
	}
	cancel()
	srv.waitExit(t, exitOK)
}
