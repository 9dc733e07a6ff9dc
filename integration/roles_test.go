package integration_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/audit"
	"github.com/profileledger/profileledger/internal/embedded"
	"github.com/profileledger/profileledger/roles"
)

// roleUser is one user of a roles server: a role on a store, or root
// (no permissions block: everything).
type roleUser struct {
	name, store string
	role        roles.Role // "" for root
}

// rolesServer starts a NATS server from a configuration file whose users'
// permissions are the generated blocks (roles.Permissions.UserConfig), so
// that the rendering is what is tested, as an operator would use it. Each
// user's password is its name.
func rolesServer(t *testing.T, users ...roleUser) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "host: 127.0.0.1\nport: -1\njetstream { store_dir: %q }\nauthorization {\n  users: [\n", t.TempDir())
	for _, u := range users {
		if u.role == "" {
			fmt.Fprintf(&b, "{ user: %q, password: %q }\n", u.name, u.name)
			continue
		}
		p, err := roles.For(u.store, u.role)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(p.UserConfig(u.name, u.name))
	}
	b.WriteString("  ]\n}\n")
	path := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	ns, err := embedded.Start(embedded.Config{File: path, Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("start a server from\n%s\n: %v", b.String(), err)
	}
	t.Cleanup(func() { embedded.Stop(ns) })
	return embedded.URL(ns)
}

// violations collects a connection's asynchronous errors: NATS reports a
// denied publish or subscription only there (a denied request times out).
type violations struct {
	mu   sync.Mutex
	errs []string
}

func (v *violations) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.errs = append(v.errs, err.Error())
}

func (v *violations) list() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.errs...)
}

