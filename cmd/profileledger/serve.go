package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/profileledger/profileledger/internal/embedded"
)

// defaultDataDir is serve's JetStream store directory unless -data says
// otherwise: a folder in the working directory, where it is easy to find and
// to delete, and where nothing purges it behind the user's back as an
// operating system may purge a cache directory.
const defaultDataDir = "profileledger-data"

const serveDescription = `
Serve runs one NATS server with JetStream in this process, for development
and single-node use or as one member of a cluster, until it gets SIGINT or
SIGTERM; then it shuts the server down cleanly. Point profileledger.Open
(through nats.go) at the URL it prints.

Cluster: for a three-node cluster (R3 streams, profileledger.WithReplicas(3))
start three serves, each with its own -name, -listen, -data and -cluster
address, and all with the same -routes, which lists every member's -cluster
address (a member skips its own):

  profileledger serve -name n1 -listen 127.0.0.1:4222 -data n1 -cluster 127.0.0.1:6222 \
    -routes 127.0.0.1:6222,127.0.0.1:6223,127.0.0.1:6224

and n2 and n3 likewise on 4223/6223 and 4224/6224. A member prints its URL
once JetStream is ready, which takes a majority of the members; until then
it waits. Clients connect to all the members' URLs, comma separated.

Roles: -config loads a nats-server configuration file (users, accounts,
permissions, TLS, listen address, cluster), so that the roles of
"profileledger permissions" can be tried locally:

  port: 4222
  jetstream {}
  authorization {
    users: [
      # the entries these print, pasted in:
      #   profileledger permissions players -role holder -user game -user-password '$GAME_PASSWORD'
      #   profileledger permissions players -role admin -user ops -user-password '$OPS_PASSWORD'
    ]
  }

The file decides the listen address, name and cluster: -listen, -name,
-cluster, -routes and -monitor go into the file instead. -data is the
store directory unless the file sets jetstream's store_dir.

Durability: without -sync-always JetStream fsyncs on an interval (two
minutes by default), so a power loss can lose writes it had acknowledged
(Jepsen, NATS 2.12.1). For production use -sync-always and a three-node
cluster with R3 streams (profileledger.WithReplicas(3)).`

