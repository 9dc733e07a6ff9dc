package web_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/investigate"
	"github.com/profileledger/profileledger/web"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// noRedirect is a client that reports redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// get fetches path from the test server and returns the status, the body
// and the response.
func (sc *scripted) get(t *testing.T, path string) (int, string, *http.Response) {
	t.Helper()
	return sc.do(t, http.MethodGet, path, nil)
}

func (sc *scripted) do(t *testing.T, method, path string, hdr http.Header) (int, string, *http.Response) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, sc.http.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp
}

// getJSON fetches an API and decodes its answer, which must have status want.
func (sc *scripted) getJSON(t *testing.T, path string, want int, v any) string {
	t.Helper()
	code, body, resp := sc.get(t, path)
	if code != want {
		t.Fatalf("GET %s = %d, want %d: %s", path, code, want, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("GET %s: Content-Type %q", path, ct)
	}
	if v != nil {
		if err := json.Unmarshal([]byte(body), v); err != nil {
			t.Fatalf("GET %s: %v\n%s", path, err, body)
		}
	}
	return body
}

func qs(kv ...string) string {
	v := url.Values{}
	for i := 0; i < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v.Encode()
}

// TestStorePageCountsProfilesAndLinksEveryKeyEscaped: five profiles, the
// hostile key as text, the odd key in a link that round-trips.
func TestStorePageCountsProfilesAndLinksEveryKeyEscaped(t *testing.T) {
	sc := newScripted(t)
	code, body, _ := sc.get(t, "/")
	if code != http.StatusOK {
		t.Fatalf("GET / = %d: %s", code, body)
	}
	stats, err := investigate.Stats(t.Context(), sc.js, storeName)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`<div class="n" id="profiles">5</div>`,
		`<div class="n" id="event-count">` + strconv.FormatUint(stats.EventMessages, 10) + `</div>`,
		`href="/p?key=alice"`,
		`href="` + strings.ReplaceAll(web.ProfileURL(oddKey), "+", "&#43;") + `"`, // as html/template writes a URL
		`&lt;script&gt;document.title=&#34;pwned-key&#34;&lt;/script&gt;`,
		"No audit has run",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the store page lacks %s", want)
		}
	}
	if strings.Contains(body, evilKey) {
		t.Error("the store page has the hostile key unescaped")
	}
	if u, _ := url.Parse(web.ProfileURL(oddKey)); u.Query().Get("key") != oddKey {
		t.Errorf("ProfileURL(%q) = %s does not round-trip", oddKey, web.ProfileURL(oddKey))
	}
}

// TestEveryResponseForbidsInlineScriptsAndSniffing: pages, APIs, static
// files, errors and refusals all carry the policy; nothing grants CORS.
func TestEveryResponseForbidsInlineScriptsAndSniffing(t *testing.T) {
	sc := newScripted(t)
	for _, p := range []string{"/", "/p?key=alice", "/item?value=x", "/api/store", "/api/events?key=alice", "/static/app.js", "/static/style.css", "/p", "/api/events", "/nope"} {
		_, _, resp := sc.get(t, p)
		h := resp.Header
		csp := h.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("%s: Content-Security-Policy %q", p, csp)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("%s: nosniff %q, CORS %q", p, h.Get("X-Content-Type-Options"), h.Get("Access-Control-Allow-Origin"))
		}
	}
	if _, body, _ := sc.get(t, "/static/app.js"); !strings.Contains(body, "textContent") || strings.Contains(body, "innerHTML") {
		t.Error("the script should write text only, never innerHTML")
	}
}

