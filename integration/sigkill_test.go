package integration_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/pltest"
	"github.com/profileledger/profileledger/projector"
)

// TestSIGKILLedServerLosesNoAcknowledgedWrite crashes the NATS server for
// real, where TestServerCrashAndRestartLosesNoAcknowledgedWrite stops it
// cleanly (a clean shutdown flushes the file store). "profileledger serve"
// — the command's own code, built from ./cmd/profileledger — runs as a child
// process; three game servers (each its own connection and Store) write to
// three contended profiles, with hand-overs and steals; the child is killed
// with SIGKILL in the middle of the load, with appends in flight, and
// started again on the same data directory and port. Afterwards every
// acknowledged mutation is in the log exactly once, every uncertain one at
// most once, no rejected one is there, and every log and snapshot keeps the
// invariants (workload.verify, and a plain fold of each raw log).
//
// What it showed (2-core VM, go1.26.8, nats-server 2.15.2; each subtest
// logs its counts):
//
//   - single server, -sync-always, killed three times: nothing lost or
//     doubled (three runs: 850–1,470 acknowledged, 3–5 uncertain of which
//     0–2 landed, 60–170 rejected). A server back within 25–70 ms still
//     costs the writers up to a second or two: an append in flight at the
//     kill never gets its reply and waits for its deadline (2 s here).
//   - single server, default fsync interval (two minutes): nothing lost or
//     doubled either (1,360–2,980 acknowledged, 1–5 uncertain, none of them
//     landed, 25–95 rejected). That is what to expect, not luck: an R1 file
//     stream writes every message to its block file (write(2), "flush in
//     place") before the server acknowledges it; the interval only delays
//     the fsync. SIGKILL ends the process, not the machine, so the page
//     cache keeps those writes and the restart reads them back. Only a power
//     loss or a kernel crash drops the page cache; this test causes neither
//     and says nothing about them (README, "Durability is the server's"). A
//     loss here would be a bug, and the subtest fails on it like the others.
//   - cluster (R3, default fsync interval), the stream leader killed once
//     and restarted at once: nothing lost or doubled (520–1,090
//     acknowledged, 0–1 uncertain, 20–65 rejected). The other two members
//     elect a new leader only after the Raft election timeout (4–9 s), so
//     writes stopped for 5.5–7.6 s; the killed member rejoins and catches up.
//     At the end the stream's leadership is moved to the killed member, so
//     that the final reads go through the store it recovered.
func TestSIGKILLedServerLosesNoAcknowledgedWrite(t *testing.T) {
	bin := buildProfileledger(t)
	t.Run("single server, sync always", func(t *testing.T) {
		killSingleServer(t, bin, true)
	})
	t.Run("single server, default fsync interval", func(t *testing.T) {
		killSingleServer(t, bin, false)
	})
	t.Run("cluster, stream leader", func(t *testing.T) {
		killClusterStreamLeader(t, bin)
	})
}

var killedKeys = []string{"k1", "k2", "k3"}

// killSingleServer kills the only server three times: twice restarted at
// once (as a supervisor would), then restarted after longer than the lease
// TTL (1 s) and a mutation's deadline (2 s).
func killSingleServer(t *testing.T, bin string, syncAlways bool) {
	args := []string{"-listen", "127.0.0.1:" + strconv.Itoa(childFreePorts(t, 1)[0]), "-data", t.TempDir(), "-v"}
	if syncAlways {
		args = append(args, "-sync-always")
	}
	srv := newChildServe(t, bin, "serve", args...)
	srv.start(t)
	srv.waitReady(t, time.Minute)

	nodes := []*node{
		openNode(t, srv.url, "a", true),
		openNode(t, srv.url, "b", true),
		openNode(t, srv.url, "c", true),
	}
	w := newWorkload(killedKeys, func() []*node { return nodes })
	crash := func(down time.Duration) func() {
		return func() {
			srv.kill(t)
			time.Sleep(down)
			srv.start(t)
			srv.waitReady(t, time.Minute)
		}
	}
	runKilled(t, w, 9*time.Second, []scheduledCrash{
		{1 * time.Second, "SIGKILL, restart at once", crash(0)},
		{2500 * time.Millisecond, "SIGKILL, restart at once", crash(0)},
		{4 * time.Second, "SIGKILL, restart after 2.5 s", crash(2500 * time.Millisecond)},
	})
	writeOncePerKey(t, w, nodes[0])
	auditor := openNode(t, srv.url, "auditor", false)
	verifyKilled(t, w, auditor)
}

