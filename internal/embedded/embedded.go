// Package embedded starts and stops a nats-server with JetStream inside
// this process: the one that profileledger serve runs, and the one the
// demo and the bench start for themselves.
//
//	ns, err := embedded.Start(embedded.Config{Host: "127.0.0.1", Port: server.RANDOM_PORT, Dir: dir})
//	if err != nil { ... }
//	defer embedded.Stop(ns)
//	nc, err := nats.Connect(embedded.URL(ns))
package embedded

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Config configures an embedded nats-server with JetStream.
type Config struct {
	Name       string // server name; DefaultServerName if empty
	Host       string
	Port       int    // server.RANDOM_PORT for any free port
	Dir        string // JetStream store directory
	SyncAlways bool   // fsync every write before acknowledging it
	Log        io.Writer
	Cluster    *Cluster // nil for a single server
	// Monitor, if set, is the address (host:port; port 0 picks one) of the
	// server's HTTP monitoring endpoints (/varz, /jsz, /healthz, ...).
	Monitor *HostPort
	// File, if set, is a nats-server configuration file (users, accounts,
	// permissions, TLS, listen address, ...) the server is started from:
	// Name, Host, Port, Cluster and Monitor are then ignored (the file
	// says), JetStream is turned on, and Dir is the store directory unless
	// the file names one; SyncAlways applies if set.
	File string
}

// LoadFile returns the server options of a nats-server configuration
// file, as Start uses them (see Config.File).
func LoadFile(path string, cfg Config) (*server.Options, error) {
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		return nil, fmt.Errorf("nats server config: %w", err)
	}
	opts.NoLog, opts.NoSigs, opts.JetStream = true, true, true
	if opts.StoreDir == "" {
		opts.StoreDir = cfg.Dir
	}
	if cfg.SyncAlways {
		opts.SyncAlways = true
	}
	return opts, nil
}

// HostPort is a parsed host:port.
type HostPort struct {
	Host string
	Port int
}

// Cluster makes the server a member of a JetStream cluster.
type Cluster struct {
	Host   string
	Port   int        // the port the other members' routes connect to
	Routes []*url.URL // every member's route URL; the server skips its own
	// Advertise, if set, is the host:port the member tells the others to
	// dial for its routes, instead of Host:Port (a relay in front of it).
	Advertise string
	// NoCompression turns route compression off, so that a relay in front
	// of the routes can read them.
	NoCompression bool
}

const (
	// DefaultServerName names a server started without a name.
	DefaultServerName = "profileledger"
	// ClusterName is the name of every cluster serve's members form. Members
	// meet only through the routes they are given, so clusters on one
	// network do not mix.
	ClusterName = "profileledger"
)

// ReadyTimeout bounds Start's wait for a started server to take clients
// and for JetStream to be healthy.
const ReadyTimeout = 10 * time.Second

// Start starts an embedded nats-server with JetStream and returns it once
// JetStream is healthy, or fails after ReadyTimeout. The caller stops it
// with Stop. The server does not handle signals; its logs go to cfg.Log
// if it is set, nowhere otherwise.
func Start(cfg Config) (*server.Server, error) {
	ctx, cancel := context.WithTimeoutCause(context.Background(), ReadyTimeout,
		fmt.Errorf("gave up after %v", ReadyTimeout))
	defer cancel()
	return StartUntil(ctx, cfg)
}

// StartUntil is Start with the wait bounded by ctx instead: a cluster
// member's JetStream is healthy only once a majority of the members are up,
// which takes as long as the operator takes to start them.
func StartUntil(ctx context.Context, cfg Config) (*server.Server, error) {
	name := cfg.Name
	if name == "" {
		name = DefaultServerName
	}
	opts := &server.Options{
		ServerName: name,
		Host:       cfg.Host,
		Port:       cfg.Port,
		NoLog:      true, // no logger of its own: it gets ours
		NoSigs:     true,
		JetStream:  true,
		StoreDir:   cfg.Dir,
		SyncAlways: cfg.SyncAlways,
	}
	if m := cfg.Monitor; m != nil {
		opts.HTTPHost, opts.HTTPPort = m.Host, m.Port
		if m.Port == 0 {
			opts.HTTPPort = server.RANDOM_PORT
		}
	}
	if c := cfg.Cluster; c != nil {
		opts.Cluster.Name = ClusterName
		opts.Cluster.Host = c.Host
		opts.Cluster.Port = c.Port
		opts.Routes = c.Routes
		opts.Cluster.Advertise = c.Advertise
		if c.NoCompression {
			opts.Cluster.Compression.Mode = server.CompressionOff
		}
	}
	if cfg.File != "" {
		var err error
		if opts, err = LoadFile(cfg.File, cfg); err != nil {
			return nil, err
		}
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	logger := &natsLogger{w: cfg.Log}
	ns.SetLogger(logger, false, false)
	ns.Start()
	fail := func(format string, args ...any) (*server.Server, error) {
		Stop(ns)
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

// Stop shuts ns down and waits until it has stopped.
func Stop(ns *server.Server) {
	ns.Shutdown()
	ns.WaitForShutdown()
}

// URL is the client URL of a running server.
func URL(ns *server.Server) string {
	return "nats://" + ns.Addr().String()
}

// natsLogger writes a nats-server's notices, warnings and errors to w (if
// w is not nil), one line each, and remembers the first fatal error (such as
// a port in use) so that Start can report it. Debug and trace are off.
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