// TestHostileKeysAndDataAreEscapedOnEveryPage: a key and data made of
// markup come out as text in pages and as escaped JSON in APIs.
func TestHostileKeysAndDataAreEscapedOnEveryPage(t *testing.T) {
	sc := newScripted(t)
	for _, p := range []string{
		"/p?" + qs("key", evilKey),
		"/item?" + qs("value", evilValue, "path", "/inventory/*"),
		"/item?" + qs("value", evilKey),
		"/search?" + qs("q", evilKey+"x"),
		"/p?" + qs("key", evilKey+"\xff"), // an invalid key: its error page
		"/api/events?" + qs("key", evilKey),
		"/api/state?" + qs("key", evilKey),
		"/api/event?" + qs("key", evilKey, "seq", "1"),
		"/api/blame?" + qs("key", evilKey, "path", "/note"),
	} {
		_, body, _ := sc.get(t, p)
		for _, raw := range []string{"<script>document", "<img src=x", `onerror="`} {
			if strings.Contains(body, raw) {
				t.Errorf("%s: the answer holds %q unescaped:\n%s", p, raw, body)
			}
		}
	}
	var st investigate.State
	sc.getJSON(t, "/api/state?"+qs("key", evilKey), http.StatusOK, &st)
	var doc player
	if err := json.Unmarshal(st.Data, &doc); err != nil || doc.Note != evilValue {
		t.Errorf("the hostile data did not round-trip as data: %+v %v", doc, err)
	}
	_, body, _ := sc.get(t, "/p?"+qs("key", evilKey))
	if !strings.Contains(body, `data-key="&lt;script&gt;document.title=&#34;pwned-key&#34;&lt;/script&gt;"`) {
		t.Errorf("the profile page does not carry the key as an escaped attribute:\n%s", body)
	}
}

// TestProfileAPIsRoundTripKeysThatNeedEscaping: keys with a slash, a
// percent sign, a question mark, an ampersand, a hash and a non-ASCII
// letter reach their profile through the query.
func TestProfileAPIsRoundTripKeysThatNeedEscaping(t *testing.T) {
	sc := newScripted(t)
	for _, key := range []string{"alice", oddKey, evilKey} {
		if code, body, _ := sc.get(t, web.ProfileURL(key)); code != http.StatusOK {
			t.Errorf("%q: profile page %d: %s", key, code, body)
		}
		var p investigate.Page
		sc.getJSON(t, "/api/events?"+qs("key", key), http.StatusOK, &p)
		if p.Key != key || len(p.Entries) < 2 || p.Entries[0].Type != "session.started" {
			t.Errorf("%q: events page %+v", key, p)
		}
	}
}

// TestEventsAPIPagesALongLogWithoutSplittingGroupCommits: 1,200 events in
// group commits of 100 come in pages of at most 500 (plus the rest of a
// group commit), forward to the end and from the last page back; and the
// blame of the counter they all changed lists only the newest changes.
func TestEventsAPIPagesALongLogWithoutSplittingGroupCommits(t *testing.T) {
	sc := newScripted(t)
	writeLong(t, sc.js, "long", 1200)
	total, pages := 0, 0
	next := "/api/events?" + qs("key", "long", "limit", "500")
	for next != "" {
		var p investigate.Page
		sc.getJSON(t, next, http.StatusOK, &p)
		if len(p.Entries) > 500+99 {
			t.Fatalf("a page of %d events", len(p.Entries))
		}
		if last := p.Entries[len(p.Entries)-1]; p.Next != 0 && last.Index != 99 {
			t.Fatalf("a page ends inside a group commit: seq %d index %d", last.Seq, last.Index)
		}
		total += len(p.Entries)
		pages++
		next = ""
		if p.Next != 0 {
			next = "/api/events?" + qs("key", "long", "limit", "500", "from", strconv.FormatUint(p.Next, 10))
		}
	}
	if total != 1201 || pages != 3 {
		t.Errorf("%d events in %d pages, want 1201 in 3", total, pages)
	}
	// Blame of a field every event changed ships the newest changes only.
	var b struct {
		investigate.BlameResult
		Omitted int `json:"omitted"`
	}
	sc.getJSON(t, "/api/blame?"+qs("key", "long", "path", "/coins"), http.StatusOK, &b)
	if len(b.Changes) != web.MaxBlameChanges || b.Omitted != 1201-web.MaxBlameChanges || string(b.Changes[len(b.Changes)-1].After) != "1200" {
		t.Errorf("blame of a hot field: %d changes (last %s), %d omitted", len(b.Changes), b.Changes[len(b.Changes)-1].After, b.Omitted)
	}
	var last investigate.Page
	sc.getJSON(t, "/api/events?"+qs("key", "long", "limit", "500", "before", "last"), http.StatusOK, &last)
	if len(last.Entries) != 500 || last.Next != 0 || last.Prev == 0 || last.Entries[0].Index != 0 {
		t.Errorf("last page: %d events, next %d, prev %d", len(last.Entries), last.Next, last.Prev)
	}
}

