package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/investigate"
)

// What the investigation commands (log, show, diff, blame, trace, dupes,
// export, rollback) share: opening the store, tables, colour, progress.

// investigation is an open store for one investigation command.
type investigation struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	st  *profileledger.Store[map[string]any]
	src investigate.Source
}

func (iv *investigation) close() {
	if iv.st != nil {
		closeCLIStore(iv.st)
	}
	iv.nc.Close()
}

// openInvestigation connects as nf says and opens store (which must exist).
func openInvestigation(ctx context.Context, nf *natsFlags, command, store string) (*investigation, error) {
	nc, js, err := nf.connect(command)
	if err != nil {
		return nil, err
	}
	st, err := openCLIStore(ctx, js, store, "profileledger-"+command)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &investigation{nc: nc, js: js, st: st, src: investigate.FromStore(st)}, nil
}

// fail prints a command's error and returns exitFail.
func (m *Main) fail(command string, err error) int {
	fmt.Fprintf(m.stderr, "profileledger %s: %v\n", command, err)
	return exitFail
}

func writeJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// painter colours text on a terminal and leaves it plain elsewhere.
type painter bool

func (p painter) paint(code, s string) string {
	if !p {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}
func (p painter) red(s string) string    { return p.paint("31;1", s) }
func (p painter) green(s string) string  { return p.paint("32", s) }
func (p painter) yellow(s string) string { return p.paint("33", s) }
func (p painter) dim(s string) string    { return p.paint("2", s) }

// progress returns a progress callback for a scan: a bar redrawn in place
// on a terminal, a line every few seconds (and at the end) otherwise, and
// a done func that ends the bar's line.
func progress(w io.Writer, command string) (fn func(investigate.Progress), done func()) {
	var mu sync.Mutex
	tty := isTerminal(w)
	var last time.Time
	drawn := false
	fn = func(p investigate.Progress) {
		mu.Lock()
		defer mu.Unlock()
		end := p.Done == p.Total
		if tty {
			const width = 30
			fill := 0
			if p.Total > 0 {
				fill = p.Done * width / p.Total
			}
			fmt.Fprintf(w, "\r%s %-5s [%s%s] %d/%d profiles", command, p.Phase, strings.Repeat("#", fill), strings.Repeat(".", width-fill), p.Done, p.Total)
			drawn = true
			return
		}
		if now := time.Now(); end || now.Sub(last) >= 2*time.Second {
			last = now
			fmt.Fprintf(w, "profileledger %s: %s %d/%d profiles\n", command, p.Phase, p.Done, p.Total)
		}
	}
	done = func() {
		mu.Lock()
		defer mu.Unlock()
		if drawn {
			fmt.Fprintln(w)
		}
	}
	return fn, done
}

// fmtTime prints a time for a table: UTC, to the second (the sequence
// orders events; -json has the full time).
func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05")
}

// whoWhy prints an event's caller metadata (actor and reason first),
// without the library's keys, which How already tells.
func whoWhy(meta map[string]string) string {
	var parts []string
	for _, k := range []string{profileledger.MetaActor, profileledger.MetaReason} {
		if v := meta[k]; v != "" {
			parts = append(parts, k+"="+quoteIfNeeded(v))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(meta)) {
		switch {
		case k == profileledger.MetaActor, k == profileledger.MetaReason, strings.HasPrefix(k, "pl."),
			k == "node", k == "prev", k == "reconcile", k == "trade", k == "with":
			continue
		}
		parts = append(parts, k+"="+quoteIfNeeded(meta[k]))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

func quoteIfNeeded(s string) string {
	if s == "" || strings.ContainsAny(s, " \t\"=") {
		return fmt.Sprintf("%q", s)
	}
	return s
}

// shortID shortens a session or event id for a table.
func shortID(s string) string {
	if len(s) > 8 {
		return s[:8]
	}
	return s
}

// rawOr prints a JSON value, or "(absent)".
func rawOr(v json.RawMessage) string {
	if v == nil {
		return "(absent)"
	}
	return string(v)
}

// humanOut returns where a command prints its human (non-JSON) output: on
// a terminal, a writer that cuts each line to the terminal's width ($COLUMNS,
// or 80) so that tables stay readable at 80 columns, ending a cut line with
// "…"; elsewhere (a pipe, a file) stdout itself, every line whole. -json
// always has everything. Call done when the output is written.
func (m *Main) humanOut() (w io.Writer, done func()) {
	if !isTerminal(m.stdout) {
		return m.stdout, func() {}
	}
	width := 80
	if n, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && n >= 20 {
		width = n
	}
	fw := &fitWriter{w: m.stdout, width: width}
	return fw, func() { fw.flush() }
}

// fitWriter cuts every line written through it to width runes, not
// counting ANSI colour sequences (ESC [ ... m), and ends a cut line with
// "…".
type fitWriter struct {
	w     io.Writer
	width int
	line  []byte
}

func (f *fitWriter) Write(p []byte) (int, error) {
	for _, b := range p {
		f.line = append(f.line, b)
		if b == '\n' {
			if err := f.flush(); err != nil {
				return 0, err
			}
		}
	}
	return len(p), nil
}

// flush writes the buffered line, cut to width.
func (f *fitWriter) flush() error {
	if len(f.line) == 0 {
		return nil
	}
	_, err := f.w.Write(fitLine(f.line, f.width))
	f.line = f.line[:0]
	return err
}

// fitLine returns line (which may end in a newline) cut to width visible
// runes.
func fitLine(line []byte, width int) []byte {
	nl := len(line) > 0 && line[len(line)-1] == '\n'
	body := line
	if nl {
		body = line[:len(line)-1]
	}
	visible, cutAt := 0, -1
	for i := 0; i < len(body); {
		if body[i] == 0x1b && i+1 < len(body) && body[i+1] == '[' {
			j := bytes.IndexByte(body[i:], 'm')
			if j < 0 {
				break
			}
			i += j + 1
			continue
		}
		_, size := utf8.DecodeRune(body[i:])
		visible++
		if visible == width && cutAt < 0 {
			cutAt = i // the last rune that fits, if the line is longer
		}
		i += size
	}
	if visible <= width || cutAt < 0 {
		return line
	}
	out := append(append([]byte(nil), body[:cutAt]...), "…\x1b[0m"...)
	if nl {
		out = append(out, '\n')
	}
	return out
}
