package demorun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/internal/embedded"
	"github.com/profileledger/profileledger/investigate"
)

// StoreName is the demo's store: stream PL_players, subjects pl.players.>.
const StoreName = "players"

// Config is what a demo runs: its servers, players and their choices.
type Config struct {
	Servers  int           // simulated game servers: at least 2 with Crash, 1 without
	Players  int           // players hopping between them: at least 1
	Duration time.Duration // how long the players play
	LeaseTTL time.Duration // how long a crashed server's players stay locked
	Seed     uint64        // of the players' random choices
	Steal    float64       // the fraction of session starts that steal instead of asking for a hand-over
	Crash    bool          // crash one server midway
	// Keep, if set, is the directory to keep the NATS data in, instead of
	// a temporary directory removed at the end.
	Keep string
	// Progress gets the run's progress lines; nil for none.
	Progress io.Writer
	// Log gets the library's warnings; nil for none.
	Log *slog.Logger
	// Metrics, if set, gets every game server's Store.Collector.
	Metrics *MetricsServer
}

// demo is one run: the servers, the players and what they saw.
type demo struct {
	cfg     Config
	log     *slog.Logger
	servers []*gameServer
	players []*player
	stats   runStats
	start   time.Time
	end     time.Time      // players stop starting sessions after this
	wg      sync.WaitGroup // players and stray writers
	victim  *gameServer
	crashAt time.Duration
	metrics *MetricsServer // nil without -metrics
	// healthNotes are the stores' critical toggles, for the play loop to
	// print.
	healthNotes chan string
	url         string   // the NATS server's
	gifts       giftShop // what the gift shop sent
}

// gameServer is one simulated game server: its own NATS connection and
// Store.
type gameServer struct {
	name    string
	nc      *nats.Conn
	store   *profileledger.Store[Player]
	ctx     context.Context // cancelled when the server crashes
	kill    context.CancelFunc
	crashed atomic.Bool
}

// Run runs the demo and returns its summary: whether every check passed
// is its Pass. An error means the demo could not run (or was
// interrupted), not that a check failed. ctx ends the run early.
func Run(ctx context.Context, cfg Config) (*Summary, error) {
	out, log, ms := cfg.Progress, cfg.Log, cfg.Metrics
	if out == nil {
		out = io.Discard
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir, kept := cfg.Keep, "kept: profileledger serve -data "+cfg.Keep+" serves it"
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "profileledger-demo-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		kept = "removed at the end"
	} else if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	ns, err := embedded.Start(embedded.Config{Host: "127.0.0.1", Port: server.RANDOM_PORT, Dir: dir})
	if err != nil {
		return nil, err
	}
	defer embedded.Stop(ns)
	url := embedded.URL(ns)

	d := &demo{cfg: cfg, log: log, metrics: ms, healthNotes: make(chan string, 64), url: url, gifts: giftShop{sent: map[string]*sentGift{}}}
	defer d.shutdown() // before the NATS server stops; a no-op after a clean run
	fmt.Fprintf(out, "profileledger demo: %d game servers, %d players, %v, lease TTL %v, seed %d\n",
		cfg.Servers, cfg.Players, cfg.Duration, cfg.LeaseTTL, cfg.Seed)
	fmt.Fprintf(out, "  NATS with JetStream at %s, store in %s (%s)\n", url, dir, kept)
	if ms != nil {
		fmt.Fprintf(out, "  metrics at %s\n", ms.URL)
	}
	for i := range cfg.Servers {
		gs, err := d.openServer(ctx, url, fmt.Sprintf("s%d", i+1))
		if err != nil {
			return nil, err
		}
		d.servers = append(d.servers, gs)
	}
	for i := range cfg.Players {
		d.players = append(d.players, newPlayerRecord(i+1))
	}

	// The projector process: the snapshotter and the gems' owner index,
	// following the log from before the first gem is minted.
	proj, err := d.startProjections(ctx)
	if err != nil {
		return nil, err
	}
	defer proj.close()
	mctx, cancel := context.WithTimeout(ctx, time.Minute)
	err = d.mint(mctx)
	cancel()
	if err != nil {
		return nil, err
	}
	d.play(ctx, out)
	elapsed := time.Since(d.start)
	if ctx.Err() != nil {
		return nil, fmt.Errorf("interrupted after %v", elapsed.Round(time.Millisecond))
	}
	health := d.healthReport()
	d.progress(out, "run over: Store.Close on the live servers ends every session")
	closeErrs := d.shutdown()

	d.progress(out, fmt.Sprintf("reading back %d profiles: logs, audit.Check, Store.Get", len(d.players)))
	vctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	v, err := d.verify(vctx, url)
	if err != nil {
		return nil, err
	}
	pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
	defer pcancel()
	projReport := proj.finish(pctx, v.gemOwner)
	sum := d.summarize(elapsed, closeErrs, v)
	sum.Health = health
	sum.Projections = projReport
	sum.Pass = sum.Pass && projReport.ok()
	return sum, nil
}