// TestEventAPIShowsOpsWhoWhyAndTheDiff: alice's rollback undid 1,000
// coins; the answer says who and why, and its line diff shows it.
func TestEventAPIShowsOpsWhoWhyAndTheDiff(t *testing.T) {
	sc := newScripted(t)
	var d struct {
		investigate.EventDetail
		Lines []web.DiffLine `json:"lines"`
	}
	sc.getJSON(t, "/api/event?"+qs("key", "alice", "seq", strconv.FormatUint(sc.rollbackSeq, 10)), http.StatusOK, &d)
	if d.Type != "pl.rollback" || d.Meta[profileledger.MetaActor] != "support:ann" || !strings.HasPrefix(d.How, "rollback to version") {
		t.Fatalf("event: %+v", d.EventDetail)
	}
	var minus, plus bool
	for _, l := range d.Lines {
		minus = minus || (l.Op == "-" && strings.Contains(l.Text, `"coins": 1105`))
		plus = plus || (l.Op == "+" && strings.Contains(l.Text, `"coins": 105`))
	}
	if !minus || !plus {
		t.Errorf("diff lines %+v", d.Lines)
	}
}

// TestBlameAndStateAPIsFollowAField: six events changed alice's coins
// (her first session's start set them from the template), and her data at
// the version before the rollback has the bug's coins.
func TestBlameAndStateAPIsFollowAField(t *testing.T) {
	sc := newScripted(t)
	var b investigate.BlameResult
	sc.getJSON(t, "/api/blame?"+qs("key", "alice", "path", "/coins"), http.StatusOK, &b)
	if len(b.Changes) != 6 || b.Changes[5].Type != "pl.rollback" || string(b.Changes[5].After) != "105" || b.Changes[3].Meta["trade"] != sc.trade {
		t.Errorf("blame /coins: %+v", b.Changes)
	}
	var st investigate.State
	sc.getJSON(t, "/api/state?"+qs("key", "alice", "v", strconv.FormatUint(b.Changes[4].Seq, 10)), http.StatusOK, &st)
	var p player
	json.Unmarshal(st.Data, &p)
	if st.Version != b.Changes[4].Seq || p.Coins != 1105 {
		t.Errorf("state at %d: %+v (%s)", b.Changes[4].Seq, st, st.Data)
	}
}

// TestTraceAPIFlagsTheDupeAndItsOrigin: the sword went alice → bob by a
// trade, and carol got a copy: live twice, carol's arrival the origin.
func TestTraceAPIFlagsTheDupeAndItsOrigin(t *testing.T) {
	sc := newScripted(t)
	var tr investigate.TraceResult
	sc.getJSON(t, "/api/trace?"+qs("value", dupedItem, "path", "/inventory/*"), http.StatusOK, &tr)
	o := tr.Origins()
	if !tr.Dupe || tr.Live != 2 || len(tr.Holders) != 3 || len(o) != 1 || o[0].Key != "carol" {
		t.Errorf("trace: %+v, origins %+v", tr, o)
	}
	if code, body, _ := sc.get(t, web.ItemURL(dupedItem, "/inventory/*")); code != http.StatusOK || !strings.Contains(body, `data-value="sword#1"`) {
		t.Errorf("item page %d: %s", code, body)
	}
}

// TestSearchGoesToTheProfileTheUsersProfilesOrTheTrace.
func TestSearchGoesToTheProfileTheUsersProfilesOrTheTrace(t *testing.T) {
	sc := newScripted(t)
	for _, tt := range []struct {
		q, location string
	}{
		{"alice", "/p?key=alice"},
		{dupedItem, web.ItemURL(dupedItem, "")},
		{oddKey, web.ProfileURL(oddKey)},
	} {
		code, _, resp := sc.get(t, "/search?"+qs("q", tt.q))
		if code != http.StatusSeeOther || resp.Header.Get("Location") != tt.location {
			t.Errorf("search %q: %d to %q, want %q", tt.q, code, resp.Header.Get("Location"), tt.location)
		}
	}
	code, body, _ := sc.get(t, "/search?"+qs("q", "roblox:77"))
	if code != http.StatusOK || !strings.Contains(body, `href="/p?key=alice"`) {
		t.Errorf("search by user id: %d\n%s", code, body)
	}
}

