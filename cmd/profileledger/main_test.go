package main

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// syncBuffer is a bytes.Buffer that a running command may write to while
// the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// run runs the program with args and returns its exit code and output.
func run(t *testing.T, ctx context.Context, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut syncBuffer
	code = NewMain(&out, &errOut).Run(ctx, args)
	return code, out.String(), errOut.String()
}

func TestUsageErrorsExitWithTwo(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"no command", nil, "Usage:"},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"bad demo flag", []string{"demo", "-no-such-flag"}, "flag provided but not defined"},
		{"bad serve flag", []string{"serve", "-listen"}, "flag needs an argument"},
		{"stray argument", []string{"demo", "extra"}, `unexpected argument "extra"`},
		{"too few servers", []string{"demo", "-servers", "1"}, "need at least 2"},
		{"bad steal fraction", []string{"demo", "-steal", "2"}, "between 0 and 1"},
		{"bad listen address", []string{"serve", "-listen", "nowhere"}, "-listen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, t.Context(), tt.args...)
			if code != exitUsage {
				t.Errorf("exit code %d, want %d", code, exitUsage)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr does not say %q:\n%s", tt.want, stderr)
			}
			if stdout != "" {
				t.Errorf("usage error wrote to stdout:\n%s", stdout)
			}
		})
	}
}

func TestHelpExitsWithZero(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"help"}, {"help", "demo"}, {"demo", "-h"}, {"serve", "-h"}} {
		code, _, stderr := run(t, t.Context(), args...)
		if code != exitOK {
			t.Errorf("%q: exit code %d, want 0", args, code)
		}
		if !strings.Contains(stderr, "Usage") {
			t.Errorf("%q: no usage on stderr:\n%s", args, stderr)
		}
	}
}
