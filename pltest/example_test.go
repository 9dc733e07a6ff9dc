package pltest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/pltest"
)

// Player is the profile type of the examples.
type Player struct {
	Coins     int      `json:"coins"`
	Inventory []string `json:"inventory"`
	Receipts  []string `json:"receipts"` // purchases already made, by receipt id
}

func newPlayer() Player { return Player{Coins: 100, Inventory: []string{}, Receipts: []string{}} }

// buy is a purchase as a game server runs it: idempotent by its receipt
// id, so that the player's client may send it again, to whichever server
// holds the player now. A purchase already made changes nothing.
func buy(receipt, item string, price int) func(*Player) error {
	return func(p *Player) error {
		if slices.Contains(p.Receipts, receipt) {
			return nil
		}
		if p.Coins < price {
			return errors.New("not enough coins")
		}
		p.Coins -= price
		p.Inventory = append(p.Inventory, item)
		p.Receipts = append(p.Receipts, receipt)
		return nil
	}
}

func reward(p *Player) error { p.Coins += 50; return nil }

// Example_playerHopsServersMidPurchase is a test a game developer would
// write: a player hops servers in the middle of a purchase whose
// acknowledgement is lost, the client sends the purchase again to the new
// server, and the purchase lands exactly once.
func Example_playerHopsServersMidPurchase() {
	t := newExampleT() // in a test: the *testing.T it is given
	defer t.done()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	srv := pltest.Run(t)
	proxy := pltest.Proxy(t, srv.URL()) // game server A reaches NATS through it
	ttl := profileledger.WithLeaseTTL(time.Second)
	a := pltest.OpenStore(t, proxy.URL(), newPlayer(), ttl, profileledger.WithNode("A"))
	b := pltest.OpenStore(t, srv.URL(), newPlayer(), ttl, profileledger.WithNode("B"))

	onA, err := a.StartSession(ctx, "user:42")
	if err != nil {
		t.Fatal(err)
	}
	// The purchase reaches NATS, but its acknowledgement is lost on the
	// way back to A.
	dropped := proxy.DropNextReply("pl." + pltest.StoreName + ".ev.>")
	purchase := make(chan error, 1)
	go func() { purchase <- onA.Mutate(ctx, "shop.bought", buy("receipt-1", "sword", 30)) }()
	<-dropped

	// Mid-purchase, the player hops to server B, which takes the profile
	// over; the client sends the purchase again, now to B.
	onB, err := b.StartSession(ctx, "user:42")
	if err != nil {
		t.Fatal(err)
	}
	errA := <-purchase // nil or ErrUncertain: A cannot be sure, so the client retries
	if err := onB.Mutate(ctx, "shop.bought", buy("receipt-1", "sword", 30)); err != nil {
		t.Fatal(err)
	}
	fmt.Println("on A the purchase was", pltest.OutcomeOf(errA) != pltest.Rejected)
	fmt.Println(onB.Data().Inventory, onB.Data().Coins)
	if err := onB.End(ctx); err != nil {
		t.Fatal(err)
	}
	pltest.Audit(t, pltest.Connect(t, srv.URL()), pltest.StoreName) // and the log keeps its invariants
	// Output:
	// on A the purchase was true
	// [sword] 70
}

func ExampleRun() {
	t := newExampleT() // in a test: the *testing.T it is given
	defer t.done()
	ctx := context.Background()

	srv := pltest.Run(t, pltest.SyncAlways())
	st := pltest.OpenStore(t, srv.URL(), newPlayer())
	if err := questCompleted(t, st).End(ctx); err != nil {
		t.Fatal(err)
	}

	srv.Restart() // same port, same store directory
	again := pltest.OpenStore(t, srv.URL(), newPlayer())
	v, err := again.Get(ctx, "user:42")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println(v.Data.Coins)
	// Output: 150
}

func ExampleServer_Kill() {
	t := newExampleT()
	defer t.done()
	ctx := context.Background()

	srv := pltest.Run(t)
	st := pltest.OpenStore(t, srv.URL(), newPlayer())
	questCompleted(t, st) // user:42's session, 50 coins richer

	srv.Kill() // connections reset, store directory as a killed process leaves it
	srv.Start()
	after := pltest.OpenStore(t, srv.URL(), newPlayer())
	v, err := after.Get(ctx, "user:42")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("acknowledged before the crash:", v.Data.Coins)
	// Output: acknowledged before the crash: 150
}