// TestATradeIDLinksToEachSide: /p?key=bob&trade=ID goes to bob's event of
// that trade; an unknown trade id is a clear 404.
func TestATradeIDLinksToEachSide(t *testing.T) {
	sc := newScripted(t)
	code, _, resp := sc.get(t, "/p?"+qs("key", "bob", "trade", sc.trade))
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if code != http.StatusSeeOther || loc.Query().Get("key") != "bob" || loc.Query().Get("seq") == "" {
		t.Fatalf("trade link: %d to %s", code, loc)
	}
	var d investigate.EventDetail
	sc.getJSON(t, "/api/event?"+loc.RawQuery, http.StatusOK, &d)
	if d.Meta["trade"] != sc.trade || d.Meta["with"] != "alice" {
		t.Errorf("bob's side: %+v", d)
	}
	if code, body, _ := sc.get(t, "/p?"+qs("key", "bob", "trade", "nope")); code != http.StatusNotFound || !strings.Contains(body, "no event of trade") {
		t.Errorf("unknown trade: %d %s", code, body)
	}
}

// TestBadInputIsAClearErrorNamingWhatWasWrong.
func TestBadInputIsAClearErrorNamingWhatWasWrong(t *testing.T) {
	sc := newScripted(t)
	for _, tt := range []struct {
		path string
		code int
		says string
	}{
		{"/api/events", 400, "?key= is missing"},
		{"/api/events?" + qs("key", ""), 400, "key"},
		{"/api/events?" + qs("key", "alice", "limit", "abc"), 400, `?limit=\"abc\" is not a whole number`},
		{"/api/events?" + qs("key", "alice", "limit", "99999"), 400, "page limit"},
		{"/api/events?" + qs("key", "alice", "from", "3", "before", "9"), 400, "not both"},
		{"/api/events?" + qs("key", strings.Repeat("k", 5000)), 400, "key"},
		{"/api/event?" + qs("key", "alice"), 400, "?seq= is missing"},
		{"/api/event?" + qs("key", "alice", "seq", "999999"), 404, "no event at sequence 999999"},
		{"/api/state?" + qs("key", "alice", "v", "yesterday"), 400, "neither a version"},
		{"/api/state?" + qs("key", "nobody"), 404, "no event at or before"},
		{"/api/blame?" + qs("key", "alice", "path", "coins"), 400, "starts with /"},
		{"/api/trace?" + qs("value", "x", "path", "inventory"), 400, "does not start with /"},
		{"/api/trace", 400, "?value= is missing"},
		{"/api/live?" + qs("key", "alice", "from", "x"), 400, "?from="},
		{"/p", 400, "needs ?key="},
		{"/p?" + qs("key", "\xff"), 400, "key"},
		{"/item", 400, "needs ?value="},
		{"/item?" + qs("value", "x", "path", "bad"), 400, "does not start with /"},
	} {
		code, body, _ := sc.get(t, tt.path)
		if code != tt.code || !strings.Contains(body, tt.says) {
			t.Errorf("GET %s = %d %q, want %d saying %q", tt.path, code, body, tt.code, tt.says)
		}
	}
}

