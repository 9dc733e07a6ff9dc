package investigate

import (
	"context"
	"errors"
	"fmt"

	"github.com/profileledger/profileledger"
)

// DefaultPageLimit is LogPage's page size when the query names none, and
// MaxPageLimit the largest it accepts.
const (
	DefaultPageLimit = 500
	MaxPageLimit     = 5000
)

// PageQuery selects one page of a profile's log for LogPage: the page
// that starts at version From (0: the first page), or, with Before set,
// the page that ends just before version Before (Before = LastPage: the
// last page).
type PageQuery struct {
	From, Before uint64
	// Limit is the page's size in events (0: DefaultPageLimit). A page
	// never splits a group commit (events that share a Seq), so it may
	// hold a few more.
	Limit int
}

// LastPage, as PageQuery.Before, asks for the last page of a log.
const LastPage = ^uint64(0)

// Page is one page of a profile's log.
type Page struct {
	Key     string  `json:"key"`
	Entries []Entry `json:"entries"`
	// Prev is the Before of the page before this one, and Next the From
	// of the page after it; 0 when there is none.
	Prev uint64 `json:"prev"`
	Next uint64 `json:"next"`
}

// LogPage returns one page of the profile's log, so that a reader of a
// long history (a web page) never holds all of it: reading a page costs
// the events on it and a look on each side. Errors: ErrInvalidInput (a
// bad query), and those of History.
func LogPage(ctx context.Context, src Source, key string, q PageQuery) (Page, error) {
	if q.Limit == 0 {
		q.Limit = DefaultPageLimit
	}
	if q.Limit < 1 || q.Limit > MaxPageLimit {
		return Page{}, fmt.Errorf("%w: page limit %d: want 1 to %d", profileledger.ErrInvalidInput, q.Limit, MaxPageLimit)
	}
	if q.From > 0 && q.Before > 0 {
		return Page{}, fmt.Errorf("%w: a page starts at a version or ends before one, not both", profileledger.ErrInvalidInput)
	}
	p := Page{Key: key, Entries: []Entry{}}
	var err error
	if q.Before > 0 {
		p.Entries, err = pageBefore(ctx, src, key, q.Before, q.Limit)
	} else {
		p.Entries, p.Next, err = pageFrom(ctx, src, key, max(q.From, 1), q.Limit)
	}
	if err != nil || len(p.Entries) == 0 {
		return p, err
	}
	first, last := p.Entries[0].Seq, p.Entries[len(p.Entries)-1].Seq
	if first > 1 {
		if ok, err := anyEntry(ctx, src, key, LogFilter{ToVersion: first - 1}); err != nil {
			return p, err
		} else if ok {
			p.Prev = first
		}
	}
	if q.Before > 0 && last < LastPage {
		if ok, err := anyEntry(ctx, src, key, LogFilter{FromVersion: last + 1}); err != nil {
			return p, err
		} else if ok {
			p.Next = last + 1
		}
	}
	return p, nil
}

// pageFrom reads up to limit events from version from (finishing the last
// group commit), and returns the version after them if there are more.
func pageFrom(ctx context.Context, src Source, key string, from uint64, limit int) ([]Entry, uint64, error) {
	var out []Entry
	var next uint64
	for e, err := range Log(ctx, src, key, LogFilter{FromVersion: from}) {
		if err != nil {
			return nil, 0, err
		}
		if len(out) >= limit && e.Seq != out[len(out)-1].Seq {
			next = e.Seq
			break
		}
		out = append(out, e)
	}
	return out, next, nil
}

// pageBefore reads the last limit events before version before (starting
// at a group commit's first event): it looks back over a window of
// versions that starts small and grows fourfold until it holds enough, or
// reaches the start. Versions are stream sequences shared by all
// profiles, so a profile's events may be sparse among them, or dense (a
// group commit is one sequence of many events): the growing window reads
// at most a few times what the page needs either way.
func pageBefore(ctx context.Context, src Source, key string, before uint64, limit int) ([]Entry, error) {
	if before == LastPage {
		last, err := lastVersion(ctx, src, key)
		if err != nil || last == 0 {
			return nil, err
		}
		before = last + 1
	}
	if before <= 1 {
		return nil, nil
	}
	span := uint64(16)
	for {
		from := uint64(1)
		if before > span {
			from = before - span
		}
		var got []Entry
		for e, err := range Log(ctx, src, key, LogFilter{FromVersion: from, ToVersion: before - 1}) {
			if err != nil {
				return nil, err
			}
			got = append(got, e)
		}
		if len(got) >= limit || from == 1 {
			cut := max(len(got)-limit, 0)
			for cut > 0 && got[cut-1].Seq == got[cut].Seq {
				cut--
			}
			return got[cut:], nil
		}
		if span > LastPage/4 {
			span = LastPage
		} else {
			span *= 4
		}
	}
}

// anyEntry reports whether the log has an event that f selects.
func anyEntry(ctx context.Context, src Source, key string, f LogFilter) (bool, error) {
	for _, err := range Log(ctx, src, key, f) {
		return err == nil, err
	}
	return false, nil
}

// lastVersion returns the profile's last version: from its newest
// snapshot and the events after it if src came from FromStore, else by
// reading its log.
func lastVersion(ctx context.Context, src Source, key string) (uint64, error) {
	if c, ok := src.(currenter); ok {
		_, v, err := c.current(ctx, key)
		if !errors.Is(err, profileledger.ErrBadEvent) {
			return v, err
		}
	}
	var last uint64
	for e, err := range Log(ctx, src, key, LogFilter{}) {
		if err != nil {
			return 0, err
		}
		last = e.Seq
	}
	return last, nil
}
