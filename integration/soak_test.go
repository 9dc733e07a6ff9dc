//go:build soak

package integration_test

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/profileledger/profileledger/pltest"
)

var (
	soakDuration = flag.Duration("soak.duration", 2*time.Minute, "how long the soak's workload runs")
	soakSeed     = flag.Uint64("soak.seed", 1, "seed of the soak's fault schedule")
)

// TestSoak runs the contended mutation workload and the bank workload
// together for -soak.duration while faults are injected at random: the NATS
// server stops and restarts (sync_interval always, same store); a game
// server's connection is cut without End and a fresh one joins; the game
// server behind a proxy is frozen past its lease (a zombie when it thaws)
// or slowed by 50 ms each way; or nothing happens for a while. Then it checks every acknowledged mutation, the
// bank's conservation, and every log's invariants, and prints the counts.
//
//	go test -tags soak -run Soak -timeout 1h ./integration/ -soak.duration 5m
func TestSoak(t *testing.T) {
	srv := pltest.Run(t, pltest.SyncAlways())
	var mu sync.Mutex
	nodes := []*node{}
	seq := 0
	addNode := func() {
		seq++
		n := openNode(t, srv.URL(), fmt.Sprintf("n%d", seq), true)
		mu.Lock()
		nodes = append(nodes, n)
		mu.Unlock()
	}
	for range 2 {
		addNode()
	}
	// One game server reaches NATS through a proxy that can freeze or slow it.
	tp := pltest.Proxy(t, srv.URL())
	proxied := openNode(t, tp.URL(), "proxied", true)
	mu.Lock()
	nodes = append(nodes, proxied)
	mu.Unlock()
	live := func() []*node {
		mu.Lock()
		defer mu.Unlock()
		return append([]*node(nil), nodes...)
	}
	ctx := testCtx(t, *soakDuration+5*time.Minute)
	until := time.Now().Add(*soakDuration)

	w := newWorkload([]string{"k1", "k2", "k3", "k4", "k5"}, live)
	b := newBank(live)
	b.setup(t, ctx)

	var wg sync.WaitGroup
	wg.Go(func() { w.run(ctx, t, 6, until, 0.1) })
	wg.Go(func() { b.run(ctx, 4, until) })

	rng := rand.New(rand.NewPCG(*soakSeed, 7))
	faults := map[string]int{}
	for time.Now().Add(5 * time.Second).Before(until) {
		time.Sleep(time.Duration(2+rng.IntN(4)) * time.Second)
		switch rng.IntN(5) {
		case 0:
			faults["server restart"]++
			srv.Stop()
			time.Sleep(time.Duration(rng.IntN(2500)) * time.Millisecond)
			srv.Restart()
		case 1:
			faults["game server cut off"]++
			mu.Lock()
			if len(nodes) > 1 {
				i := rng.IntN(len(nodes))
				victim := nodes[i]
				nodes = append(nodes[:i:i], nodes[i+1:]...)
				mu.Unlock()
				victim.nc.Close() // no End, no Close: its profiles are taken over after the TTL
				addNode()
			} else {
				mu.Unlock()
			}
		case 2:
			faults["proxied server frozen past its lease"]++
			tp.Freeze()
			time.Sleep(1500 * time.Millisecond)
			tp.Thaw()
		case 3:
			faults["50 ms latency for 2 s"]++
			tp.Latency(50*time.Millisecond, 10*time.Millisecond)
			time.Sleep(2 * time.Second)
			tp.Latency(0, 0)
		default:
			faults["quiet"]++
		}
	}
	wg.Wait()

	auditor := openNode(t, srv.URL(), "auditor", false)
	w.verify(t, auditor)
	b.verify(t, auditor)
	t.Logf("soak: %v, seed %d, faults %v", *soakDuration, *soakSeed, faults)
}
