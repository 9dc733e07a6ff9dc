package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/audit"
	"github.com/profileledger/profileledger/investigate"
)

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// apiError is an API's error answer.
type apiError struct {
	Error string `json:"error"`
}

// fail answers with err, as a bad request if the request was at fault.
func (s *Server) fail(w http.ResponseWriter, err error) {
	status := http.StatusBadGateway // NATS could not answer
	switch {
	case errors.Is(err, errBadRequest), errors.Is(err, profileledger.ErrInvalidKey), errors.Is(err, profileledger.ErrInvalidInput):
		status = http.StatusBadRequest
	case errors.Is(err, investigate.ErrNoSuchPoint), errors.Is(err, investigate.ErrNoSuchEvent), errors.Is(err, investigate.ErrNoStore):
		status = http.StatusNotFound
	default:
		s.cfg.Log.Warn("web: request failed", "err", err)
	}
	writeJSON(w, status, apiError{Error: err.Error()})
}

var errBadRequest = errors.New("bad request")

// params reads a request's query.
type params struct {
	url.Values
	err error
}

func (p *params) key() string {
	k := p.Get("key")
	if p.err == nil {
		if !p.Has("key") {
			p.err = fmt.Errorf("%w: ?key= is missing", errBadRequest)
		} else if err := checkKey(k); err != nil {
			p.err = fmt.Errorf("%w: %w", errBadRequest, err)
		}
	}
	return k
}

func (p *params) uint(name string, def uint64) uint64 {
	s := p.Get(name)
	if s == "" || p.err != nil {
		return def
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		p.err = fmt.Errorf("%w: ?%s=%q is not a whole number", errBadRequest, name, s)
	}
	return v
}

