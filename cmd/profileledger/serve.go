package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/nats-io/nats-server/v2/server"
)

// defaultDataDir is serve's JetStream store directory unless -data says
// otherwise: a folder in the working directory, where it is easy to find and
// to delete, and where nothing purges it behind the user's back as an
// operating system may purge a cache directory.
const defaultDataDir = "profileledger-data"

const serveDescription = `
Serve runs one NATS server with JetStream in this process, for development
and single-node use, until it gets SIGINT or SIGTERM; then it shuts the
server down cleanly. Point profileledger.Open (through nats.go) at the URL it
prints.

Durability: without -sync-always JetStream fsyncs on an interval (two
minutes by default), so a power loss can lose writes it had acknowledged
(Jepsen, NATS 2.12.1). For production use -sync-always and a three-node
cluster with R3 streams (profileledger.WithReplicas(3)).`

func (m *Main) runServe(ctx context.Context, args []string) int {
	fs := m.newFlagSet("serve", "[-listen host:port] [-data dir] [-sync-always] [-v]", serveDescription)
	listen := fs.String("listen", "127.0.0.1:4222", "client `address`; port 0 picks a free port")
	data := fs.String("data", defaultDataDir, "JetStream store `directory`, created if missing; relative to the working directory")
	syncAlways := fs.Bool("sync-always", false, "fsync every write before acknowledging it (slower; survives power loss)")
	verbose := fs.Bool("v", false, "log the NATS server's notices, warnings and errors to stderr")
	if code, ok := m.parse(fs, args); !ok {
		return code
	}
	host, portText, err := net.SplitHostPort(*listen)
	if err != nil {
		return m.usageError(fs, "-listen %q: %v", *listen, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 0 || port > 65535 {
		return m.usageError(fs, "-listen %q: bad port", *listen)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if host == "" {
		host = "0.0.0.0"
	}
	dir, err := filepath.Abs(*data)
	if err == nil {
		err = os.MkdirAll(dir, 0o750)
	}
	if err != nil {
		fmt.Fprintf(m.stderr, "profileledger serve: data directory: %v\n", err)
		return exitFail
	}
	cfg := natsConfig{host: host, port: port, dir: dir, syncAlways: *syncAlways}
	if *verbose {
		cfg.log = m.stderr
	}
	ns, err := startNATS(cfg)
	if err != nil {
		fmt.Fprintf(m.stderr, "profileledger serve: %v\n", err)
		return exitFail
	}
	fmt.Fprintf(m.stdout, "profileledger serve: NATS with JetStream at %s\n", natsURL(ns))
	fmt.Fprintf(m.stdout, "profileledger serve: data in %s (sync always: %v)\n", dir, *syncAlways)
	if !*syncAlways {
		fmt.Fprintln(m.stderr, "warning: without -sync-always JetStream fsyncs only every two minutes: a power loss can lose acknowledged writes (Jepsen, NATS 2.12.1). In production use -sync-always and an R3 cluster.")
	}
	<-ctx.Done()
	fmt.Fprintln(m.stdout, "profileledger serve: shutting down")
	stopNATS(ns)
	fmt.Fprintln(m.stdout, "profileledger serve: stopped")
	return exitOK
}