func ExampleRunCluster() {
	t := newExampleT()
	defer t.done()
	ctx := context.Background()

	c := pltest.RunCluster(t, 3)
	st := pltest.OpenStore(t, c.URLs(), newPlayer(), profileledger.WithReplicas(3))
	s, err := st.StartSession(ctx, "user:42")
	if err != nil {
		t.Fatal(err)
	}
	leader := c.StreamLeader("PL_" + pltest.StoreName)
	var follower *pltest.Server
	for _, m := range c.Servers() {
		if m != leader {
			follower = m
		}
	}
	follower.Kill() // a replica crashes: the other two are still a majority
	if err := s.Mutate(ctx, "quest.completed", reward); err != nil {
		t.Fatal(err)
	}
	follower.Start() // it catches up with the stream
	c.WaitReady()
	fmt.Println(s.Data().Coins, len(c.Servers()))
	// Output: 150 3
}

func ExampleConnect() {
	t := newExampleT()
	defer t.done()
	ctx := context.Background()

	srv := pltest.Run(t)
	js := pltest.Connect(t, srv.URL()) // closed at cleanup
	st, err := profileledger.Open(ctx, js, "players", newPlayer())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(ctx)
	stream, err := js.Stream(ctx, "PL_players")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println(stream.CachedInfo().Config.Subjects)
	// Output: [pl.players.ev.> pl.players.msg.>]
}

func ExampleStore() {
	t := newExampleT()
	defer t.done()
	ctx := context.Background()

	st := pltest.Store(t, newPlayer()) // a fresh server, an open Store; audited at cleanup
	s, err := st.StartSession(ctx, "user:42")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Mutate(ctx, "shop.bought", buy("receipt-1", "sword", 30)); err != nil {
		t.Fatal(err)
	}
	fmt.Println(s.Data().Inventory, s.Data().Coins)
	// Output: [sword] 70
}

func ExampleOpenStore() {
	t := newExampleT()
	defer t.done()
	ctx := context.Background()

	srv := pltest.Run(t)
	a := pltest.OpenStore(t, srv.URL(), newPlayer(), profileledger.WithNode("A")) // two game servers
	b := pltest.OpenStore(t, srv.URL(), newPlayer(), profileledger.WithNode("B"))
	onA, err := a.StartSession(ctx, "user:42")
	if err != nil {
		t.Fatal(err)
	}
	if err := onA.Mutate(ctx, "quest.completed", reward); err != nil {
		t.Fatal(err)
	}
	onB, err := b.StartSession(ctx, "user:42") // A hands the profile over
	if err != nil {
		t.Fatal(err)
	}
	<-onA.Done()
	fmt.Println(onB.Data().Coins, errors.Is(onA.Err(), profileledger.ErrSessionEnded))
	// Output: 150 true
}

// ExampleProxy freezes a game server past its lease, as a long GC pause
// would: another server takes the profile over, and the frozen server's
// write, delivered when it thaws, is refused by the log.
func ExampleProxy() {
	t := newExampleT()
	defer t.done()
	ctx := context.Background()

	srv := pltest.Run(t)
	proxy := pltest.Proxy(t, srv.URL())
	ttl := profileledger.WithLeaseTTL(time.Second)
	frozen := pltest.OpenStore(t, proxy.URL(), newPlayer(), ttl)
	other := pltest.OpenStore(t, srv.URL(), newPlayer(), ttl)
	s, err := frozen.StartSession(ctx, "user:42")
	if err != nil {
		t.Fatal(err)
	}

	proxy.Freeze()
	late := make(chan error, 1)
	go func() {
		mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		late <- s.Mutate(mctx, "quest.completed", reward) // held in the proxy
	}()
	s2, err := other.StartSession(ctx, "user:42") // no answer from the holder: waits for its lease
	if err != nil {
		t.Fatal(err)
	}
	proxy.Thaw()
	err = <-late
	fmt.Println(errors.Is(err, profileledger.ErrSessionLost), s2.Data().Coins)
	// Output: true 100
}

func ExampleAudit() {
	t := newExampleT()
	defer t.done()

	url := questPlayed(t) // a server where user:42 completed a quest, then ended its session

	// Audit fails t on any violation.
	rep := pltest.Audit(t, pltest.Connect(t, url), pltest.StoreName)
	fmt.Println(rep.Profiles, rep.Events, len(rep.Violations))
	// Output: 1 3 0
}