func (m *Main) runServe(ctx context.Context, args []string) int {
	fs := m.newFlagSet("serve", "[-listen host:port] [-data dir] [-sync-always] [-name name] [-cluster host:port -routes url,...] [-monitor host:port] [-config file] [-v]", serveDescription)
	listen := fs.String("listen", "127.0.0.1:4222", "client `address`; port 0 picks a free port")
	data := fs.String("data", defaultDataDir, "JetStream store `directory`, created if missing; relative to the working directory")
	syncAlways := fs.Bool("sync-always", false, "fsync every write before acknowledging it (slower; survives power loss)")
	name := fs.String("name", embedded.DefaultServerName, "server `name`; each member of a cluster needs its own, and the same one at every start")
	clusterAddr := fs.String("cluster", "", "cluster `address` (host:port) the other members' routes connect to; makes this server a cluster member")
	routes := fs.String("routes", "", "comma-separated route `URLs` of the cluster's members (nats-route://host:port or host:port), this one's own allowed; needs -cluster")
	verbose := fs.Bool("v", false, "log the NATS server's notices, warnings and errors to stderr")
	monitor := fs.String("monitor", "", "serve the NATS server's HTTP monitoring endpoints (/varz, /jsz, /healthz, ...) at `address` (host:port; port 0 picks a free port)")
	config := fs.String("config", "", "nats-server configuration `file` (users, permissions, TLS, listen address, ...); see Roles above")
	if code, ok := m.parse(fs, args); !ok {
		return code
	}
	if *config != "" {
		var clash string
		fs.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "listen", "name", "cluster", "routes", "monitor":
				clash = f.Name
			}
		})
		if clash != "" {
			return m.usageError(fs, "-%s with -config: set it in the configuration file", clash)
		}
	}
	host, port, err := parseHostPort(*listen, true)
	if err != nil {
		return m.usageError(fs, "-listen %q: %v", *listen, err)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if *name == "" || strings.ContainsAny(*name, " \t\n") {
		return m.usageError(fs, "-name %q: want a name without spaces", *name)
	}
	var cluster *embedded.Cluster
	if *clusterAddr != "" {
		cluster = &embedded.Cluster{}
		cluster.Host, cluster.Port, err = parseHostPort(*clusterAddr, false)
		if err != nil {
			return m.usageError(fs, "-cluster %q: %v", *clusterAddr, err)
		}
		if cluster.Routes, err = parseRoutes(*routes); err != nil {
			return m.usageError(fs, "-routes %q: %v", *routes, err)
		}
	} else if *routes != "" {
		return m.usageError(fs, "-routes needs -cluster: a member is reached at its own cluster address")
	}
	dir, err := filepath.Abs(*data)
	if err == nil {
		err = os.MkdirAll(dir, 0o750)
	}
	if err != nil {
		fmt.Fprintf(m.stderr, "profileledger serve: data directory: %v\n", err)
		return exitFail
	}
	cfg := embedded.Config{Name: *name, Host: host, Port: port, Dir: dir, SyncAlways: *syncAlways, Cluster: cluster, File: *config}
	if *monitor != "" {
		cfg.Monitor = &embedded.HostPort{}
		if cfg.Monitor.Host, cfg.Monitor.Port, err = parseHostPort(*monitor, true); err != nil {
			return m.usageError(fs, "-monitor %q: %v", *monitor, err)
		}
	}
	if *verbose {
		cfg.Log = m.stderr
	}
	var ns *server.Server
	if *config != "" {
		// The file may make the server a cluster member: wait as for one.
		ns, err = embedded.StartUntil(ctx, cfg)
		if err != nil && ctx.Err() != nil {
			fmt.Fprintln(m.stdout, "profileledger serve: stopped before JetStream was ready")
			return exitOK
		}
	} else if cluster == nil {
		ns, err = embedded.Start(cfg)
	} else {
		fmt.Fprintf(m.stdout, "profileledger serve: cluster member %q, routes at %s; waiting for a majority of the members\n",
			*name, net.JoinHostPort(cluster.Host, strconv.Itoa(cluster.Port)))
		ns, err = embedded.StartUntil(ctx, cfg)
		if err != nil && ctx.Err() != nil {
			fmt.Fprintln(m.stdout, "profileledger serve: stopped before JetStream was ready")
			return exitOK
		}
	}
	if err != nil {
		fmt.Fprintf(m.stderr, "profileledger serve: %v\n", err)
		return exitFail
	}
	fmt.Fprintf(m.stdout, "profileledger serve: NATS with JetStream at %s\n", embedded.URL(ns))
	fmt.Fprintf(m.stdout, "profileledger serve: data in %s (sync always: %v)\n", dir, *syncAlways)
	if cfg.Monitor != nil {
		fmt.Fprintf(m.stdout, "profileledger serve: monitoring at http://%s/\n", ns.MonitorAddr())
	}
	if !*syncAlways {
		fmt.Fprintln(m.stderr, "warning: without -sync-always JetStream fsyncs only every two minutes: a power loss can lose acknowledged writes (Jepsen, NATS 2.12.1). In production use -sync-always and an R3 cluster.")
	}
	<-ctx.Done()
	fmt.Fprintln(m.stdout, "profileledger serve: shutting down")
	embedded.Stop(ns)
	fmt.Fprintln(m.stdout, "profileledger serve: stopped")
	return exitOK
}

// parseHostPort splits a host:port flag value; an empty host means every
// interface. Port 0 is allowed only if zeroOK.
func parseHostPort(s string, zeroOK bool) (host string, port int, err error) {
	host, portText, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	port, err = strconv.Atoi(portText)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port")
	}
	if port == 0 && !zeroOK {
		return "", 0, fmt.Errorf("port 0: the other members must know the port")
	}
	if host == "" {
		host = "0.0.0.0"
	}
	return host, port, nil
}

// parseRoutes parses -routes: comma-separated nats-route://host:port (or
// nats://host:port, or host:port) URLs. An empty list is allowed: the other
// members may route to this one.
func parseRoutes(s string) ([]*url.URL, error) {
	var out []*url.URL
	for r := range strings.SplitSeq(s, ",") {
		r = strings.TrimSpace(r)
		if r == "" {
			continue
		}
		if !strings.Contains(r, "://") {
			r = "nats-route://" + r
		}
		u, err := url.Parse(r)
		if err != nil {
			return nil, err
		}
		if u.Scheme != "nats-route" && u.Scheme != "nats" {
			return nil, fmt.Errorf("%s: want nats-route://host:port", r)
		}
		if _, _, err := parseHostPort(u.Host, false); err != nil || u.Hostname() == "" {
			return nil, fmt.Errorf("%s: want nats-route://host:port", r)
		}
		out = append(out, u)
	}
	return out, nil
}