// TestTheServerIsReadOnlyAndTheAuditNeedsThePagesToken: no method but GET
// writes anything; the audit's POST needs the page's CSRF token and the
// same origin, and then runs and is shown; the stream holds exactly the
// messages it held before.
func TestTheServerIsReadOnlyAndTheAuditNeedsThePagesToken(t *testing.T) {
	sc := newScripted(t)
	before, err := investigate.Stats(t.Context(), sc.js, storeName)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{http.MethodPut, http.MethodDelete, http.MethodPatch} {
		if code, _, _ := sc.do(t, m, "/api/events?key=alice", nil); code != http.StatusMethodNotAllowed {
			t.Errorf("%s = %d, want 405", m, code)
		}
	}
	if code, _, _ := sc.do(t, http.MethodPost, "/api/events?key=alice", nil); code != http.StatusMethodNotAllowed {
		t.Errorf("POST to a GET API = %d, want 405", code)
	}
	var last struct {
		Last    *web.AuditResult `json:"last"`
		Running bool             `json:"running"`
	}
	sc.getJSON(t, "/api/audit", http.StatusOK, &last)
	if last.Last != nil || last.Running {
		t.Errorf("before any audit: %+v", last)
	}
	if code, body, _ := sc.do(t, http.MethodPost, "/api/audit", nil); code != http.StatusForbidden || !strings.Contains(body, web.CSRFHeader) {
		t.Errorf("audit without the token = %d %s", code, body)
	}
	_, page, _ := sc.get(t, "/")
	i := strings.Index(page, `<meta name="csrf" content="`)
	token := page[i+len(`<meta name="csrf" content="`):]
	token = token[:strings.IndexByte(token, '"')]
	hdr := http.Header{web.CSRFHeader: {token}, "Origin": {"http://evil.example"}}
	if code, _, _ := sc.do(t, http.MethodPost, "/api/audit", hdr); code != http.StatusForbidden {
		t.Errorf("audit from another origin = %d, want 403", code)
	}
	hdr.Set("Origin", sc.http.URL)
	code, body, _ := sc.do(t, http.MethodPost, "/api/audit", hdr)
	if code != http.StatusOK || !strings.Contains(body, `"violations":[]`) {
		t.Fatalf("audit = %d %s", code, body)
	}
	sc.getJSON(t, "/api/audit", http.StatusOK, &last)
	if last.Last == nil || last.Last.Report == nil || !last.Last.Report.Clean() || last.Last.Report.Profiles != 5 {
		t.Errorf("after the audit: %+v", last.Last)
	}
	if _, page, _ := sc.get(t, "/"); !strings.Contains(page, `<p class="ok" id="audit-summary">clean:`) {
		t.Errorf("the store page does not show the clean audit:\n%s", page)
	}
	after, err := investigate.Stats(t.Context(), sc.js, storeName)
	if err != nil {
		t.Fatal(err)
	}
	if after.StreamMessages != before.StreamMessages || after.LastSeq != before.LastSeq {
		t.Errorf("the stream changed: %+v, then %+v", before, after)
	}
}

// TestOnlyLoopbackHostNamesAreAnswered: a request for another host name
// (DNS rebinding) is refused unless the server was told it is remote.
func TestOnlyLoopbackHostNamesAreAnswered(t *testing.T) {
	sc := newScripted(t)
	for host, want := range map[string]int{"evil.example": 421, "evil.example:80": 421, "localhost:9": 200, "127.0.0.1": 200, "[::1]:9": 200} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, sc.http.URL+"/api/store", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %s: %d, want %d", host, resp.StatusCode, want)
		}
	}
}

// TestTokenAndBasicAuthGuardEveryRequest.
func TestTokenAndBasicAuthGuardEveryRequest(t *testing.T) {
	sc := newScripted(t, func(c *web.Config) { c.Auth = web.Auth{Token: "s3cret", User: "ann", Password: "pw"} })
	for _, p := range []string{"/", "/api/store", "/static/app.js", "/p?key=alice"} {
		if code, _, resp := sc.get(t, p); code != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s without credentials = %d", p, code)
		}
	}
	if code, _, _ := sc.do(t, http.MethodGet, "/api/store", http.Header{"Authorization": {"Bearer wrong"}}); code != http.StatusUnauthorized {
		t.Errorf("a wrong token = %d", code)
	}
	if code, _, _ := sc.do(t, http.MethodGet, "/api/store", http.Header{"Authorization": {"Bearer s3cret"}}); code != http.StatusOK {
		t.Errorf("the token = %d", code)
	}
	code, _, resp := sc.get(t, "/p?key=alice&token=s3cret")
	if code != http.StatusSeeOther || resp.Header.Get("Location") != "/p?key=alice" || len(resp.Cookies()) != 1 || !resp.Cookies()[0].HttpOnly {
		t.Fatalf("?token= = %d to %q, cookies %v", code, resp.Header.Get("Location"), resp.Cookies())
	}
	c := resp.Cookies()[0]
	if code, _, _ := sc.do(t, http.MethodGet, "/api/store", http.Header{"Cookie": {c.Name + "=" + c.Value}}); code != http.StatusOK {
		t.Errorf("the cookie = %d", code)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, sc.http.URL+"/api/store", nil)
	req.SetBasicAuth("ann", "pw")
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != http.StatusOK {
		t.Errorf("basic auth = %d", r2.StatusCode)
	}
}

