package integration_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/ledger"
	"github.com/profileledger/profileledger/pltest"
)

// The lost-acknowledgement tests of faults_test.go, on an R3 stream on a
// 3-node cluster. A replicated stream checks a message's Nats-Msg-Id
// against its duplicate window before the expected last subject sequence
// (a single server checks the fence first), so a publish that is sent
// again after it landed is answered "duplicate, seq N" there, not "wrong
// last sequence": the settle paths differ and each needs its own test.
//
// The faulty holder reaches ONE member's client port through a proxy, and
// only that member: it ignores the cluster's advertised URLs (and the proxy
// removes them from the server's INFO), so it can
// neither start on nor fail over to a member the proxy is not in front of.
// The other nodes connect to the members directly.

// clusterWithStore starts a 3-node cluster, opens the store at R3 on a node
// connected to every member (it creates the stream and buckets), and
// returns the cluster, that node, and a member that does not lead the
// stream: the faulty holder reaches that member through the proxy, so its
// appends and the replies to them also cross a route to the leader.
func clusterWithStore(t *testing.T, name string, opts ...profileledger.Option) (*pltest.Cluster, *node, *pltest.Server) {
	t.Helper()
	c := pltest.RunCluster(t, 3)
	direct := openNode(t, c.URLs(), name, false, append([]profileledger.Option{profileledger.WithReplicas(3)}, opts...)...)
	leader := c.StreamLeader("PL_" + storeName)
	for _, s := range c.Servers() {
		if s != leader {
			t.Logf("the proxied holder reaches %s; %s leads the stream", s.Name(), leader.Name())
			return c, direct, s
		}
	}
	t.Fatal("no member but the stream leader")
	return nil, nil, nil
}

// openClusterNode is openNode for a cluster member behind a proxy: the
// connection uses url alone, never a server the cluster advertises, and the
// store is at R3.
func openClusterNode(t testing.TB, url, name string, closeErrOK bool, opts ...profileledger.Option) *node {
	t.Helper()
	js := pltest.Connect(t, url, nats.IgnoreDiscoveredServers(), nats.DontRandomize())
	nc := js.Conn()
	opts = append([]profileledger.Option{
		profileledger.WithLeaseTTL(time.Second), profileledger.WithNode(name), profileledger.WithReplicas(3),
	}, opts...)
	st, err := profileledger.Open(context.Background(), js, storeName, tmpl(), opts...)
	if err != nil {
		t.Fatalf("Open on %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := st.Close(ctx); err != nil && !closeErrOK {
			t.Errorf("Close %s: %v", name, err)
		}
	})
	return &node{nc: nc, js: js, st: st}
}

// onlyThrough fails t unless n's connection knows no server but url: a
// client that had learnt the other members could reach the stream around
// the proxy and the fault would not be where the test put it.
func onlyThrough(t testing.TB, n *node, url string) {
	t.Helper()
	if got := n.nc.Servers(); !slices.Equal(got, []string{url}) {
		t.Fatalf("the proxied node's server pool is %v, want only the proxy %s", got, url)
	}
	if got := n.nc.ConnectedUrl(); got != url {
		t.Fatalf("the proxied node is connected to %s, want the proxy %s", got, url)
	}
}

