package benchrun

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/internal/embedded"
	"github.com/profileledger/profileledger/internal/names"
)

// benchEnv is the NATS side of a bench run: the server (embedded or not),
// the connections, and every stream and bucket the run created, so that
// they are removed at the end.
type benchEnv struct {
	url     string
	opts    []nats.Option // credentials and TLS for a running server
	server  string        // for people: "embedded" or the redacted URL
	ns      *server.Server
	dir     string
	cluster *benchCluster // nil unless bench -cluster
	// replicas is the replica count of every stream and bucket the run
	// creates (3 on the cluster).
	replicas int
	id       string // this run's id, in the names of its streams and buckets
	version  string // nats-server version
	log      *slog.Logger

	mu      sync.Mutex
	conns   []*nats.Conn
	stores  map[string]bool // store names opened
	buckets map[string]bool // baseline KV buckets created
}

// newBenchEnv starts an embedded server, or checks that serverURL answers.
func newBenchEnv(ctx context.Context, serverURL string, opts []nats.Option, log *slog.Logger, progress io.Writer) (*benchEnv, error) {
	id := make([]byte, 4)
	rand.Read(id)
	e := &benchEnv{id: hex.EncodeToString(id), opts: opts, log: log, stores: map[string]bool{}, buckets: map[string]bool{}, replicas: 1}
	if serverURL == "" {
		dir, err := os.MkdirTemp("", "profileledger-bench-")
		if err != nil {
			return nil, err
		}
		ns, err := embedded.Start(embedded.Config{Host: "127.0.0.1", Port: server.RANDOM_PORT, Dir: dir})
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		e.ns, e.dir, e.url, e.server = ns, dir, embedded.URL(ns), "embedded"
		fmt.Fprintf(progress, "bench          embedded NATS at %s, store in %s (removed at the end)\n", e.url, dir)
	} else {
		e.url, e.server = serverURL, redactURL(serverURL)
	}
	nc, _, err := e.connect("probe")
	if err != nil {
		e.close()
		return nil, err
	}
	e.version = nc.ConnectedServerVersion()
	return e, nil
}

// newClusterEnv starts an embedded 3-node cluster (file storage in a
// temporary directory, removed at the end) whose streams and buckets are
// R3. Server logs go to serverLog (nil for none).
func newClusterEnv(ctx context.Context, log *slog.Logger, progress, serverLog io.Writer) (*benchEnv, error) {
	id := make([]byte, 4)
	rand.Read(id)
	e := &benchEnv{id: hex.EncodeToString(id), log: log, stores: map[string]bool{}, buckets: map[string]bool{}, replicas: clusterSize}
	t0 := time.Now()
	c, err := startCluster(ctx, serverLog)
	if err != nil {
		return nil, err
	}
	e.cluster, e.url, e.server = c, c.urls(), fmt.Sprintf("embedded %d-node cluster", clusterSize)
	fmt.Fprintf(progress, "bench          embedded %d-node cluster at %s, store in %s (removed at the end), ready in %v\n",
		clusterSize, e.url, c.dir, time.Since(t0).Round(time.Millisecond))
	nc, js, err := e.connect("probe")
	if err == nil {
		err = waitR3(ctx, js, "PLBENCH"+e.id+"_READY")
	}
	if err != nil {
		e.close()
		return nil, err
	}
	e.version = nc.ConnectedServerVersion()
	fmt.Fprintf(progress, "bench          R3 streams can be created and written after %v\n", time.Since(t0).Round(time.Millisecond))
	return e, nil
}

// waitR3 creates an R3 stream named name, publishes to it and deletes it,
// each step bounded by a few seconds and the whole tried again until it
// works or clusterReadyTimeout passes. A cluster whose meta group has just
// formed can still lose a request to create a stream (seen once: a
// store's Open waited 30 s for its stream): the scenarios start after
// this has worked.
func waitR3(ctx context.Context, js jetstream.JetStream, name string) error {
	ctx, cancel := context.WithTimeout(ctx, clusterReadyTimeout)
	defer cancel()
	subject := "plbench.ready." + name
	try := func() error {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if _, err := js.CreateOrUpdateStream(actx, jetstream.StreamConfig{Name: name, Subjects: []string{subject}, Replicas: clusterSize, Storage: jetstream.FileStorage}); err != nil {
			return err
		}
		if _, err := js.Publish(actx, subject, []byte("ready")); err != nil {
			return err
		}
		return js.DeleteStream(actx, name)
	}
	for {
		err := try()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("cluster: no R3 stream could be created and written: %w", err)
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return fmt.Errorf("cluster: no R3 stream could be created and written: %w", err)
		}
	}
}

// redactURL hides a password in u.
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(server URL)"
	}
	return p.Redacted()
}

// connect opens a connection that close closes.
func (e *benchEnv) connect(name string) (*nats.Conn, jetstream.JetStream, error) {
	if e.cluster != nil { // the running members: a restarted one has a new port
		return e.connectURL(name, e.cluster.urls(), e.server)
	}
	return e.connectURL(name, e.url, e.server)
}

// connectTo opens a connection to member i of the cluster (it may
// reconnect to another member if that one goes away).
func (e *benchEnv) connectTo(name string, i int) (*nats.Conn, jetstream.JetStream, error) {
	u := e.cluster.url(i)
	if u == "" {
		return nil, nil, fmt.Errorf("connect to cluster member %d: it is down", i+1)
	}
	return e.connectURL(name, u, fmt.Sprintf("cluster member %d", i+1))
}

func (e *benchEnv) connectURL(name, url, what string) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(url, append(slices.Clone(e.opts), nats.Name("profileledger-bench-"+name))...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to %s: %w", what, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	e.mu.Lock()
	e.conns = append(e.conns, nc)
	e.mu.Unlock()
	return nc, js, nil
}

