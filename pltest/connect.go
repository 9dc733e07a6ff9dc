package pltest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger"
)

// StoreName is the name of the store that Store, OpenStore and Workload
// open.
const StoreName = "test"

// closeTimeout bounds a Store's Close at cleanup.
const closeTimeout = 10 * time.Second

// Connect connects to url (one URL or a comma-separated list) and returns
// its JetStream context; a t.Cleanup closes the connection (js.Conn() is
// the connection). By default the connection is named after the test and
// reconnects forever every 50 ms, so it survives Server.Restart and
// Server.Kill; opts are applied after these defaults.
func Connect(t testing.TB, url string, opts ...nats.Option) jetstream.JetStream {
	t.Helper()
	all := append([]nats.Option{
		nats.Name(t.Name()),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(50 * time.Millisecond),
	}, opts...)
	nc, err := nats.Connect(url, all...)
	if err != nil {
		t.Fatalf("pltest: connect to %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("pltest: jetstream: %v", err)
	}
	return js
}

// OpenStore is one game server: it connects to url on a connection of its
// own (Connect) and opens the store StoreName with template and opts. A
// t.Cleanup closes the store — ending its sessions — before the connection
// closes, and fails the test if Close fails.
func OpenStore[T any](t testing.TB, url string, template T, opts ...profileledger.Option) *profileledger.Store[T] {
	t.Helper()
	js := Connect(t, url)
	return open(t, js, template, opts)
}

func open[T any](t testing.TB, js jetstream.JetStream, template T, opts []profileledger.Option) *profileledger.Store[T] {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	st, err := profileledger.Open(ctx, js, StoreName, template, opts...)
	if err != nil {
		t.Fatalf("pltest: open store %s: %v", StoreName, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		if err := st.Close(ctx); err != nil {
			t.Errorf("pltest: close store %s: %v", StoreName, err)
		}
	})
	return st
}

// Store is the one-liner: a fresh server (Run), a connection to it and the
// store StoreName opened on it with template and opts. At cleanup the store
// is closed and then, unless the test has failed already, audited: a
// violation of the log's invariants fails the test (see Audit).
func Store[T any](t testing.TB, template T, opts ...profileledger.Option) *profileledger.Store[T] {
	t.Helper()
	srv := Run(t)
	js := Connect(t, srv.URL())
	t.Cleanup(func() {
		if !t.Failed() {
			Audit(t, js, StoreName)
		}
	})
	return open(t, js, template, opts)
}
