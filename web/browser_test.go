package web_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/web"
)

// The browser tests drive headless Chromium (Debian's chromium package)
// through the DevTools protocol. Without Chromium they skip, unless
// PL_REQUIRE_BROWSER=1 (CI sets it): then they fail.

var shots = flag.String("shots", "", "also save the browser tests' screenshots in this `directory`")

// findChromium returns the path of a Chromium or Chrome binary, or "".
func findChromium() string {
	if p := os.Getenv("PL_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// browser is a headless Chromium with a fresh profile, whose page errors
// (an exception, a console error, a blocked script) fail the test.
type browser struct {
	t    *testing.T
	ctx  context.Context
	dir  string // screenshots
	mu   sync.Mutex
	errs []string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	path := findChromium()
	if path == "" {
		if os.Getenv("PL_REQUIRE_BROWSER") == "1" {
			t.Fatal("no chromium, chromium-browser or google-chrome on PATH, and PL_REQUIRE_BROWSER=1: install Debian's chromium package (.ci/run does)")
		}
		t.Skip("no Chromium on PATH (apt-get install chromium); set PL_REQUIRE_BROWSER=1 to make this a failure")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1440, 1000),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	b := &browser{t: t, ctx: ctx, dir: t.TempDir()}
	// Start the browser, then collect what the pages report: exceptions,
	// console errors, and the browser's own errors (a script the policy
	// blocked, a failed request).
	if err := chromedp.Do(ctx); err != nil {
		cancelCtx()
		cancelAlloc()
		t.Fatalf("start %s: %v", path, err)
	}
	messages := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == "error" {
				b.mu.Lock()
				b.errs = append(b.errs, m.String())
				b.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
		<-done
	})
	return b
}

// run runs steps, failing the test on an error or a page error; each
// call is bounded.
func (b *browser) run(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	b.check(what)
}

// check fails the test if a page reported an error.
func (b *browser) check(what string) {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.errs) > 0 {
		b.t.Fatalf("%s: the page reported errors: %s", what, strings.Join(b.errs, "; "))
	}
}

// value runs one action and returns its value.
func value[T any](b *browser, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	b.check(what)
	return v
}

// text returns the text of the first element sel matches.
func (b *browser) text(sel string) string {
	b.t.Helper()
	return value(b, "read "+sel, chromedp.TextContent(chromedp.CSS(sel)))
}

// count returns how many elements match sel.
func (b *browser) count(sel string) int {
	b.t.Helper()
	return value(b, "count "+sel, chromedp.Evaluate[int](fmt.Sprintf("document.querySelectorAll(%q).length", sel)))
}

// location returns the page's URL.
func (b *browser) location() string {
	b.t.Helper()
	return value(b, "location", chromedp.Location())
}

// until waits for a JavaScript condition.
func until(expr string) chromedp.Action[chromedp.Void] {
	poll := chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(20*time.Second))
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := poll(ctx, t)
		return chromedp.Void{}, err
	}
}

// visible waits for an element that matches the CSS selector sel.
func visible(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.WaitVisible(chromedp.CSS(sel))
}

// click clicks the element that matches the CSS selector sel.
func click(sel string) chromedp.Action[chromedp.Void] { return chromedp.Click(chromedp.CSS(sel)) }

// screenshot saves the whole page as name in the test's directory (and
// to also, if set) and logs the path.
func (b *browser) screenshot(name, also string) {
	b.t.Helper()
	png := value(b, "screenshot "+name, chromedp.FullScreenshot(100))
	for _, dir := range []string{b.dir, also} {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, png, 0o644); err != nil {
			b.t.Fatal(err)
		}
		b.t.Logf("screenshot: %s", p)
	}
}