// storeName returns the run's name of store s.
func (e *benchEnv) storeName(s string) string { return "bench" + e.id + "-" + s }

// openStore opens the run's store s on js with template tmpl.
func (e *benchEnv) openStore(ctx context.Context, js jetstream.JetStream, s, node string, tmpl benchProfile, opts ...profileledger.Option) (*profileledger.Store[benchProfile], error) {
	name := e.storeName(s)
	e.mu.Lock()
	e.stores[name] = true
	e.mu.Unlock()
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	opts = append([]profileledger.Option{profileledger.WithLogger(e.log), profileledger.WithNode(node), profileledger.WithReplicas(e.replicas)}, opts...)
	return profileledger.Open(octx, js, name, tmpl, opts...)
}

// keyValue creates the run's baseline KV bucket b (file storage, history 1).
func (e *benchEnv) keyValue(ctx context.Context, js jetstream.JetStream, b string) (jetstream.KeyValue, error) {
	name := "PLBENCH" + e.id + "_" + b
	e.mu.Lock()
	e.buckets[name] = true
	e.mu.Unlock()
	return js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: name, History: 1, Storage: jetstream.FileStorage, Replicas: e.replicas})
}

// closeStore closes st, giving its sessions time to end.
func closeStore(st *profileledger.Store[benchProfile]) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return st.Close(ctx)
}

// close closes every connection, deletes what the run created on a shared
// server, and stops the embedded one.
func (e *benchEnv) close() {
	e.mu.Lock()
	conns := e.conns
	e.conns = nil
	e.mu.Unlock()
	for _, nc := range conns {
		nc.Close()
	}
	if e.ns != nil {
		embedded.Stop(e.ns)
		os.RemoveAll(e.dir)
		return
	}
	if e.cluster != nil {
		e.cluster.close()
		return
	}
	if len(e.stores) == 0 && len(e.buckets) == 0 {
		return
	}
	nc, err := nats.Connect(e.url, append(slices.Clone(e.opts), nats.Name("profileledger-bench-cleanup"))...)
	if err != nil {
		e.log.Warn("bench streams not deleted", "err", err)
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var streams []string
	for s := range e.stores {
		if n, err := names.New(s); err == nil {
			streams = append(streams, n.Stream, names.KVStream(n.Leases), names.KVStream(n.Snapshots))
		}
	}
	for b := range e.buckets {
		streams = append(streams, names.KVStream(b))
	}
	for _, s := range streams {
		if err := js.DeleteStream(ctx, s); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			e.log.Warn("bench stream not deleted", "stream", s, "err", err)
		}
	}
}

// Machine describes where the run ran.
type Machine struct {
	Go         string `json:"go"`
	GOOS       string `json:"goos"`
	GOARCH     string `json:"goarch"`
	CPUs       int    `json:"cpus"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	CPUModel   string `json:"cpu_model,omitempty"`
	NATSServer string `json:"nats_server"`
	Server     string `json:"server"`  // "embedded" or the server's URL
	Storage    string `json:"storage"` // of every stream and bucket
	Sync       string `json:"sync"`
	Notes      string `json:"notes"`
}

func (e *benchEnv) machine() Machine {
	m := Machine{
		Go: runtime.Version(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH,
		CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), CPUModel: cpuModel(),
		NATSServer: e.version, Server: e.server, Storage: "file", Sync: "the server's",
		Notes: "a separate server (file storage): its CPU and heap are not this process's",
	}
	switch {
	case e.ns != nil:
		m.Sync = "default interval (2 min)"
		m.Notes = "embedded server, file storage in a temporary directory: it shares this process's CPUs and heap"
	case e.cluster != nil:
		m.Storage, m.Sync = fmt.Sprintf("file, R%d", e.replicas), "default interval (2 min)"
		m.Notes = fmt.Sprintf("%d embedded servers routed over loopback, file storage in a temporary directory, streams and buckets R%d: they share this process's CPUs and heap", clusterSize, e.replicas)
	}
	return m
}

// cpuModel returns the CPU's model name where the system says it.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// loadAverage returns the system's 1, 5 and 15-minute load averages where
// the system says them.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// benchProfile is the bench's profile type: a counter, a name, and items
// that pad the profile to the size a figure asks for.
type benchProfile struct {
	Coins int      `json:"coins"`
	Name  string   `json:"name"`
	Items []string `json:"items"`
}

// newBenchProfile returns a profile whose JSON form is size bytes or a few
// more.
func newBenchProfile(size int) benchProfile {
	p := benchProfile{Name: "player", Items: []string{}}
	n := len(`{"coins":0,"name":"player","items":[]}`)
	for i := 0; n < size; i++ {
		it := fmt.Sprintf("item-%07d", i)
		if len(p.Items) > 0 {
			n++ // the comma
		}
		n += len(it) + 2
		p.Items = append(p.Items, it)
	}
	return p
}

func addCoin(p *benchProfile) error { p.Coins++; return nil }

// startSessions starts one session for each key, workers at a time.
func startSessions(ctx context.Context, st *profileledger.Store[benchProfile], keys []string, workers int) ([]*profileledger.Session[benchProfile], error) {
	out := make([]*profileledger.Session[benchProfile], len(keys))
	err := parallel(ctx, len(keys), workers, func(ctx context.Context, i int) error {
		s, err := st.StartSession(ctx, keys[i])
		out[i] = s
		return err
	})
	return out, err
}

// parallel calls fn for 0..n-1, workers at a time, and returns the first
// error (the rest are then skipped).
func parallel(ctx context.Context, n, workers int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for i := range next {
				if err := fn(ctx, i); err != nil {
					cancel(err)
				}
			}
		})
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	return context.Cause(ctx)
}
