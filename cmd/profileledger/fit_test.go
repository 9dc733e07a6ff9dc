package main

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestFitWriterCutsLinesToTheTerminalWidth: on a terminal the
// investigator's tables are cut to the width (80 columns by default), not
// counting colour codes, and multi-byte runes are never split.
func TestFitWriterCutsLinesToTheTerminalWidth(t *testing.T) {
	var buf bytes.Buffer
	fw := &fitWriter{w: &buf, width: 10}
	long := "SEQ  STORED  TYPE  OPS /gems/- add \"gem-06-1\""
	colour := "\x1b[31;1mDUPE\x1b[0m at ü-ü-ü-ü-ü-ü"
	for _, part := range []string{"short\n", long + "\n", colour + "\n", "exactly10!\n", "tail without newline"} {
		fw.Write([]byte(part))
	}
	fw.flush()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	want := []string{"short", "SEQ  STOR…\x1b[0m", "\x1b[31;1mDUPE\x1b[0m at ü…\x1b[0m", "exactly10!", "tail with…\x1b[0m"}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d: %q", len(lines), len(want), lines)
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d = %q, want %q", i, lines[i], want[i])
		}
		if !utf8.ValidString(lines[i]) {
			t.Errorf("line %d is not valid UTF-8: %q", i, lines[i])
		}
	}
}