// TestInABrowserTheInvestigatorClicksThroughEveryPage loads each page of
// the scripted store in Chromium and clicks through: search → profile
// timeline → an event → its diff → blame of a field → the version slider
// → live mode; a hostile profile whose key and data are markup; and the
// item's graph with its dupe in red → an event of the trace.
func TestInABrowserTheInvestigatorClicksThroughEveryPage(t *testing.T) {
	b := newBrowser(t)
	sc := newScripted(t)
	base := sc.http.URL

	// The store page.
	b.run("open the store page", chromedp.Navigate(base+"/"), visible("#profiles"))
	if got := b.text("#profiles"); got != "5" {
		t.Errorf("the store page counts %s profiles, want 5", got)
	}
	b.run("run the audit", click("#run-audit"), visible("p.ok#audit-summary"))
	if got := b.text("#audit-summary"); !strings.HasPrefix(strings.TrimSpace(got), "clean") {
		t.Errorf("audit summary %q", got)
	}
	b.screenshot("store.png", *shots)

	// Search a key: its profile page, its timeline.
	b.run("search alice", chromedp.SetValue(chromedp.CSS("#q"), "alice"), chromedp.Submit(chromedp.CSS("#q")), visible("#timeline[data-drawn]"))
	if loc := b.location(); !strings.HasSuffix(loc, "/p?key=alice") {
		t.Errorf("search went to %s", loc)
	}
	events := 0
	for range sc.st.History(t.Context(), "alice") {
		events++
	}
	if n := b.count("#timeline .ev"); n != events {
		t.Errorf("the timeline marks %d events, want %d", n, events)
	}
	for _, kind := range []string{"trade", "message", "rollback", "session"} {
		if b.count("#timeline .ev."+kind) == 0 {
			t.Errorf("the timeline marks no %s", kind)
		}
	}
	if b.count("#timeline rect.band") == 0 {
		t.Error("the timeline draws no session band")
	}

	// Timeline → event → diff.
	b.run("click the rollback", click("#timeline .ev.rollback"), visible("#diff"))
	if f := b.text("#event-fields"); !strings.Contains(f, "support:ann") || !strings.Contains(f, "coins bug") {
		t.Errorf("the event's who and why: %q", f)
	}
	if del, add := b.text("#diff .del"), b.text("#diff .add"); !strings.Contains(del, `"coins": 1105`) || !strings.Contains(add, `"coins": 105`) {
		t.Errorf("the diff: removed %q, added %q", del, add)
	}
	if loc := b.location(); !strings.Contains(loc, "seq="+strconv.FormatUint(sc.rollbackSeq, 10)) {
		t.Errorf("the selected event is not in the URL: %s", loc)
	}

	// Diff → blame of a field of the data.
	b.run("blame /coins", visible(`#data .field[data-path="/coins"]`), click(`#data .field[data-path="/coins"]`), visible("#blame-changes"))
	if n := b.count("#blame-changes tr"); n != 1+6 {
		t.Errorf("blame of /coins lists %d rows, want a header and 6 changes", n)
	}

	// The version slider spans the whole history: at its start, the data
	// of the first event; just before the rollback, the bug's coins.
	slideTo := func(v string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Evaluate[bool](`(() => { const s = document.getElementById("slider"); s.value = `+v+`; s.dispatchEvent(new Event("input")); return true; })()`)(ctx, tg)
			return err
		})
	}
	b.run("slide to the start", slideTo("document.getElementById(\"slider\").min"),
		until(`document.getElementById("state-label").textContent.startsWith("as of version 1 ")`))
	if got := b.text(`#data .field[data-path="/coins"]`); got != "coins: 0" {
		t.Errorf("coins at the start: %q", got)
	}
	before := strconv.FormatUint(sc.rollbackSeq-1, 10)
	b.run("slide to before the rollback", slideTo(before),
		until(`document.getElementById("state-label").textContent.startsWith("as of version `+before+` ")`))
	if got := b.text(`#data .field[data-path="/coins"]`); got != "coins: 1105" {
		t.Errorf("coins just before the rollback: %q", got)
	}
	b.screenshot("profile.png", *shots)

	// Live mode: an event appended now appears without a reload.
	b.run("live mode", click("#live"), chromedp.Sleep(200*time.Millisecond)) // the EventSource connects
	s, err := sc.st.StartSession(t.Context(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	ctx := profileledger.WithMeta(t.Context(), map[string]string{profileledger.MetaActor: "live-test"})
	if err := s.Apply(ctx, "live.loot", profileledger.Inc("/coins", 1)); err != nil {
		t.Fatal(err)
	}
	b.run("see the live event", until(`[...document.querySelectorAll("#events td")].some(td => td.textContent === "live.loot")`))
	if err := s.End(t.Context()); err != nil {
		t.Fatal(err)
	}

	// A hostile profile: markup in the key and the data stays text.
	b.run("open the hostile profile", chromedp.Navigate(base+web.ProfileURL(evilKey)), visible("#timeline[data-drawn]"),
		visible(`#data .field[data-path="/note"]`), chromedp.Sleep(200*time.Millisecond))
	if title := value(b, "title", chromedp.Title()); title == "pwned-key" || title == "pwned-data" {
		t.Fatalf("a hostile string ran as script: the title is %q", title)
	}
	if got := b.text("#key"); got != evilKey {
		t.Errorf("the key shows as %q, want the text %q", got, evilKey)
	}
	if b.count("#app img, #app script") != 0 {
		t.Error("hostile data became elements")
	}
	if got := b.text(`#data .field[data-path="/note"] .val`); got != strconv.Quote(evilValue) {
		t.Errorf("the hostile data shows as %q, want %q", got, strconv.Quote(evilValue))
	}

	// The item's page: the graph, the dupe in red, and on to an event.
	b.run("open the item", chromedp.Navigate(base+web.ItemURL(dupedItem, "/inventory/*")), visible("#graph [data-move]"))
	if v := b.text("#verdict"); !strings.HasPrefix(v, "DUPE: live 2 time(s)") {
		t.Errorf("verdict %q", v)
	}
	if n := b.count("#graph rect.node.red"); n != 2 {
		t.Errorf("%d profiles in red, want 2 (bob and carol)", n)
	}
	if n := b.count("#graph line.edge.red"); n != 1 {
		t.Errorf("%d moves in red, want 1 (carol's copy)", n)
	}
	if got := b.text("#moves tr.dupe td:nth-child(3)"); got != "carol" {
		t.Errorf("the duplicating move is %q's, want carol's", got)
	}
	b.screenshot("item.png", *shots)
	b.run("follow the dupe's event", click("#moves tr.dupe td:nth-child(6) a"), visible("#diff"))
	if h := b.text("#event h2"); !strings.Contains(h, "loot") {
		t.Errorf("the dupe's event: %q", h)
	}
	if got := b.text("#key"); got != "carol" {
		t.Errorf("the dupe's event is on %q's page", got)
	}
}

// TestInABrowserALongProfilesTimelinePaintsItsFirstPage: a profile of
// 10,000 events (100,000 with PL_BROWSER_100K=1, not in -short) opens on
// its last page; the test logs the time to the timeline's first paint,
// as the page measured it (performance.mark after the frame). No
// threshold: the figure is reported.
func TestInABrowserALongProfilesTimelinePaintsItsFirstPage(t *testing.T) {
	b := newBrowser(t)
	sc := newScripted(t)
	n := 10_000
	if os.Getenv("PL_BROWSER_100K") == "1" && !testing.Short() {
		n = 100_000
	}
	start := time.Now()
	writeLong(t, sc.js, "long", n)
	// A session's start and end: the profile gets its snapshot, as a
	// profile in use has.
	s, err := sc.st.StartSession(t.Context(), "long")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.End(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Logf("set-up: %d events written and snapshotted in %v", n, time.Since(start).Round(time.Millisecond))
	b.run("open the long profile", chromedp.Navigate(sc.http.URL+web.ProfileURL("long")), visible("#timeline[data-drawn]"),
		until(`performance.getEntriesByName("timeline-painted").length > 0`))
	paint := value(b, "paint time", chromedp.Evaluate[float64](`performance.getEntriesByName("timeline-painted")[0].startTime`))
	html := value(b, "page time", chromedp.Evaluate[float64](`performance.getEntriesByType("navigation")[0].responseEnd`))
	drawn := b.count("#timeline .ev")
	if drawn < 500 || drawn > 600 {
		t.Errorf("the timeline drew %d events, want one page (500, and the rest of a group commit)", drawn)
	}
	t.Logf("%d-event profile: timeline first painted %.0f ms after navigation start (page HTML received at %.0f ms); %d events drawn", n+3, paint, html, drawn)
	first := b.text("#range")
	b.run("an older page", click("#prev"), until(fmt.Sprintf(`document.getElementById("range").textContent !== %q`, first)))
	if rows := b.count("#events tbody tr"); rows < 500 || rows > 600 {
		t.Errorf("an older page has %d rows", rows)
	}
}
