package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/profileledger/profileledger/web"
)

const uiDescription = `
Serves the investigator's web page for a store (package web): the store's
counts and its last audit (with a button to run it), a search box (a key,
a user id, or an item value to trace), each profile's timeline of events
with every event's ops, who and why and diff, its data at any version,
blame of any field and a live mode, and each item's trace drawn as a
graph, dupes in red. Every key, sequence, trade id and item is a link, and
every page's URL can be pasted into a ticket.

It only reads. It listens on 127.0.0.1 (-listen); a non-loopback address
needs -allow-remote and -ui-token or -basic-auth (user:password; the
password may also come from $PROFILELEDGER_UI_PASSWORD). With -ui-token, open
the printed URL once (?token=... sets a cookie), or send
"Authorization: Bearer <token>". Ctrl-C stops it.`

func (m *Main) runUI(ctx context.Context, args []string) int {
	fs := m.newFlagSet("ui", "[flags] <store>", uiDescription)
	nf := addNATSFlags(fs, 10*time.Second)
	listen := fs.String("listen", "127.0.0.1:8428", "`address` to serve on (port 0 picks a free one)")
	remote := fs.Bool("allow-remote", false, "allow a non-loopback -listen address (needs -ui-token or -basic-auth)")
	token := fs.String("ui-token", "", "require this bearer `token` of every request to the page (default $PROFILELEDGER_UI_TOKEN; -token is NATS's)")
	basic := fs.String("basic-auth", "", "require HTTP basic authentication as `user:password`")
	pos, code, ok := m.parseArgs(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return m.usageError(fs, "want one store, got %d arguments", len(pos))
	}
	if err := nf.check(); err != nil {
		return m.usageError(fs, "%v", err)
	}
	auth := web.Auth{Token: orEnv(*token, "PROFILELEDGER_UI_TOKEN")}
	if *basic != "" {
		var err error
		if auth.User, auth.Password, err = web.ParseBasicAuth(*basic, os.Getenv("PROFILELEDGER_UI_PASSWORD")); err != nil {
			return m.usageError(fs, "-basic-auth: %v", err)
		}
	}
	if err := web.CheckListen(*listen, *remote, auth); err != nil {
		return m.usageError(fs, "%v", err)
	}
	octx, cancel := context.WithTimeout(ctx, nf.timeout) // -timeout bounds opening the store
	iv, err := openInvestigation(octx, nf, "ui", pos[0])
	cancel()
	if err != nil {
		return m.fail("ui", err)
	}
	defer iv.close()
	srv, err := web.New(web.Config{Store: pos[0], JS: iv.js, Source: iv.src, Auth: auth, Remote: *remote,
		Log: slog.New(slog.NewTextHandler(m.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return m.fail("ui", err)
	}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return m.fail("ui", err)
	}
	fmt.Fprintf(m.stdout, "profileledger ui: store %s at %s (Ctrl-C stops)\n", pos[0], web.BaseURL(l.Addr(), auth))
	if err := web.Run(ctx, l, srv); err != nil && !errors.Is(err, context.Canceled) {
		return m.fail("ui", err)
	}
	return exitOK
}