// openServer connects a game server and opens its Store.
func (d *demo) openServer(ctx context.Context, url, name string) (*gameServer, error) {
	nc, err := nats.Connect(url, nats.Name("profileledger-demo-"+name))
	if err != nil {
		return nil, fmt.Errorf("%s: connect: %w", name, err)
	}
	st, err := d.openStore(ctx, nc, name)
	if err == nil {
		if err = d.metrics.register(name, st); err != nil {
			st.Close(ctx)
		}
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	sctx, kill := context.WithCancel(ctx)
	return &gameServer{name: name, nc: nc, store: st, ctx: sctx, kill: kill}, nil
}

func (d *demo) openStore(ctx context.Context, nc *nats.Conn, node string) (*profileledger.Store[Player], error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return profileledger.Open(octx, js, StoreName, newPlayer(),
		profileledger.WithLeaseTTL(d.cfg.LeaseTTL), profileledger.WithNode(node), profileledger.WithLogger(d.log),
		profileledger.WithCriticalHandler(func(critical bool, h profileledger.Health) { d.noteCritical(node, critical, h) }))
}

// play runs the players until the run's end, crashing a server midway, and
// returns when every player and stray writer has stopped.
func (d *demo) play(ctx context.Context, out io.Writer) {
	d.start = time.Now()
	d.end = d.start.Add(d.cfg.Duration)
	rng := rand.New(rand.NewPCG(d.cfg.Seed, 0))
	for i, p := range d.players {
		prng := rand.New(rand.NewPCG(d.cfg.Seed, uint64(i+1)))
		d.wg.Go(func() { d.runPlayer(ctx, p, prng) })
	}
	for i := range max(1, len(d.players)/tradersPer) {
		trng := rand.New(rand.NewPCG(d.cfg.Seed, uint64(1000+i)))
		d.wg.Go(func() { d.runTrader(ctx, trng) })
	}
	if err := d.runGiftShop(ctx, d.url, rand.New(rand.NewPCG(d.cfg.Seed, 7777))); err != nil {
		d.progress(out, fmt.Sprintf("no gift shop: %v", err))
	}
	d.progress(out, fmt.Sprintf("%d servers opened store %q; %d players start hopping; a gift shop sends them gifts", len(d.servers), StoreName, len(d.players)))

	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	var crash <-chan time.Time
	if d.cfg.Crash {
		t := time.NewTimer(d.cfg.Duration / 2)
		defer t.Stop()
		crash = t.C
	}
	tick := time.NewTicker(max(d.cfg.Duration/4, time.Second))
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case note := <-d.healthNotes:
			d.progress(out, note)
		case <-crash:
			victim, live := d.busiest(rng)
			for _, p := range d.players {
				if p.liveOn() == victim {
					p.markCrashHeld()
				}
			}
			d.crash(victim)
			d.progress(out, fmt.Sprintf("crashed %s, holding %d live sessions: its NATS connection closed without End or Close", victim.name, live))
		case <-tick.C:
			if time.Now().Before(d.end) {
				d.stats.mu.Lock()
				line := fmt.Sprintf("%d sessions started, %d mutations acknowledged", d.stats.sessions, d.stats.outcomes[acked])
				d.stats.mu.Unlock()
				d.progress(out, line)
			}
		}
	}
}

// busiest returns the server holding the most live sessions, and how many.
func (d *demo) busiest(rng *rand.Rand) (*gameServer, int) {
	live := make(map[*gameServer]int)
	for _, p := range d.players {
		if srv := p.liveOn(); srv != nil {
			live[srv]++
		}
	}
	best := d.servers[rng.IntN(len(d.servers))]
	for _, gs := range d.servers {
		if live[gs] > live[best] {
			best = gs
		}
	}
	return best, live[best]
}