func ExampleReadLog() {
	t := newExampleT()
	defer t.done()

	url := questPlayed(t) // a server where user:42 completed a quest, then ended its session
	for _, r := range pltest.ReadLog(t, pltest.Connect(t, url), pltest.StoreName, "user:42") {
		fmt.Println(r.Seq, r.Event.Type)
	}
	// Output:
	// 1 session.started
	// 2 quest.completed
	// 3 session.ended
}

func ExampleWorkload() {
	t := newExampleT()
	defer t.done()

	rep := pltest.Workload[Player]{
		Template: newPlayer(),
		Mutations: []pltest.Mutation[Player]{
			{Name: "quest.completed", Fn: reward},
			{Name: "shop.bought", Fn: func(p *Player) error {
				return buy(fmt.Sprintf("receipt-%d", len(p.Receipts)), "sword", 30)(p)
			}},
		},
		Trades: []pltest.Trade[Player]{{Name: "trade.coins", Fn: func(a, b *Player) error {
			a.Coins, b.Coins = a.Coins-10, b.Coins+10
			return nil
		}}},
		Calls: 50,
	}.Run(t) // fails t if an acknowledged call is not in the log exactly once, and more
	fmt.Println(rep.Calls, rep.Acknowledged > 0)
	// Output: 50 true
}

func ExampleOutcomeOf() {
	fmt.Println(pltest.OutcomeOf(nil))
	fmt.Println(pltest.OutcomeOf(fmt.Errorf("mutate: %w", profileledger.ErrSessionLost)))
	fmt.Println(pltest.OutcomeOf(profileledger.ErrUncertain))
	// Output:
	// acknowledged
	// rejected
	// uncertain
}

// questCompleted starts a session of "user:42" on st and completes a
// quest in it: 50 coins.
func questCompleted(t testing.TB, st *profileledger.Store[Player]) *profileledger.Session[Player] {
	t.Helper()
	ctx := context.Background()
	s, err := st.StartSession(ctx, "user:42")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Mutate(ctx, "quest.completed", reward); err != nil {
		t.Fatal(err)
	}
	return s
}

// questPlayed starts a server where user:42 completes a quest and ends
// its session, and returns the server's URL.
func questPlayed(t testing.TB) string {
	t.Helper()
	srv := pltest.Run(t)
	if err := questCompleted(t, pltest.OpenStore(t, srv.URL(), newPlayer())).End(context.Background()); err != nil {
		t.Fatal(err)
	}
	return srv.URL()
}

// exampleT stands in for the *testing.T that a test is given and an
// Example is not: its cleanups run at done, last first, and an error is
// printed, so that the Example's output shows it. Only the methods pltest
// calls are implemented.
type exampleT struct {
	testing.TB // nil
	mu         sync.Mutex
	cleanups   []func()
	failed     bool
}

func newExampleT() *exampleT { return &exampleT{} }

func (t *exampleT) Helper()      {}
func (t *exampleT) Name() string { return "Example" }
func (t *exampleT) Failed() bool { t.mu.Lock(); defer t.mu.Unlock(); return t.failed }
func (t *exampleT) Log(...any)   {}

func (t *exampleT) Logf(string, ...any) {}

func (t *exampleT) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}

func (t *exampleT) TempDir() string {
	dir, err := os.MkdirTemp("", "pltest-example-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func (t *exampleT) Error(args ...any) {
	t.mu.Lock()
	t.failed = true
	t.mu.Unlock()
	fmt.Println(append([]any{"FAIL:"}, args...)...)
	fmt.Fprintln(os.Stderr, append([]any{"FAIL:"}, args...)...) // seen even if the Example panics
}

func (t *exampleT) Errorf(format string, args ...any) { t.Error(fmt.Sprintf(format, args...)) }
func (t *exampleT) Fatal(args ...any)                 { t.Error(args...); panic("example failed") }
func (t *exampleT) Fatalf(format string, args ...any) {
	t.Errorf(format, args...)
	panic("example failed")
}

// done runs the cleanups, last registered first.
func (t *exampleT) done() {
	for {
		t.mu.Lock()
		n := len(t.cleanups)
		if n == 0 {
			t.mu.Unlock()
			return
		}
		f := t.cleanups[n-1]
		t.cleanups = t.cleanups[:n-1]
		t.mu.Unlock()
		f()
	}
}