// waitFor waits (up to 5 s) for an asynchronous error containing want.
func (v *violations) waitFor(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, e := range v.list() {
			if strings.Contains(e, want) {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no permission violation for %q; async errors: %v", want, v.list())
}

// connectAs connects as user (password = name), collecting async errors.
func connectAs(t *testing.T, url, user string) (jetstream.JetStream, *violations) {
	t.Helper()
	v := &violations{}
	nc, err := nats.Connect(url, nats.UserInfo(user, user), nats.Name(user), nats.ErrorHandler(v.handler))
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js, v
}

func openAs(t *testing.T, js jetstream.JetStream, store, node string) *profileledger.Store[Player] {
	t.Helper()
	st, err := profileledger.Open(testCtx(t, 30*time.Second), js, store, tmpl(),
		profileledger.WithLeaseTTL(time.Second), profileledger.WithNode(node), profileledger.WithSnapshotEvery(2))
	if err != nil {
		t.Fatalf("Open %s as %s: %v", store, node, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := st.Close(ctx); err != nil {
			t.Errorf("Close %s: %v", node, err)
		}
	})
	return st
}

// createStore runs the admin step as user.
func createStore(t *testing.T, url, user, store string) {
	t.Helper()
	js, v := connectAs(t, url, user)
	if err := profileledger.Create(testCtx(t, 20*time.Second), js, store); err != nil {
		t.Fatalf("Create %s as %s: %v", store, user, err)
	}
	if errs := v.list(); len(errs) > 0 {
		t.Fatalf("Create as %s: async errors %v", user, errs)
	}
}

func TestHolderRunsTheWholeWorkloadWithoutAPermissionError(t *testing.T) {
	url := rolesServer(t,
		roleUser{"admin", "players", roles.Admin},
		roleUser{"holder", "players", roles.Holder})
	createStore(t, url, "admin", "players")

	js1, v1 := connectAs(t, url, "holder")
	js2, v2 := connectAs(t, url, "holder")
	a := openAs(t, js1, "players", "server-a")
	b := openAs(t, js2, "players", "server-b")
	ctx := testCtx(t, 60*time.Second)

	// Starts, mutations (with snapshots every two events), user ids.
	alice, err := a.StartSession(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	bob, err := a.StartSession(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := alice.Mutate(ctx, "quest", func(p *Player) error { p.Coins += 10; return nil }); err != nil {
			t.Fatalf("mutate %d: %v", i, err)
		}
	}
	if err := bob.Apply(ctx, "loot", profileledger.Add("/inventory/-", "sword")); err != nil {
		t.Fatal(err)
	}
	if err := alice.AddUserID(ctx, "roblox:1"); err != nil {
		t.Fatal(err)
	}
	// A trade between two profiles this holder holds.
	if err := profileledger.Trade(ctx, "trade.sword", bob, alice, func(s, r *Player) error {
		r.Inventory = append(r.Inventory, s.Inventory[0])
		s.Inventory = s.Inventory[1:]
		s.Coins, r.Coins = s.Coins+50, r.Coins-50
		return nil
	}); err != nil {
		t.Fatalf("trade: %v", err)
	}
	// Messages: sent from the other server, handled by the holder, then
	// removed from the inbox (or not: a holder may not purge).
	got := make(chan string, 4)
	alice.HandleMessages(func(p *Player, m profileledger.Message) error {
		p.Coins++
		got <- string(m.Payload)
		return nil
	})
	for i := range 3 {
		if err := b.Message(ctx, "alice", []byte(fmt.Sprint("gift", i)), profileledger.MessageID(fmt.Sprint("g", i))); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	for range 3 {
		select {
		case <-got:
		case <-ctx.Done():
			t.Fatal("messages not handled")
		}
	}
	// A hand-over from server a to server b, then a steal back.
	aliceB, err := b.StartSession(ctx, "alice")
	if err != nil {
		t.Fatalf("hand-over: %v", err)
	}
	<-alice.Done()
	if err := aliceB.Mutate(ctx, "quest", func(p *Player) error { p.Coins += 1; return nil }); err != nil {
		t.Fatal(err)
	}
	aliceA, err := a.StartSession(ctx, "alice", profileledger.Steal())
	if err != nil {
		t.Fatalf("steal: %v", err)
	}
	<-aliceB.Done()
	if err := aliceB.Mutate(ctx, "zombie", func(p *Player) error { return nil }); !errors.Is(err, profileledger.ErrSessionLost) {
		t.Fatalf("the stolen session's mutation: %v, want ErrSessionLost", err)
	}
	// Reads.
	if _, err := b.Get(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Info(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, err := range b.History(ctx, "alice") {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	for _, err := range b.Keys(ctx) {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []*profileledger.Session[Player]{aliceA, bob} {
		if err := s.End(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n < 10 {
		t.Fatalf("alice's history has %d events", n)
	}
	// The one refusal allowed: a Store's first purge of handled inbox
	// messages, after which it stops purging (a holder may not purge).
	for i, v := range []*violations{v1, v2} {
		var other []string
		purges := 0
		for _, e := range v.list() {
			if strings.HasSuffix(e, `Publish to "$JS.API.STREAM.PURGE.PL_players"`) {
				purges++
				continue
			}
			other = append(other, e)
		}
		if len(other) > 0 || purges > 1 {
			t.Fatalf("holder connection %d: %d refused purges (at most 1) and asynchronous errors:\n%s", i+1, purges, strings.Join(other, "\n"))
		}
	}
	// And what it wrote keeps every invariant.
	rep, err := audit.Store(ctx, js1, "players")
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Violations) > 0 {
		t.Fatalf("audit: %v", rep.Violations)
	}
}

func TestAnInboxItsHolderCannotPurgeNeverReadsAsFull(t *testing.T) {
	url := rolesServer(t,
		roleUser{"root", "", ""},
		roleUser{"holder", "players", roles.Holder})
	createStore(t, url, "root", "players")
	js, _ := connectAs(t, url, "holder")
	st, err := profileledger.Open(testCtx(t, 20*time.Second), js, "players", tmpl(), profileledger.WithInboxLimit(2))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close(context.Background()) })
	ctx := testCtx(t, 60*time.Second)
	s, err := st.StartSession(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	handled := make(chan struct{}, 10)
	s.HandleMessages(func(p *Player, m profileledger.Message) error { p.Coins++; handled <- struct{}{}; return nil })
	// Five messages through an inbox of two, each handled before the next.
	for i := range 5 {
		if err := st.Message(ctx, "alice", []byte("gift")); err != nil {
			t.Fatalf("message %d to an inbox whose handled messages stay: %v", i, err)
		}
		select {
		case <-handled:
		case <-ctx.Done():
			t.Fatal("message not handled")
		}
	}
	rootJS, _ := connectAs(t, url, "root")
	str, err := rootJS.Stream(ctx, "PL_players")
	if err != nil {
		t.Fatal(err)
	}
	info, err := str.Info(ctx, jetstream.WithSubjectFilter("pl.players.msg.>"))
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs < 5 {
		t.Fatalf("the inbox holds %d messages: the holder purged, so this test tests nothing", info.State.Msgs)
	}
	if in, err := st.Info(ctx, "alice"); err != nil || in.PendingMessages != 0 {
		t.Fatalf("Info: %d pending, %v; want 0", in.PendingMessages, err)
	}
	// The limit still holds for messages nobody handled.
	s.HandleMessages(nil)
	if err := s.End(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := st.Message(ctx, "alice", []byte("late")); err != nil {
			t.Fatalf("pending message %d: %v", i, err)
		}
	}
	if err := st.Message(ctx, "alice", []byte("one too many")); !errors.Is(err, profileledger.ErrInboxFull) {
		t.Fatalf("a third pending message: %v, want ErrInboxFull", err)
	}
}
