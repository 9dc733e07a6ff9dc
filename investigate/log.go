package investigate

import (
	"context"
	"iter"
	"slices"
	"time"

	"github.com/profileledger/profileledger"
)

// LogFilter selects the events Log returns. Zero fields select everything.
type LogFilter struct {
	// FromVersion and ToVersion bound the sequence (inclusive).
	FromVersion, ToVersion uint64
	// Since and Until bound the server's timestamp (inclusive).
	Since, Until time.Time
	// Types keeps only events of these types.
	Types []string
	// Path keeps only events whose ops touch this JSON pointer prefix.
	Path string
	// Meta keeps only events whose metadata has each of these values
	// (e.g. {"trade": id}: one side of a trade).
	Meta map[string]string
}

// metaMatches reports whether meta has every value of want.
func metaMatches(meta, want map[string]string) bool {
	for k, v := range want {
		if got, ok := meta[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// Entry is one event as Log returns it, with its ops summarized.
type Entry struct {
	profileledger.Event
	// Summary is SummarizeOps(Event.Ops).
	Summary string `json:"summary"`
	// How is How(Event).
	How string `json:"how"`
	// Bad is set for a message on the profile's subject that is not an
	// event (Event has only Seq and Stored).
	Bad string `json:"bad,omitempty"`
}

// Log returns the profile's events that pass f, in log order. A message
// that is not an event is yielded as an Entry with Bad set, not an error;
// any other error is yielded once, last.
func Log(ctx context.Context, src Source, key string, f LogFilter) iter.Seq2[Entry, error] {
	var opts []profileledger.HistoryOption
	if f.FromVersion > 0 {
		opts = append(opts, profileledger.FromVersion(f.FromVersion))
	}
	if f.ToVersion > 0 {
		opts = append(opts, profileledger.ToVersion(f.ToVersion))
	}
	if !f.Since.IsZero() {
		opts = append(opts, profileledger.Since(f.Since))
	}
	if !f.Until.IsZero() {
		opts = append(opts, profileledger.Until(f.Until))
	}
	return func(yield func(Entry, error) bool) {
		for ev, err := range src.History(ctx, key, opts...) {
			if err != nil {
				if ev.Seq > 0 { // a message that is not an event
					if !yield(Entry{Event: ev, Summary: "-", How: "not an event", Bad: err.Error()}, nil) {
						return
					}
					continue
				}
				yield(Entry{}, err)
				return
			}
			if len(f.Types) > 0 && !slices.Contains(f.Types, ev.Type) {
				continue
			}
			if f.Path != "" && !Touches(ev.Ops, f.Path) {
				continue
			}
			if !metaMatches(ev.Meta, f.Meta) {
				continue
			}
			if !yield(Entry{Event: ev, Summary: SummarizeOps(ev.Ops), How: How(ev)}, nil) {
				return
			}
		}
	}
}

// Follow calls fn with the profile's events that pass f, in log order, and
// then with each new one as it is appended, polling every interval, until
// ctx ends (it then returns nil) or fn or a read fails.
func Follow(ctx context.Context, src Source, key string, f LogFilter, interval time.Duration, fn func(Entry) error) error {
	next := f.FromVersion
	for {
		g := f
		g.FromVersion = next
		for e, err := range Log(ctx, src, key, g) {
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			if err := fn(e); err != nil {
				return err
			}
			next = e.Seq + 1
		}
		timer := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C:
		}
	}
}