func TestCheckListenRefusesOtherMachinesWithoutTheFlagAndAuth(t *testing.T) {
	tok := web.Auth{Token: "t"}
	for _, tt := range []struct {
		addr   string
		remote bool
		auth   web.Auth
		ok     bool
	}{
		{"127.0.0.1:8428", false, web.Auth{}, true},
		{"localhost:0", false, web.Auth{}, true},
		{"[::1]:8428", false, web.Auth{}, true},
		{"0.0.0.0:8428", false, tok, false},
		{":8428", true, web.Auth{}, false},
		{"0.0.0.0:8428", true, web.Auth{}, false},
		{"0.0.0.0:8428", true, tok, true},
		{"0.0.0.0:8428", true, web.Auth{User: "u", Password: "p"}, true},
		{"127.0.0.1:8428", false, web.Auth{User: "u"}, false},
		{"nonsense", false, web.Auth{}, false},
	} {
		err := web.CheckListen(tt.addr, tt.remote, tt.auth)
		if (err == nil) != tt.ok {
			t.Errorf("CheckListen(%q, %v, %+v) = %v", tt.addr, tt.remote, tt.auth, err)
		}
	}
}

// TestLiveModeStreamsNewEventsAsTheyAreAppended.
func TestLiveModeStreamsNewEventsAsTheyAreAppended(t *testing.T) {
	sc := newScripted(t)
	v, err := sc.st.Get(t.Context(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if v.Version == 0 {
		t.Fatal("alice has no events")
	}
	// Without ?from= it starts after the last event: the old ones never come.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, sc.http.URL+"/api/live?"+qs("key", "alice"), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("Content-Type %q", resp.Header.Get("Content-Type"))
	}
	s, err := sc.st.StartSession(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(ctx, "live.loot", profileledger.Inc("/coins", 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.End(ctx); err != nil {
		t.Fatal(err)
	}
	var types []string
	sr := bufio.NewScanner(resp.Body)
	for sr.Scan() && len(types) < 3 {
		if data, ok := strings.CutPrefix(sr.Text(), "data: "); ok {
			var e investigate.Entry
			if err := json.Unmarshal([]byte(data), &e); err != nil {
				t.Fatal(err)
			}
			types = append(types, e.Type)
		}
	}
	if strings.Join(types, " ") != "session.started live.loot session.ended" {
		t.Errorf("live events %v", types)
	}
}

func TestLineDiffMarksWhatChanged(t *testing.T) {
	got := web.LineDiff(json.RawMessage(`{"a":1,"b":[1,2],"c":"x"}`), json.RawMessage(`{"a":1,"b":[1,3],"c":"x"}`))
	var b strings.Builder
	for _, l := range got {
		b.WriteString(l.Op + l.Text + "\n")
	}
	want := " {\n   \"a\": 1,\n   \"b\": [\n     1,\n-    2\n+    3\n   ],\n   \"c\": \"x\"\n }\n"
	if b.String() != want {
		t.Errorf("LineDiff:\n%s\nwant\n%s", b.String(), want)
	}
	if got := web.LineDiff(json.RawMessage("null"), json.RawMessage(`{"a":1}`)); len(got) != 3 || got[0].Op != "+" {
		t.Errorf("from nothing: %+v", got)
	}
}

// TestRunServesUntilItsContextEnds: Run on a real listener answers, and
// returns when ctx ends.
func TestRunServesUntilItsContextEnds(t *testing.T) {
	sc := newScripted(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- web.Run(ctx, l, sc.srv) }()
	resp, err := http.Get("http://" + l.Addr().String() + "/api/store")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /api/store = %d", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
	if got := web.BaseURL(l.Addr(), web.Auth{Token: "a b"}); got != "http://"+l.Addr().String()+"/?token=a+b" {
		t.Errorf("BaseURL = %s", got)
	}
}