func (s *Server) apiStore(w http.ResponseWriter, r *http.Request) {
	st, err := investigate.Stats(r.Context(), s.cfg.JS, s.cfg.Store)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// apiEvents answers one page of a profile's log:
// ?key=K&from=V&limit=N, or &before=V (before=last: the last page).
func (s *Server) apiEvents(w http.ResponseWriter, r *http.Request) {
	p := &params{Values: r.URL.Query()}
	key := p.key()
	q := investigate.PageQuery{From: p.uint("from", 0), Limit: int(min(p.uint("limit", 0), investigate.MaxPageLimit+1))}
	if p.Get("before") == "last" {
		q.Before = investigate.LastPage
	} else {
		q.Before = p.uint("before", 0)
	}
	if p.err != nil {
		s.fail(w, p.err)
		return
	}
	if q.Before == investigate.LastPage {
		// The last page ends at the subject's last message: one request,
		// however long the log.
		last, err := investigate.LastSeq(r.Context(), s.cfg.JS, s.cfg.Store, key)
		if err != nil {
			s.fail(w, err)
			return
		}
		q.Before = last + 1
	}
	page, err := investigate.LogPage(r.Context(), s.cfg.Source, key, q)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

// eventAnswer is an event with its data before and after as a line diff.
type eventAnswer struct {
	investigate.EventDetail
	Lines []DiffLine `json:"lines"`
}

func (s *Server) apiEvent(w http.ResponseWriter, r *http.Request) {
	p := &params{Values: r.URL.Query()}
	key := p.key()
	seq, index := p.uint("seq", 0), p.uint("index", 0)
	if p.err == nil && seq == 0 {
		p.err = fmt.Errorf("%w: ?seq= is missing", errBadRequest)
	}
	if p.err != nil {
		s.fail(w, p.err)
		return
	}
	d, err := investigate.EventAt(r.Context(), s.cfg.Source, key, seq, int(min(index, 1<<30)))
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, eventAnswer{EventDetail: d, Lines: LineDiff(d.Before, d.After)})
}

// apiState answers a profile's data as of ?v= (a version or an RFC 3339
// time; default: now).
func (s *Server) apiState(w http.ResponseWriter, r *http.Request) {
	p := &params{Values: r.URL.Query()}
	key := p.key()
	if p.err != nil {
		s.fail(w, p.err)
		return
	}
	pt := investigate.Point{Version: investigate.LastPage}
	if v := p.Get("v"); v != "" {
		var err error
		if pt, err = investigate.ParsePoint(v); err != nil {
			s.fail(w, fmt.Errorf("%w: ?v=: %w", errBadRequest, err))
			return
		}
	}
	st, err := investigate.StateAt(r.Context(), s.cfg.Source, key, pt)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) apiBlame(w http.ResponseWriter, r *http.Request) {
	p := &params{Values: r.URL.Query()}
	key := p.key()
	path := p.Get("path")
	if p.err == nil && path != "" && path[0] != '/' {
		p.err = fmt.Errorf("%w: ?path=%q: a JSON pointer starts with /", errBadRequest, path)
	}
	if p.err != nil {
		s.fail(w, p.err)
		return
	}
	b, err := investigate.Blame(r.Context(), s.cfg.Source, key, path)
	if err != nil {
		s.fail(w, err)
		return
	}
	a := blameAnswer{BlameResult: b}
	if n := len(b.Changes); n > MaxBlameChanges {
		a.Changes, a.Omitted = b.Changes[n-MaxBlameChanges:], n-MaxBlameChanges
	}
	writeJSON(w, http.StatusOK, a)
}

// MaxBlameChanges is how many of a path's changes the blame API returns:
// the newest. A field that every event changes (a counter of a long
// profile) would otherwise ship its whole history to the page.
const MaxBlameChanges = 500

// blameAnswer is a blame, with the count of older changes left out.
type blameAnswer struct {
	investigate.BlameResult
	Omitted int `json:"omitted"`
}

func (s *Server) apiTrace(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if !q.Has("value") {
		s.fail(w, fmt.Errorf("%w: ?value= is missing", errBadRequest))
		return
	}
	pattern, err := investigate.ParsePattern(q.Get("path"))
	if err != nil {
		s.fail(w, fmt.Errorf("%w: ?path=: %w", errBadRequest, err))
		return
	}
	t, err := investigate.Trace(r.Context(), s.cfg.Source, q.Get("value"), pattern)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

// auditAnswer is the last audit, and whether one is running.
type auditAnswer struct {
	Last    *AuditResult `json:"last"`
	Running bool         `json:"running"`
}

func (s *Server) apiAudit(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	a := auditAnswer{Last: s.lastAudit, Running: s.auditing}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, a)
}

// runAudit runs audit.Store for the store (one at a time) while the
// request waits, and keeps its result for the store page. It reads only;
// it is a POST because it is work a link must not start, and it needs
// the page's CSRF token in CSRFHeader.
func (s *Server) runAudit(w http.ResponseWriter, r *http.Request) {
	if !equal(r.Header.Get(CSRFHeader), s.csrf) {
		writeJSON(w, http.StatusForbidden, apiError{Error: "running the audit needs the page's token in the " + CSRFHeader + " header"})
		return
	}
	if o := r.Header.Get("Origin"); o != "" {
		if u, err := url.Parse(o); err != nil || u.Host != r.Host {
			writeJSON(w, http.StatusForbidden, apiError{Error: "cross-origin request refused: origin " + o})
			return
		}
	}
	s.mu.Lock()
	if s.auditing {
		s.mu.Unlock()
		writeJSON(w, http.StatusConflict, apiError{Error: "an audit is running"})
		return
	}
	s.auditing = true
	s.mu.Unlock()
	res := &AuditResult{Started: time.Now()}
	rep, err := audit.Store(r.Context(), s.cfg.JS, s.cfg.Store)
	res.Duration, res.Report = time.Since(res.Started), rep
	if err != nil {
		res.Error = err.Error()
	}
	s.mu.Lock()
	s.lastAudit, s.auditing = res, false
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, auditAnswer{Last: res})
}

// apiLive streams a profile's new events as server-sent events (one
// "entry" event of JSON each), from version ?from= (default: after its
// last event), until the client goes or the server stops.
func (s *Server) apiLive(w http.ResponseWriter, r *http.Request) {
	p := &params{Values: r.URL.Query()}
	key := p.key()
	from := p.uint("from", 0)
	if p.err != nil {
		s.fail(w, p.err)
		return
	}
	if from == 0 {
		last, err := investigate.LastSeq(r.Context(), s.cfg.JS, s.cfg.Store, key)
		if err != nil {
			s.fail(w, err)
			return
		}
		from = last + 1
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		s.fail(w, errors.New("streaming is not supported by this connection"))
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": live\n\n")
	fl.Flush()
	err := investigate.Follow(r.Context(), s.cfg.Source, key, investigate.LogFilter{FromVersion: max(from, 1)}, s.cfg.FollowInterval, func(e investigate.Entry) error {
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "event: entry\nid: %d\ndata: %s\n\n", e.Seq, b); err != nil {
			return err
		}
		fl.Flush()
		return nil
	})
	if err != nil && r.Context().Err() == nil {
		b, _ := json.Marshal(apiError{Error: err.Error()})
		fmt.Fprintf(w, "event: failure\ndata: %s\n\n", b)
		fl.Flush()
	}
}
