package web

import (
	"bytes"
	"encoding/json"
	"strings"
)

// DiffLine is one line of a line diff: Op is " " (in both), "-" (only
// before) or "+" (only after).
type DiffLine struct {
	Op   string `json:"op"`
	Text string `json:"text"`
}

// maxDiffCells bounds the work of LineDiff's table: past it, the lines
// that differ are shown as all removed and all added.
const maxDiffCells = 4 << 20

// LineDiff returns the line diff of two JSON documents, each indented
// two spaces a level (object members sorted, as encoding/json writes
// maps): what an event did to a profile's data, for people.
func LineDiff(before, after json.RawMessage) []DiffLine {
	a, b := lines(before), lines(after)
	// The common head and tail need no table.
	head := 0
	for head < len(a) && head < len(b) && a[head] == b[head] {
		head++
	}
	tail := 0
	for tail < len(a)-head && tail < len(b)-head && a[len(a)-1-tail] == b[len(b)-1-tail] {
		tail++
	}
	out := make([]DiffLine, 0, len(a)+len(b))
	for _, l := range a[:head] {
		out = append(out, DiffLine{" ", l})
	}
	out = append(out, middle(a[head:len(a)-tail], b[head:len(b)-tail])...)
	for _, l := range a[len(a)-tail:] {
		out = append(out, DiffLine{" ", l})
	}
	return out
}

// middle diffs a and b by their longest common subsequence.
func middle(a, b []string) []DiffLine {
	var out []DiffLine
	if len(a)*len(b) > maxDiffCells {
		for _, l := range a {
			out = append(out, DiffLine{"-", l})
		}
		for _, l := range b {
			out = append(out, DiffLine{"+", l})
		}
		return out
	}
	// lcs[i][j] is the length of the LCS of a[i:] and b[j:].
	lcs := make([][]int32, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int32, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			out = append(out, DiffLine{" ", a[i]})
			i, j = i+1, j+1
		case i < len(a) && (j == len(b) || lcs[i+1][j] >= lcs[i][j+1]):
			out = append(out, DiffLine{"-", a[i]})
			i++
		default:
			out = append(out, DiffLine{"+", b[j]})
			j++
		}
	}
	return out
}

// lines returns doc indented, one string a line (none for null).
func lines(doc json.RawMessage) []string {
	if len(doc) == 0 || string(doc) == "null" {
		return nil
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, doc, "", "  "); err != nil {
		return []string{string(doc)}
	}
	return strings.Split(buf.String(), "\n")
}
