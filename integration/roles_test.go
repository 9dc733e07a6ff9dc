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
	"github.com/profileledger/profileledger/investigate"
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

// count returns how many asynchronous errors contain want.
func (v *violations) count(want string) int {
	n := 0
	for _, e := range v.list() {
		if strings.Contains(e, want) {
			n++
		}
	}
	return n
}

// waitFor waits (up to 5 s) for more than seen asynchronous errors
// containing want.
func (v *violations) waitFor(t *testing.T, want string, seen int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if v.count(want) > seen {
			return
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
	// The handler ran; its event is appended right after: wait for it.
	for {
		in, err := st.Info(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if in.PendingMessages == 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("Info: %d pending; want 0", in.PendingMessages)
		}
		time.Sleep(5 * time.Millisecond)
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

// refused runs a write that must be refused: the server must report a
// violation for subject, and the write must fail. A denied request is
// answered by nothing, so the write is cancelled once the violation is
// seen (or after 5 s).
func refused(t *testing.T, v *violations, what, subject string, do func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	want := `Publish to "` + subject + `"`
	if strings.HasSuffix(subject, ".") {
		want = `Publish to "` + subject // a prefix: any subject under it
	}
	seen := v.count(want)
	done := make(chan error, 1)
	go func() { done <- do(ctx) }()
	v.waitFor(t, want, seen)
	cancel()
	if err := <-done; err == nil {
		t.Fatalf("%s: succeeded; want it refused", what)
	}
}

// seedPlayers fills the store with one profile of a few events and a
// pending message, as root.
func seedPlayers(t *testing.T, url string) {
	t.Helper()
	js, _ := connectAs(t, url, "root")
	st := openAs(t, js, "players", "seed")
	ctx := testCtx(t, 20*time.Second)
	s, err := st.StartSession(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := s.Mutate(ctx, "quest", func(p *Player) error { p.Coins += 5; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.End(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.Message(ctx, "alice", []byte("gift")); err != nil {
		t.Fatal(err)
	}
}

func TestReaderReadsTheStoreAndEveryWriteItAttemptsIsRefused(t *testing.T) {
	url := rolesServer(t,
		roleUser{"root", "", ""},
		roleUser{"reader", "players", roles.Reader})
	createStore(t, url, "root", "players")
	seedPlayers(t, url)

	js, v := connectAs(t, url, "reader")
	ctx := testCtx(t, 60*time.Second)
	// audit
	rep, err := audit.Store(ctx, js, "players")
	if err != nil {
		t.Fatalf("audit as reader: %v", err)
	}
	if rep.Profiles != 1 || len(rep.Violations) > 0 {
		t.Fatalf("audit as reader: %d profiles, violations %v", rep.Profiles, rep.Violations)
	}
	// log, show (a store opened by the reader: Get, History, Keys, Info)
	st := openAs(t, js, "players", "reader")
	n := 0
	for e, err := range investigate.Log(ctx, investigate.FromStore(st), "alice", investigate.LogFilter{}) {
		if err != nil {
			t.Fatalf("log as reader: %v", err)
		}
		_ = e
		n++
	}
	if n < 5 {
		t.Fatalf("log as reader: %d entries", n)
	}
	if view, err := st.Get(ctx, "alice"); err != nil || view.Data.Coins != 115 {
		t.Fatalf("Get as reader: %+v, %v", view, err)
	}
	if in, err := st.Info(ctx, "alice"); err != nil || in.PendingMessages != 1 {
		t.Fatalf("Info as reader: %+v, %v", in, err)
	}
	// export
	var out strings.Builder
	res, err := investigate.Export(ctx, js, "players", &out, investigate.ExportOptions{})
	if err != nil || res.Events < 5 || strings.Count(out.String(), "\n") != res.Events {
		t.Fatalf("export as reader: %+v, %v", res, err)
	}
	// A projection's durable pull consumer.
	stream, err := js.Stream(ctx, "PL_players")
	if err != nil {
		t.Fatal(err)
	}
	cons, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: "PL_players_PROJ_coins", FilterSubject: "pl.players.ev.>", AckPolicy: jetstream.AckExplicitPolicy,
	})
	if err != nil {
		t.Fatalf("projection consumer as reader: %v", err)
	}
	batch, err := cons.Fetch(2, jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for m := range batch.Messages() {
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatalf("ack as reader: %v", err)
		}
		got++
	}
	if got != 2 {
		t.Fatalf("projection fetched %d events, want 2", got)
	}
	if errs := v.list(); len(errs) > 0 {
		t.Fatalf("the reader's reads hit asynchronous errors:\n%s", strings.Join(errs, "\n"))
	}

	// Every write, refused.
	refused(t, v, "append an event", "pl.players.ev.alice", func(ctx context.Context) error {
		_, err := js.Publish(ctx, "pl.players.ev.alice", []byte(`{"forged":true}`))
		return err
	})
	refused(t, v, "Message", "pl.players.msg.alice", func(ctx context.Context) error {
		return st.Message(ctx, "alice", []byte("forged"))
	})
	// A store's first session starts its heartbeat: the first write a
	// reader's StartSession attempts.
	refused(t, v, "StartSession", "$KV.PL_players_LEASES.node.", func(ctx context.Context) error {
		_, err := st.StartSession(ctx, "alice", profileledger.NoWait())
		return err
	})
	for _, bucket := range []string{"PL_players_LEASES", "PL_players_SNAPSHOTS", "PL_players_USERS"} {
		kv, err := js.KeyValue(ctx, bucket)
		if err != nil {
			t.Fatalf("bucket %s as reader: %v", bucket, err)
		}
		refused(t, v, "put into "+bucket, "$KV."+bucket+".alice", func(ctx context.Context) error {
			_, err := kv.Put(ctx, "alice", []byte("forged"))
			return err
		})
	}
	refused(t, v, "purge", "$JS.API.STREAM.PURGE.PL_players", func(ctx context.Context) error { return stream.Purge(ctx) })
	refused(t, v, "delete a message", "$JS.API.STREAM.MSG.DELETE.PL_players", func(ctx context.Context) error { return stream.DeleteMsg(ctx, 1) })
	refused(t, v, "update the stream", "$JS.API.STREAM.UPDATE.PL_players", func(ctx context.Context) error {
		cfg := stream.CachedInfo().Config
		cfg.MaxAge = time.Hour
		_, err := js.UpdateStream(ctx, cfg)
		return err
	})
	refused(t, v, "delete the stream", "$JS.API.STREAM.DELETE.PL_players", func(ctx context.Context) error { return js.DeleteStream(ctx, "PL_players") })
	refused(t, v, "delete a bucket", "$JS.API.STREAM.DELETE.KV_PL_players_LEASES", func(ctx context.Context) error {
		return js.DeleteKeyValue(ctx, "PL_players_LEASES")
	})
	// And nothing changed: the log is as the seed left it.
	rootJS, _ := connectAs(t, url, "root")
	after, err := audit.Store(ctx, rootJS, "players")
	if err != nil || after.Profiles != 1 || len(after.Violations) > 0 || after.Events != rep.Events {
		t.Fatalf("after the refused writes: %+v, %v (before: %d events)", after, err, rep.Events)
	}
}

func TestHolderCannotPurgeDeleteReconfigureOrTouchAnotherStore(t *testing.T) {
	url := rolesServer(t,
		roleUser{"root", "", ""},
		roleUser{"holder", "players", roles.Holder})
	createStore(t, url, "root", "players")
	createStore(t, url, "root", "guilds")
	createStore(t, url, "root", "players_x") // a name that extends "players"
	seedPlayers(t, url)

	js, v := connectAs(t, url, "holder")
	ctx := testCtx(t, 60*time.Second)
	st := openAs(t, js, "players", "holder")
	stream, err := js.Stream(ctx, "PL_players")
	if err != nil {
		t.Fatal(err)
	}
	refused(t, v, "purge the stream", "$JS.API.STREAM.PURGE.PL_players", func(ctx context.Context) error { return stream.Purge(ctx) })
	refused(t, v, "delete a message", "$JS.API.STREAM.MSG.DELETE.PL_players", func(ctx context.Context) error { return stream.DeleteMsg(ctx, 1) })
	refused(t, v, "reconfigure the stream", "$JS.API.STREAM.UPDATE.PL_players", func(ctx context.Context) error {
		cfg := stream.CachedInfo().Config
		cfg.MaxMsgsPerSubject = 1 // would drop every profile's history but the last event
		_, err := js.UpdateStream(ctx, cfg)
		return err
	})
	refused(t, v, "delete the stream", "$JS.API.STREAM.DELETE.PL_players", func(ctx context.Context) error { return js.DeleteStream(ctx, "PL_players") })
	refused(t, v, "delete the snapshot bucket", "$JS.API.STREAM.DELETE.KV_PL_players_SNAPSHOTS", func(ctx context.Context) error {
		return js.DeleteKeyValue(ctx, "PL_players_SNAPSHOTS")
	})
	refused(t, v, "create a stream", "$JS.API.STREAM.CREATE.PL_mine", func(ctx context.Context) error {
		_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "PL_mine", Subjects: []string{"mine.>"}})
		return err
	})
	refused(t, v, "Erase (an admin operation)", "$JS.API.STREAM.PURGE.PL_players", func(ctx context.Context) error {
		err := st.Erase(ctx, "alice")
		if err != nil && !errors.Is(err, nats.ErrPermissionViolation) {
			t.Errorf("Erase as holder: %v, want nats.ErrPermissionViolation", err)
		}
		return err
	})
	// Other stores: no read, no write, no open.
	for _, other := range []string{"guilds", "players_x"} {
		refused(t, v, "read "+other, "$JS.API.STREAM.INFO.PL_"+other, func(ctx context.Context) error {
			_, err := js.Stream(ctx, "PL_"+other)
			return err
		})
		refused(t, v, "append to "+other, "pl."+other+".ev.alice", func(ctx context.Context) error {
			_, err := js.Publish(ctx, "pl."+other+".ev.alice", []byte(`{"forged":true}`))
			return err
		})
		refused(t, v, "take a lease in "+other, "$KV.PL_"+other+"_LEASES.alice", func(ctx context.Context) error {
			_, err := js.Publish(ctx, "$KV.PL_"+other+"_LEASES.alice", []byte(`{}`))
			return err
		})
		refused(t, v, "Open "+other, "$JS.API.STREAM.INFO.PL_"+other, func(ctx context.Context) error {
			_, err := profileledger.Open(ctx, js, other, tmpl())
			return err
		})
	}
	// Nothing changed: alice's log is whole (Erase was refused before its
	// tombstone) and the other stores are empty.
	rootJS, _ := connectAs(t, url, "root")
	rep, err := audit.Store(ctx, rootJS, "players")
	if err != nil || rep.Profiles != 1 || len(rep.Violations) > 0 {
		t.Fatalf("players after the refusals: %+v, %v", rep, err)
	}
	rootSt := openAs(t, rootJS, "players", "root")
	if view, err := rootSt.Get(ctx, "alice"); err != nil || view.Data.Coins != 115 {
		t.Fatalf("alice after a refused erasure: %+v, %v", view, err)
	}
	for _, other := range []string{"PL_guilds", "PL_players_x"} {
		s, err := rootJS.Stream(ctx, other)
		if err != nil {
			t.Fatal(err)
		}
		if n := s.CachedInfo().State.Msgs; n != 0 {
			t.Fatalf("%s holds %d messages", other, n)
		}
	}
}

func TestOpenWithHolderRightsOnAMissingStoreNamesTheAdminStep(t *testing.T) {
	url := rolesServer(t,
		roleUser{"admin", "players", roles.Admin},
		roleUser{"holder", "players", roles.Holder})
	js, v := connectAs(t, url, "holder")
	ctx := testCtx(t, 30*time.Second)
	_, err := profileledger.Open(ctx, js, "players", tmpl())
	if !errors.Is(err, profileledger.ErrStoreMissing) || !strings.Contains(err.Error(), "profileledger create players") {
		t.Fatalf("Open on a missing store as holder: %v; want ErrStoreMissing naming `profileledger create players`", err)
	}
	// It gave up on the server's refusal, not on the request's timeout.
	if !errors.Is(err, nats.ErrPermissionViolation) {
		t.Fatalf("Open on a missing store as holder: %v; want the permission violation as its cause", err)
	}
	v.waitFor(t, `Publish to "$JS.API.STREAM.CREATE.PL_players"`, 0)
	// Nothing was created; the admin's Create then lets the holder in.
	adminJS, _ := connectAs(t, url, "admin")
	if _, err := adminJS.Stream(ctx, "PL_players"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("after the refused Open: %v", err)
	}
	if err := profileledger.Create(ctx, adminJS, "players"); err != nil {
		t.Fatal(err)
	}
	st := openAs(t, js, "players", "holder")
	s, err := st.StartSession(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.End(ctx); err != nil {
		t.Fatal(err)
	}
	// An admin's store erases (an erasure purges).
	adminSt := openAs(t, adminJS, "players", "admin")
	if err := adminSt.Erase(ctx, "alice"); err != nil {
		t.Fatalf("Erase as admin: %v", err)
	}
}

func TestOpenWithHolderRightsOnAStoreMissingABucketNamesItAndCreateAddsIt(t *testing.T) {
	url := rolesServer(t,
		roleUser{"root", "", ""},
		roleUser{"holder", "players", roles.Holder})
	createStore(t, url, "root", "players")
	seedPlayers(t, url)
	rootJS, _ := connectAs(t, url, "root")
	ctx := testCtx(t, 30*time.Second)
	// As a store made before the user-id index existed.
	if err := rootJS.DeleteKeyValue(ctx, "PL_players_USERS"); err != nil {
		t.Fatal(err)
	}
	js, _ := connectAs(t, url, "holder")
	_, err := profileledger.Open(ctx, js, "players", tmpl())
	if !errors.Is(err, profileledger.ErrStoreMissing) || !strings.Contains(err.Error(), "missing: KV_PL_players_USERS)") ||
		!strings.Contains(err.Error(), "profileledger create players") {
		t.Fatalf("Open as holder without the users bucket: %v", err)
	}
	if err := profileledger.Create(ctx, rootJS, "players"); err != nil {
		t.Fatal(err)
	}
	st := openAs(t, js, "players", "holder")
	if view, err := st.Get(ctx, "alice"); err != nil || view.Data.Coins != 115 {
		t.Fatalf("alice after the bucket was added: %+v, %v", view, err)
	}
}
