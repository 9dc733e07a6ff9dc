package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// natsConfig configures an embedded nats-server with JetStream.
type natsConfig struct {
	name       string // server name; defaultServerName if empty
	host       string
	port       int    // server.RANDOM_PORT for any free port
	dir        string // JetStream store directory
	syncAlways bool   // fsync every write before acknowledging it
	log        io.Writer
	cluster    *clusterConfig // nil for a single server
	// monitor, if set, is the address (host:port; port 0 picks one) of the
	// server's HTTP monitoring endpoints (/varz, /jsz, /healthz, ...).
	monitor *hostPort
}

// hostPort is a parsed host:port.
type hostPort struct {
	host string
	port int
}

// clusterConfig makes the server a member of a JetStream cluster.
type clusterConfig struct {
	host   string
	port   int        // the port the other members' routes connect to
	routes []*url.URL // every member's route URL; the server skips its own
}

const (
	// defaultServerName names a server started without a name.
	defaultServerName = "profileledger"
	// clusterName is the name of every cluster serve's members form. Members
	// meet only through the routes they are given, so clusters on one
	// network do not mix.
	clusterName = "profileledger"
)

// natsReadyTimeout bounds startNATS's wait for a started server to take
// clients and for JetStream to be healthy.
const natsReadyTimeout = 10 * time.Second

// startNATS starts an embedded nats-server with JetStream and returns it once
// JetStream is healthy, or fails after natsReadyTimeout. The caller stops it
// with stopNATS. The server does not handle signals; its logs go to cfg.log
// if it is set, nowhere otherwise.
func startNATS(cfg natsConfig) (*server.Server, error) {
	ctx, cancel := context.WithTimeoutCause(context.Background(), natsReadyTimeout,
		fmt.Errorf("gave up after %v", natsReadyTimeout))
	defer cancel()
	return startNATSUntil(ctx, cfg)
}

// startNATSUntil is startNATS with the wait bounded by ctx instead: a cluster
// member's JetStream is healthy only once a majority of the members are up,
// which takes as long as the operator takes to start them.
func startNATSUntil(ctx context.Context, cfg natsConfig) (*server.Server, error) {
	name := cfg.name
	if name == "" {
		name = defaultServerName
	}
	opts := &server.Options{
		ServerName: name,
		Host:       cfg.host,
		Port:       cfg.port,
		NoLog:      true, // no logger of its own: it gets ours
		NoSigs:     true,
		JetStream:  true,
		StoreDir:   cfg.dir,
		SyncAlways: cfg.syncAlways,
	}
	if m := cfg.monitor; m != nil {
		opts.HTTPHost, opts.HTTPPort = m.host, m.port
		if m.port == 0 {
			opts.HTTPPort = server.RANDOM_PORT
		}
	}
	if c := cfg.cluster; c != nil {
		opts.Cluster.Name = clusterName
		opts.Cluster.Host = c.host
		opts.Cluster.Port = c.port
		opts.Routes = c.routes
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	logger := &natsLogger{w: cfg.log}
	ns.SetLogger(logger, false, false)
	ns.Start()
	fail := func(format string, args ...any) (*server.Server, error) {
		stopNATS(ns)
		if fatal := logger.fatalError(); fatal != "" {
			return nil, fmt.Errorf("nats server: %s", fatal)
		}
		return nil, fmt.Errorf("nats server: "+format, args...)
	}
	for !ns.ReadyForConnections(25 * time.Millisecond) {
		if logger.fatalError() != "" || ctx.Err() != nil {
			return fail("not ready for connections: %w", context.Cause(ctx))
		}
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		h := ns.Healthz(nil)
		if h.Status == "ok" && h.Error == "" {
			return ns, nil
		}
		select {
		case <-ctx.Done():
			return fail("JetStream not healthy: %w: %s", context.Cause(ctx), h.Error)
		case <-tick.C:
		}
	}
}

// stopNATS shuts ns down and waits until it has stopped.
func stopNATS(ns *server.Server) {
	ns.Shutdown()
	ns.WaitForShutdown()
}

// natsURL is the client URL of a running server.
func natsURL(ns *server.Server) string {
	return "nats://" + ns.Addr().String()
}

// natsLogger writes a nats-server's notices, warnings and errors to w (if
// w is not nil), one line each, and remembers the first fatal error (such as
// a port in use) so that startNATS can report it. Debug and trace are off.
type natsLogger struct {
	mu    sync.Mutex
	w     io.Writer
	fatal string
}

var _ server.Logger = (*natsLogger)(nil)

func (l *natsLogger) logf(level, format string, v []any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	msg := fmt.Sprintf(format, v...)
	if level == "FTL" && l.fatal == "" {
		l.fatal = msg
	}
	if l.w != nil {
		fmt.Fprintf(l.w, "nats %s %s\n", level, msg)
	}
}

func (l *natsLogger) fatalError() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fatal
}

func (l *natsLogger) Noticef(format string, v ...any) { l.logf("INF", format, v) }
func (l *natsLogger) Warnf(format string, v ...any)   { l.logf("WRN", format, v) }
func (l *natsLogger) Fatalf(format string, v ...any)  { l.logf("FTL", format, v) }
func (l *natsLogger) Errorf(format string, v ...any)  { l.logf("ERR", format, v) }
func (l *natsLogger) Debugf(string, ...any)           {}
func (l *natsLogger) Tracef(string, ...any)           {}