// crash makes gs vanish as a dead process would: no End, no Close, no more
// renewals or hand-over replies.
func (d *demo) crash(gs *gameServer) {
	d.victim, d.crashAt = gs, time.Since(d.start)
	gs.crashed.Store(true)
	gs.kill()
	gs.nc.Close()
}

func (d *demo) progress(out io.Writer, line string) {
	fmt.Fprintf(out, "  %6.2fs  %s\n", time.Since(d.start).Seconds(), line)
}

// shutdown closes every store, which ends every live session, and every
// connection. It returns the live servers' errors, except for sessions that
// were already lost (stolen, or fenced by a newer session) and so cannot
// end. The crashed server's store is closed with a short deadline and its
// errors are ignored. Calling it again does nothing.
func (d *demo) shutdown() []string {
	var mu sync.Mutex
	var errs []string
	var wg sync.WaitGroup
	for _, gs := range d.servers {
		if gs.store == nil {
			continue
		}
		wg.Go(func() {
			timeout := 30 * time.Second
			if gs.crashed.Load() {
				timeout = 2 * time.Second
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			err := gs.store.Close(ctx)
			if gs.crashed.Load() {
				return
			}
			for _, e := range flatten(err) {
				if !errors.Is(e, profileledger.ErrSessionLost) {
					mu.Lock()
					errs = append(errs, fmt.Sprintf("%s: Close: %v", gs.name, e))
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	for _, gs := range d.servers {
		if gs.store != nil {
			gs.store = nil
			gs.kill()
			gs.nc.Close()
		}
	}
	return errs
}

// flatten returns the errors joined in err.
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// verify reads every player's profile back on a connection and Store of its
// own.
func (d *demo) verify(ctx context.Context, url string) (*Verification, error) {
	nc, err := nats.Connect(url, nats.Name("profileledger-demo-verify"))
	if err != nil {
		return nil, fmt.Errorf("verify: connect: %w", err)
	}
	defer nc.Close()
	st, err := d.openStore(ctx, nc, "verifier")
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	defer st.Close(context.Background())
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	vr, err := newVerifier(ctx, js, st)
	if err != nil {
		return nil, err
	}
	v := &Verification{gemOwner: map[string]string{}}
	for _, p := range d.players {
		if err := vr.check(ctx, p, v); err != nil {
			return nil, err
		}
	}
	// Conservation across all players: every minted gem owned once, the
	// gold unchanged in total.
	for _, p := range d.players {
		for k := range gemsPerPlayer {
			if _, ok := v.gemOwner[gem(p.n, k+1)]; !ok {
				v.GemsLost++
				v.problem("%s is owned by nobody", gem(p.n, k+1))
			}
		}
	}
	v.GoldDelta = v.goldTotal - startingGold*len(d.players)
	if v.GoldDelta != 0 {
		v.problem("gold adds up to %d, want %d", v.goldTotal, startingGold*len(d.players))
	}
	if v.Gifts, err = d.checkGifts(ctx, st, v); err != nil {
		return nil, fmt.Errorf("verify gifts: %w", err)
	}
	// Last, what an operator would run from cron: the dupes command.
	if err := checkDupes(ctx, st, v); err != nil {
		return nil, fmt.Errorf("verify dupes: %w", err)
	}
	return v, nil
}

// DupesPattern is where the demo's players hold values that must be
// unique across the store: the minted gems, moved only by trades.
const DupesPattern = "/gems/*"

// checkDupes runs the dupes command's scan (investigate.Dupes) over the
// demo's store and counts what it finds in v, each as a problem naming
// the event that duplicated the value.
func checkDupes(ctx context.Context, st *profileledger.Store[Player], v *Verification) error {
	pattern, err := investigate.ParsePattern(DupesPattern)
	if err != nil {
		return err
	}
	rep, err := investigate.Dupes(ctx, investigate.FromStore(st), pattern)
	if err != nil {
		return err
	}
	v.Dupes = len(rep.Dupes)
	for _, d := range rep.Dupes {
		for _, o := range d.Trace.Origins() {
			v.problem("dupes: %s duplicated into %q at seq %d by event %s (%s)", d.Value, o.Key, o.Seq, o.EventID, o.How)
		}
		if len(d.Trace.Origins()) == 0 {
			v.problem("dupes: %s is held %d times", d.Value, len(d.At))
		}
	}
	return nil
}
