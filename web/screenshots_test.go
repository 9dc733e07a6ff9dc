package web_test

import (
	"context"
	"encoding/json"
	"flag"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/internal/demorun"
	"github.com/profileledger/profileledger/internal/embedded"
	"github.com/profileledger/profileledger/investigate"
	"github.com/profileledger/profileledger/web"
)

var docs = flag.String("docs", "", "run the demo and save screenshots of its store's three pages (store.png, profile.png, item.png) in this `directory`")

// TestScreenshotsOfTheDemosStore makes the README's screenshots: it runs
// the demo (a short one, with a fixed seed) keeping its NATS data, serves
// its store on an embedded server, and photographs the store page, the
// profile with the most trades (its first trade open, its gold blamed)
// and the page of a gem that changed hands most. It runs only with -docs:
//
//	go test ./web -run TestScreenshotsOfTheDemosStore -args -docs "$PWD/docs"
func TestScreenshotsOfTheDemosStore(t *testing.T) {
	if *docs == "" {
		t.Skip("makes the README's screenshots only with -docs DIR")
	}
	if err := os.MkdirAll(*docs, 0o755); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t)
	dir := t.TempDir()
	sum, err := demorun.Run(t.Context(), demorun.Config{Servers: 3, Players: 12, Duration: 6 * time.Second, LeaseTTL: time.Second,
		Seed: 7, Steal: 0.1, Crash: true, Keep: dir})
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Pass {
		t.Fatalf("the demo's checks failed: %+v", sum)
	}
	ns, err := embedded.Start(embedded.Config{Host: "127.0.0.1", Port: server.RANDOM_PORT, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { embedded.Stop(ns) })
	nc, err := nats.Connect(embedded.URL(ns))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	st, err := profileledger.Open(ctx, js, demorun.StoreName, map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close(context.Background()) })
	srv, err := web.New(web.Config{Store: demorun.StoreName, JS: js, Source: investigate.FromStore(st)})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)

	// The profile with the most trades, its first trade, and the gem
	// that changed hands most.
	var best string
	var bestTrades []investigate.Entry
	gemMoves := map[string]int{}
	for key, err := range st.Keys(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		var trades []investigate.Entry
		for e, err := range investigate.Log(ctx, st, key, investigate.LogFilter{}) {
			if err != nil {
				t.Fatal(err)
			}
			if e.Meta["trade"] == "" {
				continue
			}
			trades = append(trades, e)
			for _, o := range e.Ops {
				var gem string
				if strings.HasPrefix(o.Path, "/gems/") && json.Unmarshal(o.Value, &gem) == nil && gem != "" {
					gemMoves[gem]++
				}
			}
		}
		if len(trades) > len(bestTrades) {
			best, bestTrades = key, trades
		}
	}
	if len(bestTrades) == 0 {
		t.Fatal("the demo made no trade")
	}
	gem, most := "", 0
	for g, n := range gemMoves {
		if n > most || n == most && g < gem {
			gem, most = g, n
		}
	}
	t.Logf("profile %s (%d trades), gem %s (%d arrivals by trade)", best, len(bestTrades), gem, most)

	b.run("store page", chromedp.Navigate(hs.URL+"/"), click("#run-audit"), visible("#audit-summary.ok"))
	b.screenshot("store.png", *docs)
	first := bestTrades[0]
	b.run("profile page", chromedp.Navigate(hs.URL+web.EventURL(best, first.Seq, first.Index)), visible("#diff"),
		visible(`#data .field[data-path="/gold"]`), click(`#data .field[data-path="/gold"]`), visible("#blame-changes"))
	b.screenshot("profile.png", *docs)
	b.run("item page", chromedp.Navigate(hs.URL+web.ItemURL(gem, "/gems/*")), visible("#graph [data-move]"))
	if got := b.count("#moves tbody tr"); got < 2 {
		t.Errorf("the gem's trace has %d moves", got)
	}
	t.Logf("screenshots of store %s in %s (demo seed %s)", demorun.StoreName, *docs, strconv.FormatUint(7, 10))
	b.screenshot("item.png", *docs)
}
