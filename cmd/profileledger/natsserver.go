package main

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// natsConfig configures an embedded nats-server with JetStream.
type natsConfig struct {
	host       string
	port       int    // server.RANDOM_PORT for any free port
	dir        string // JetStream store directory
	syncAlways bool   // fsync every write before acknowledging it
	log        io.Writer
}

// natsReadyTimeout bounds the wait for a started server to take clients and
// for JetStream to be healthy.
const natsReadyTimeout = 10 * time.Second

// startNATS starts an embedded nats-server with JetStream and returns it once
// JetStream is healthy. The caller stops it with stopNATS. The server does
// not handle signals; its logs go to cfg.log if it is set, nowhere otherwise.
func startNATS(cfg natsConfig) (*server.Server, error) {
	opts := &server.Options{
		ServerName: "profileledger",
		Host:       cfg.host,
		Port:       cfg.port,
		NoLog:      true, // no logger of its own: it gets ours
		NoSigs:     true,
		JetStream:  true,
		StoreDir:   cfg.dir,
		SyncAlways: cfg.syncAlways,
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	logger := &natsLogger{w: cfg.log}
	ns.SetLogger(logger, false, false)
	ns.Start()
	deadline := time.Now().Add(natsReadyTimeout)
	for !ns.ReadyForConnections(25 * time.Millisecond) {
		if fatal := logger.fatalError(); fatal != "" || time.Now().After(deadline) {
			stopNATS(ns)
			if fatal == "" {
				fatal = fmt.Sprintf("not ready for connections after %v", natsReadyTimeout)
			}
			return nil, fmt.Errorf("nats server: %s", fatal)
		}
	}
	for {
		h := ns.Healthz(nil)
		if h.Status == "ok" && h.Error == "" {
			return ns, nil
		}
		if time.Now().After(deadline) {
			stopNATS(ns)
			return nil, fmt.Errorf("nats server: JetStream not healthy after %v: %s", natsReadyTimeout, h.Error)
		}
		time.Sleep(10 * time.Millisecond)
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