// killClusterStreamLeader kills the profile stream's leader of a 3-node
// cluster once and restarts it at once. The other two elect a new leader
// after the election timeout (4–9 s): the run is long enough for writes to
// resume before it ends.
func killClusterStreamLeader(t *testing.T, bin string) {
	ports := childFreePorts(t, 6)
	var routes []string
	for _, p := range ports[3:] {
		routes = append(routes, "nats-route://127.0.0.1:"+strconv.Itoa(p))
	}
	members := map[string]*childServe{}
	var urls []string
	for i := range 3 {
		name := fmt.Sprintf("n%d", i+1)
		members[name] = newChildServe(t, bin, name,
			"-name", name,
			"-listen", "127.0.0.1:"+strconv.Itoa(ports[i]),
			"-cluster", "127.0.0.1:"+strconv.Itoa(ports[3+i]),
			"-routes", strings.Join(routes, ","),
			"-data", t.TempDir(),
			"-v")
		urls = append(urls, "nats://127.0.0.1:"+strconv.Itoa(ports[i]))
	}
	for _, m := range members { // all at once: each waits for a majority
		m.start(t)
	}
	for _, m := range members {
		m.waitReady(t, time.Minute)
	}
	url := strings.Join(urls, ",")

	var nodes []*node
	for _, name := range []string{"a", "b", "c"} {
		nodes = append(nodes, openNode(t, url, name, true, profileledger.WithReplicas(3)))
	}
	w := newWorkload(killedKeys, func() []*node { return nodes })
	var victim *childServe
	runKilled(t, w, 11*time.Second, []scheduledCrash{{1500 * time.Millisecond, "SIGKILL the stream leader, restart at once", func() {
		leader, _ := streamPlacement(t, nodes[0].js)
		victim = members[leader]
		if victim == nil {
			t.Fatalf("stream leader %q is none of the members", leader)
		}
		t.Logf("killing %s, the leader of stream PL_%s", leader, storeName)
		victim.kill(t)
		victim.start(t)
		victim.waitReady(t, 2*time.Minute)
	}}})
	writeOncePerKey(t, w, nodes[0])
	moveStreamLeader(t, nodes[0], victim.name)
	auditor := openNode(t, url, "auditor", false, profileledger.WithReplicas(3))
	verifyKilled(t, w, auditor)
}

// scheduledCrash is a crash at a time after the workload's start.
type scheduledCrash struct {
	at   time.Duration
	what string
	do   func()
}

// runKilled runs the workload (6 writers, 10 % steals) for run and makes the
// crashes at their times, and logs how many mutations were acknowledged
// around each.
func runKilled(t *testing.T, w *workload, run time.Duration, crashes []scheduledCrash) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), run+2*time.Minute)
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		w.run(ctx, t, 6, start.Add(run), 0.1)
	}()
	t.Cleanup(func() { // also when a crash fails t: the writers stop first
		cancel()
		<-done
	})
	for i, c := range crashes {
		time.Sleep(time.Until(start.Add(c.at)))
		killed := time.Now()
		before := ackedSoFar(w)
		c.do()
		back, ackedBack := time.Now(), ackedSoFar(w)
		next := start.Add(run)
		if i+1 < len(crashes) {
			next = start.Add(crashes[i+1].at)
		}
		for ackedSoFar(w) == ackedBack && time.Now().Before(next) {
			time.Sleep(5 * time.Millisecond)
		}
		resumed := "no acknowledgement before the next crash or the end"
		if ackedSoFar(w) > ackedBack {
			resumed = fmt.Sprintf("acknowledgements again %v after the kill", time.Since(killed).Round(10*time.Millisecond))
		}
		t.Logf("%v: %s: %d acknowledged before; server back after %v; %s",
			killed.Sub(start).Round(time.Millisecond), c.what, before, back.Sub(killed).Round(time.Millisecond), resumed)
	}
	last := ackedSoFar(w)
	<-done
	t.Logf("acknowledged %d in all, %d after the last restart (the run took %v)",
		ackedSoFar(w), ackedSoFar(w)-last, time.Since(start).Round(time.Millisecond))
}

func ackedSoFar(w *workload) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.acked
}

