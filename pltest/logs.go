package pltest

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// maxLogLines bounds the log lines kept per server.
const maxLogLines = 2000

// logBuffer is a server.Logger that keeps the last maxLogLines lines in
// memory, so a failed test can show what its servers said.
type logBuffer struct {
	name  string
	mu    sync.Mutex
	lines []string
	lost  int
}

func (l *logBuffer) add(level, format string, v ...any) {
	line := level + " " + fmt.Sprintf(format, v...)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lines) == maxLogLines {
		copy(l.lines, l.lines[1:])
		l.lines = l.lines[:len(l.lines)-1]
		l.lost++
	}
	l.lines = append(l.lines, line)
}

func (l *logBuffer) Noticef(format string, v ...any) { l.add("[INF]", format, v...) }
func (l *logBuffer) Warnf(format string, v ...any)   { l.add("[WRN]", format, v...) }
func (l *logBuffer) Fatalf(format string, v ...any)  { l.add("[FTL]", format, v...) }
func (l *logBuffer) Errorf(format string, v ...any)  { l.add("[ERR]", format, v...) }
func (l *logBuffer) Debugf(format string, v ...any)  { l.add("[DBG]", format, v...) }
func (l *logBuffer) Tracef(format string, v ...any)  { l.add("[TRC]", format, v...) }

// tail returns the last n lines, one per line.
func (l *logBuffer) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := l.lines
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// dump writes every kept line to t.Log.
func (l *logBuffer) dump(t testing.TB) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lines) == 0 {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "nats-server %s log", l.name)
	if l.lost > 0 {
		fmt.Fprintf(&b, " (first %d lines dropped)", l.lost)
	}
	b.WriteString(":\n")
	b.WriteString(strings.Join(l.lines, "\n"))
	t.Log(b.String())
}
