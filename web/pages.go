package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/internal/keys"
	"github.com/profileledger/profileledger/investigate"
)

// maxListed is how many profiles the store page lists.
const maxListed = 200

// ProfileURL is the path of a profile's page.
func ProfileURL(key string) string { return "/p?" + url.Values{"key": {key}}.Encode() }

// EventURL is the path of a profile's page with one event open.
func EventURL(key string, seq uint64, index int) string {
	v := url.Values{"key": {key}, "seq": {strconv.FormatUint(seq, 10)}}
	if index > 0 {
		v.Set("index", strconv.Itoa(index))
	}
	return "/p?" + v.Encode()
}

// ItemURL is the path of a value's page (its trace), looked for at
// locations matching pattern ("" : anywhere).
func ItemURL(value, pattern string) string {
	v := url.Values{"value": {value}}
	if pattern != "" {
		v.Set("path", pattern)
	}
	return "/item?" + v.Encode()
}

// SearchURL is the path of a search for q.
func SearchURL(q string) string { return "/search?" + url.Values{"q": {q}}.Encode() }

var funcs = template.FuncMap{
	"profileURL": ProfileURL,
	"itemURL":    ItemURL,
	"searchURL":  SearchURL,
	"time": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format("2006-01-02 15:04:05.000 UTC")
	},
}

// page is what every template gets.
type page struct {
	Title string
	Store string
	CSRF  string
	Query string
	Data  any
}

// render writes template name with data, or a 500.
func (s *Server) render(w http.ResponseWriter, status int, name, title, query string, data any) {
	var buf bytes.Buffer
	if err := s.pages.ExecuteTemplate(&buf, name, page{Title: title, Store: s.cfg.Store, CSRF: s.csrf, Query: query, Data: data}); err != nil {
		s.cfg.Log.Error("web: render", "page", name, "err", err)
		http.Error(w, "profileledger ui: rendering the page failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// problem renders an error page (status, and what was wrong).
func (s *Server) problem(w http.ResponseWriter, status int, msg string) {
	s.render(w, status, "error.html", http.StatusText(status), "", msg)
}

type storeData struct {
	Stats    investigate.StoreStats
	StatsErr string
	Audit    *AuditResult
	Auditing bool
	Keys     []string
	More     bool
}

func (s *Server) storePage(w http.ResponseWriter, r *http.Request) {
	d := storeData{}
	var err error
	if d.Stats, err = investigate.Stats(r.Context(), s.cfg.JS, s.cfg.Store); err != nil {
		d.StatsErr = err.Error()
	}
	for k, err := range s.cfg.Source.Keys(r.Context()) {
		if err != nil {
			d.StatsErr = err.Error()
			break
		}
		if len(d.Keys) == maxListed {
			d.More = true
			break
		}
		d.Keys = append(d.Keys, k)
	}
	slices.Sort(d.Keys)
	s.mu.Lock()
	d.Audit, d.Auditing = s.lastAudit, s.auditing
	s.mu.Unlock()
	s.render(w, http.StatusOK, "store.html", "store "+s.cfg.Store, "", d)
}

// search sends a key to its profile and a value to its trace; a user id,
// or a text that is more than one of these, gets a page of choices.
func (s *Server) search(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query().Get("q")
	if q == "" {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	f, err := investigate.Resolve(r.Context(), s.cfg.Source, q)
	if err != nil {
		s.problem(w, http.StatusBadGateway, "search "+strconv.Quote(q)+": "+err.Error())
		return
	}
	switch {
	case f.Key != "" && len(f.UserProfiles) == 0:
		http.Redirect(w, r, ProfileURL(f.Key), http.StatusSeeOther)
	case f.Value != "":
		http.Redirect(w, r, ItemURL(f.Value, r.URL.Query().Get("path")), http.StatusSeeOther)
	default:
		s.render(w, http.StatusOK, "search.html", "search", q, f)
	}
}

type profileData struct {
	Key     string
	Info    profileledger.Info
	InfoErr string
	// First and Last are the versions of its first and last events (0:
	// none): the version slider's range.
	First, Last uint64
}

func (s *Server) profilePage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	key := q.Get("key")
	if !q.Has("key") {
		s.problem(w, http.StatusBadRequest, "a profile page needs ?key=")
		return
	}
	if err := checkKey(key); err != nil {
		s.problem(w, http.StatusBadRequest, err.Error())
		return
	}
	if trade := q.Get("trade"); trade != "" {
		// A trade id: the page of this profile's side of it.
		for e, err := range investigate.Log(r.Context(), s.cfg.Source, key, investigate.LogFilter{Meta: map[string]string{"trade": trade}}) {
			if err != nil {
				s.problem(w, http.StatusBadGateway, err.Error())
				return
			}
			http.Redirect(w, r, EventURL(key, e.Seq, e.Index), http.StatusSeeOther)
			return
		}
		s.problem(w, http.StatusNotFound, "profile "+strconv.Quote(key)+" has no event of trade "+strconv.Quote(trade))
		return
	}
	d := profileData{Key: key}
	first, err := investigate.LogPage(r.Context(), s.cfg.Source, key, investigate.PageQuery{Limit: 1})
	if err != nil {
		d.InfoErr = err.Error()
	} else if len(first.Entries) > 0 {
		d.First = first.Entries[0].Seq
	}
	if d.Last, err = investigate.LastSeq(r.Context(), s.cfg.JS, s.cfg.Store, key); err != nil {
		d.InfoErr = err.Error()
	}
	if ir, ok := s.cfg.Source.(infoReader); ok {
		info, err := ir.Info(r.Context(), key)
		if err != nil {
			d.InfoErr = err.Error()
		}
		d.Info = info
	}
	s.render(w, http.StatusOK, "profile.html", key, "", d)
}

type itemData struct {
	Value, Path string
}

func (s *Server) itemPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if !q.Has("value") {
		s.problem(w, http.StatusBadRequest, "an item page needs ?value=")
		return
	}
	if _, err := investigate.ParsePattern(q.Get("path")); err != nil {
		s.problem(w, http.StatusBadRequest, err.Error())
		return
	}
	s.render(w, http.StatusOK, "item.html", "item "+q.Get("value"), "", itemData{Value: q.Get("value"), Path: q.Get("path")})
}

// checkKey says what is wrong with a key, if anything.
func checkKey(key string) error {
	if _, err := keys.Encode(key); err != nil {
		return fmt.Errorf("key %q: %w", key, err)
	}
	return nil
}

// infoReader is a Source that tells a profile's Info (one from
// investigate.FromStore is).
type infoReader interface {
	Info(ctx context.Context, key string) (profileledger.Info, error)
}

// ValueText is how a traced value (JSON) is typed into the item page: a
// string as itself, anything else as its JSON.
func ValueText(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	return string(v)
}

// Link returns the absolute URL of path (one of this package's page
// paths) on a server whose base URL is base (http or https).
func Link(base, path string) (string, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%q is not an http(s) URL of a profileledger ui server", base)
	}
	return strings.TrimSuffix(u.Scheme+"://"+u.Host+u.Path, "/") + path, nil
}