// writeOncePerKey makes one more recorded mutation on every key through n,
// after the workload: the store must take writes again after the crash.
func writeOncePerKey(t *testing.T, w *workload, n *node) {
	t.Helper()
	for _, key := range w.keys {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		s, err := n.st.StartSession(ctx, key)
		if err != nil {
			cancel()
			t.Errorf("after the restart, StartSession %q: %v", key, err)
			continue
		}
		item := "after-" + key
		err = s.Mutate(ctx, "item", func(p *Player) error {
			p.Inventory = append(p.Inventory, item)
			return nil
		})
		w.record(key, item, err)
		if err != nil {
			t.Errorf("after the restart, Mutate %q: %v", key, err)
		}
		if err := s.End(ctx); err != nil {
			t.Errorf("after the restart, End %q: %v", key, err)
		}
		cancel()
	}
}

// verifyKilled checks the workload's record against the store (verify:
// Get, checkLog, the whole-store audit) and against a plain fold of each
// raw log, and logs the counts.
func verifyKilled(t *testing.T, w *workload, n *node) {
	t.Helper()
	w.verify(t, n)
	inLog := map[string]int{}
	for _, key := range w.keys {
		for item, c := range itemsInLog(t, n, key) {
			inLog[item] += c
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	count := map[pltest.Outcome]int{}
	landed := 0
	for item, o := range w.outcome {
		count[o]++
		c := inLog[item]
		switch {
		case o == pltest.Acknowledged && c != 1, o == pltest.Rejected && c != 0, o == pltest.Uncertain && c > 1:
			t.Errorf("%s (%s, %q) is %d times in the raw log", item, o, w.key[item], c)
		case o == pltest.Uncertain && c == 1:
			landed++
		}
		delete(inLog, item)
	}
	for item, c := range inLog {
		t.Errorf("%s is %d times in the raw log but was never written", item, c)
	}
	t.Logf("outcomes: acknowledged %d, uncertain %d (%d in the log), rejected %d",
		count[pltest.Acknowledged], count[pltest.Uncertain], landed, count[pltest.Rejected])
}

// itemsInLog folds key's whole log from nothing — no snapshot — and counts
// the items of the resulting inventory.
func itemsInLog(t *testing.T, n *node, key string) map[string]int {
	t.Helper()
	var doc any
	for _, r := range readLog(t, n.js, key) {
		if r.Err != nil {
			continue // checkLog reports it
		}
		next, err := projector.Apply(doc, r.Event.Ops)
		if err != nil {
			t.Fatalf("%q: fold seq %d: %v", key, r.Seq, err)
		}
		doc = next
	}
	p := tmpl()
	if doc != nil {
		raw, err := projector.Encode(doc)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, &p); err != nil {
			t.Fatal(err)
		}
	}
	out := map[string]int{}
	for _, it := range p.Inventory {
		out[it]++
	}
	return out
}

// streamPlacement returns the name of the profile stream's leader and
// whether every replica is current.
func streamPlacement(t *testing.T, js jetstream.JetStream) (leader string, current bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for {
		st, err := js.Stream(ctx, "PL_"+storeName)
		var info *jetstream.StreamInfo
		if err == nil {
			info, err = st.Info(ctx)
		}
		if err == nil && info.Cluster != nil && info.Cluster.Leader != "" {
			current = len(info.Cluster.Replicas) > 0
			for _, r := range info.Cluster.Replicas {
				current = current && r.Current && !r.Offline
			}
			return info.Cluster.Leader, current
		}
		if ctx.Err() != nil {
			t.Fatalf("stream PL_%s has no leader: %v", storeName, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// moveStreamLeader waits until every replica of the profile stream is
// current and makes member its leader, so that reads go through the store
// that member recovered.
func moveStreamLeader(t *testing.T, n *node, member string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	req, _ := json.Marshal(map[string]any{"placement": map[string]any{"preferred": member}})
	for {
		leader, current := streamPlacement(t, n.js)
		if leader == member && current {
			t.Logf("%s leads stream PL_%s again, every replica current", member, storeName)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("could not make %s the leader of PL_%s (leader %s, replicas current: %v)", member, storeName, leader, current)
		}
		if current {
			reply, err := n.nc.Request("$JS.API.STREAM.LEADER.STEPDOWN.PL_"+storeName, req, 5*time.Second)
			if err != nil {
				t.Logf("stepdown: %v", err)
			} else if !strings.Contains(string(reply.Data), `"success":true`) {
				t.Logf("stepdown: %s", reply.Data)
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// buildProfileledger builds ./cmd/profileledger into a temporary directory
// and returns the binary's path.
//
// Why a built binary and not this test binary re-executed as the child:
// re-executing can run only code linked into the test binary, and package
// main (the real serve) links only into cmd/profileledger's own tests, far
// from this package's workload, verify and auditor. Building costs about
// 1.2 s with a warm build cache (3.7 s with -race) once per test process:
// the subtests share the binary. It builds with -race if this test binary
// was, so that both use the same cached packages: a plain build in a -race
// run would compile nats-server again.
func buildProfileledger(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go") // go test puts its own go first on PATH
	if err != nil {
		t.Fatalf("no go command to build profileledger: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "profileledger")
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	args := []string{"build", "-o", bin}
	if raceBuild() {
		args = append(args, "-race")
	}
	args = append(args, "github.com/profileledger/profileledger/cmd/profileledger")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, goTool, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("go %s: %v", strings.Join(args[:len(args)-1], " "), time.Since(start).Round(time.Millisecond))
	return bin
}

// raceBuild reports whether this binary was built with -race.
func raceBuild() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// childServe is "profileledger serve" running as a child process, started
// and killed (SIGKILL) by the test; every start gets the same arguments, so
// the same port and data directory. A t.Cleanup kills it; on Linux it is
// also killed if the test process dies first (childProcAttr).
type childServe struct {
	name   string
	bin    string
	args   []string
	logDir string

	starts int
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited and been waited for
	url    string
}

func newChildServe(t *testing.T, bin, name string, args ...string) *childServe {
	t.Helper()
	c := &childServe{name: name, bin: bin, args: append([]string{"serve"}, args...), logDir: t.TempDir()}
	t.Cleanup(func() {
		c.kill(t)
		if t.Failed() {
			c.dumpLogs(t)
		}
	})
	return c
}

// start starts the child; waitReady waits for it to be ready. They are two
// steps because cluster members must be started together.
func (c *childServe) start(t *testing.T) {
	t.Helper()
	if c.cmd != nil {
		t.Fatalf("%s is already running", c.name)
	}
	c.starts++
	stdout, err := os.Create(c.logFile("out"))
	if err != nil {
		t.Fatal(err)
	}
	defer stdout.Close() // the child has its own descriptor
	stderr, err := os.Create(c.logFile("err"))
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	cmd := exec.Command(c.bin, c.args...)
	cmd.Stdout, cmd.Stderr = stdout, stderr // files: no copying goroutines
	cmd.SysProcAttr = childProcAttr()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", c.name, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	c.cmd, c.exited, c.url = cmd, exited, ""
}

var childURL = regexp.MustCompile(`NATS with JetStream at (nats://127\.0\.0\.1:\d+)`)

// waitReady waits until the child prints its URL: JetStream is healthy
// (in a cluster: a majority of the members are up and it has caught up).
func (c *childServe) waitReady(t *testing.T, timeout time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		out, _ := os.ReadFile(c.logFile("out"))
		if m := childURL.FindSubmatch(out); m != nil {
			c.url = string(m[1])
			t.Logf("%s (start %d) ready at %s after %v", c.name, c.starts, c.url, time.Since(start).Round(time.Millisecond))
			return
		}
		select {
		case <-c.exited:
			t.Fatalf("%s exited before it was ready (%v)", c.name, c.cmd.ProcessState)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s not ready after %v", c.name, timeout)
		}
	}
}

// kill sends SIGKILL to the child, if it runs, and waits for it to exit.
// The child must have been running until then: a child that exited on its
// own fails t.
func (c *childServe) kill(t *testing.T) {
	t.Helper()
	if c.cmd == nil {
		return
	}
	select {
	case <-c.exited:
		t.Errorf("%s had exited on its own (%v)", c.name, c.cmd.ProcessState)
	default:
		if err := c.cmd.Process.Kill(); err != nil {
			t.Errorf("kill %s: %v", c.name, err)
		}
		<-c.exited
	}
	c.cmd = nil
}

func (c *childServe) logFile(stream string) string {
	return filepath.Join(c.logDir, fmt.Sprintf("%s-%d.%s", c.name, c.starts, stream))
}

// dumpLogs logs the tail of every start's output.
func (c *childServe) dumpLogs(t *testing.T) {
	t.Helper()
	for i := 1; i <= c.starts; i++ {
		for _, stream := range []string{"out", "err"} {
			b, _ := os.ReadFile(filepath.Join(c.logDir, fmt.Sprintf("%s-%d.%s", c.name, i, stream)))
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			if len(lines) > 40 {
				lines = lines[len(lines)-40:]
			}
			t.Logf("%s start %d std%s (last %d lines):\n%s", c.name, i, stream, len(lines), strings.Join(lines, "\n"))
		}
	}
}

// childFreePorts returns n distinct loopback ports that were free a moment
// ago.
func childFreePorts(t *testing.T, n int) []int {
	t.Helper()
	ports := make([]int, n)
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports
}