// TestLostAcknowledgementsOnACluster is TestLostAcknowledgements' append
// cases on an R3 stream: the stored append's PubAck lost, a new session's
// fence PubAck lost, and an append whose PubAck and settling read are both
// lost (ErrUncertain) followed by a mutation. Nothing may be lost or
// doubled, the sessions concerned carry on, and the store passes the
// auditor.
func TestLostAcknowledgementsOnACluster(t *testing.T) {
	t.Run("mutation append", func(t *testing.T) {
		_, b, member := clusterWithStore(t, "b")
		fp := pltest.Proxy(t, member.URL())
		a := openClusterNode(t, fp.URL(), "a", false)
		onlyThrough(t, a, fp.URL())
		ctx := testCtx(t, time.Minute)
		const key = "lost-ack"
		s, err := a.st.StartSession(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Mutate(ctx, "item", addItem("before")); err != nil {
			t.Fatal(err)
		}
		subj := evSubject(t, key)
		dropped := fp.DropNextReplyFunc(func(s string) bool { return s == subj })
		t0 := time.Now()
		mctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err = s.Mutate(mctx, "item", addItem("ack-lost"))
		cancel()
		t.Logf("mutation whose PubAck was dropped returned %v after %v", err, time.Since(t0))
		select {
		case <-dropped:
		default:
			t.Fatal("the proxy dropped no PubAck")
		}
		if err != nil && !errors.Is(err, profileledger.ErrUncertain) {
			t.Fatalf("mutation with a lost ack = %v, want nil or ErrUncertain", err)
		}
		if err := s.Mutate(ctx, "item", addItem("after")); err != nil {
			t.Fatalf("next mutation: %v", err)
		}
		recs := readLog(t, b.js, key)
		var out outcomes
		out.note("before", nil)
		out.note("ack-lost", err)
		out.note("after", nil)
		out.check(t, recs)
		if got, want := foldLog(t, recs, 0), s.Data(); !samePlayer(got, want) {
			t.Errorf("session data %+v, the log folds to %+v", want, got)
		}
		if last := recs[len(recs)-1].Seq; s.Version() != last {
			t.Errorf("session version %d, last in log %d", s.Version(), last)
		}
		if err := s.End(ctx); err != nil {
			t.Fatal(err)
		}
		v, err := b.st.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if !samePlayer(v.Data, s.Data()) {
			t.Errorf("Get %+v, session %+v", v.Data, s.Data())
		}
		checkLog(t, key, readLog(t, b.js, key))
		auditStore(t, b.js)
	})

	t.Run("session.started append", func(t *testing.T) {
		_, a, member := clusterWithStore(t, "a")
		fp := pltest.Proxy(t, member.URL())
		b := openClusterNode(t, fp.URL(), "b", false)
		onlyThrough(t, b, fp.URL())
		ctx := testCtx(t, time.Minute)
		const key = "lost-fence-ack"
		sa, err := a.st.StartSession(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		var acked []string
		for i := range 3 {
			it := fmt.Sprintf("a-%d", i)
			if err := sa.Mutate(ctx, "item", addItem(it)); err != nil {
				t.Fatal(err)
			}
			acked = append(acked, it)
		}
		subj := evSubject(t, key)
		dropped := fp.DropNextReplyFunc(func(s string) bool { return s == subj }) // B's first append is its fence
		t0 := time.Now()
		sb, err := b.st.StartSession(ctx, key)
		if err != nil {
			t.Fatalf("start whose fence ack was dropped: %v", err)
		}
		t.Logf("start whose fence PubAck was dropped took %v", time.Since(t0))
		select {
		case <-dropped:
		default:
			t.Fatal("the proxy dropped no PubAck")
		}
		if err := sb.Mutate(ctx, "item", addItem("b-0")); err != nil {
			t.Fatal(err)
		}
		acked = append(acked, "b-0")
		recs := readLog(t, a.js, key)
		if n := len(ofType(recs, ledger.TypeSessionStarted)); n != 2 {
			t.Errorf("%d session.started events, want 2 (A's and B's, once each)", n)
		}
		if err := waitDone(t, sa, "A after hand-over"); !errors.Is(err, profileledger.ErrHandedOver) {
			t.Errorf("A's Err() = %v, want ErrHandedOver", err)
		}
		checkTakeOver(t, key, recs, sa.ID(), sb.ID(), acked)
		if got, want := foldLog(t, recs, 0), sb.Data(); !samePlayer(got, want) {
			t.Errorf("B's data %+v, the log folds to %+v", want, got)
		}
		if err := sb.End(ctx); err != nil {
			t.Fatal(err)
		}
		checkLog(t, key, readLog(t, a.js, key))
		auditStore(t, a.js)
	})

	// As faults_test.go's uncertainThen: the PubAck is dropped and the
	// connection freezes just after, so the append's settling read cannot
	// get through either and the mutation returns ErrUncertain although
	// its event is in the log. The next mutation must fold it in first.
	t.Run("unknown outcome, then a mutation", func(t *testing.T) {
		ttl := profileledger.WithLeaseTTL(5 * time.Second)
		_, b, member := clusterWithStore(t, "b", ttl)
		fp := pltest.Proxy(t, member.URL()) // the holder's: drops one reply, then freezes
		a := openClusterNode(t, fp.URL(), "a", true, ttl)
		onlyThrough(t, a, fp.URL())
		ctx := testCtx(t, time.Minute)
		const key = "uncertain"
		s, err := a.st.StartSession(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Mutate(ctx, "item", addItem("before")); err != nil {
			t.Fatal(err)
		}
		subj := evSubject(t, key)
		dropped := fp.DropNextReplyFunc(func(x string) bool { return x == subj })
		res := make(chan error, 1)
		go func() {
			mctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
			defer cancel()
			res <- s.Mutate(mctx, "item", addItem("unknown"))
		}()
		select {
		case <-dropped:
		case <-time.After(waitFor):
			t.Fatal("the proxy dropped no PubAck")
		}
		fp.Freeze()
		err = recvErr(t, res, "mutation whose ack was dropped")
		fp.Thaw()
		if !errors.Is(err, profileledger.ErrUncertain) {
			t.Fatalf("mutation with its ack and its settling read lost = %v, want ErrUncertain", err)
		}
		if n := countItem(readLog(t, b.js, key), "unknown"); n != 1 {
			t.Fatalf("the uncertain mutation is in the log %d times; this test needs it there once", n)
		}
		if err := s.Err(); err != nil {
			t.Fatalf("session over after an uncertain mutation: %v", err)
		}
		if err := s.Mutate(ctx, "item", addItem("after")); err != nil {
			t.Fatalf("mutation after an uncertain one: %v", err)
		}
		recs := readLog(t, b.js, key)
		var out outcomes
		out.note("before", nil)
		out.note("unknown", err)
		out.note("after", nil)
		out.check(t, recs)
		if got, want := foldLog(t, recs, 0), s.Data(); !samePlayer(got, want) {
			t.Errorf("session data %+v, the log folds to %+v", want, got)
		}
		if last := recs[len(recs)-1].Seq; s.Version() != last {
			t.Errorf("session version %d, last in log %d", s.Version(), last)
		}
		if err := s.End(ctx); err != nil {
			t.Errorf("End after an uncertain mutation that landed = %v, want nil", err)
		}
		recs = readLog(t, b.js, key)
		ended := ofType(recs, ledger.TypeSessionEnded)
		if len(ended) != 1 || ended[0].Event.Session != s.ID() {
			t.Errorf("session.ended events: %d, want the holder's one", len(ended))
		}
		sb, err := b.st.StartSession(ctx, key, profileledger.NoWait())
		if err != nil {
			t.Errorf("NoWait start after the holder's End = %v, want the profile free", err)
		} else {
			if got, want := sb.Data(), foldLog(t, recs, 0); !samePlayer(got, want) {
				t.Errorf("next holder's data %+v, the log folds to %+v", got, want)
			}
			if err := sb.End(ctx); err != nil {
				t.Error(err)
			}
		}
		checkLog(t, key, readLog(t, b.js, key))
		auditStore(t, b.js)
	})
}
