// Package profileledger gives every player profile (or trading account)
// exactly one live owner at a time, hands it from server to server in
// milliseconds, and records every change as an event in NATS JetStream, so
// that nothing acknowledged is lost, nothing is applied twice, and any
// profile can be audited and replayed to any version.
//
// It is the Go counterpart of Roblox's ProfileStore and ProfileService
// (session locking, template reconcile, auto-save as an option), built as an
// event-sourced ledger:
//
//   - a Store is a named collection of profiles of one Go type T;
//   - a Session is one process's exclusive ownership of one profile: a lease
//     in a NATS KV bucket says who holds it (liveness), and every append to
//     the profile's event subject is fenced on the last sequence the session
//     read, so a paused or partitioned old holder can never write after a
//     new one started (safety);
//   - Mutate and Apply append one event and return only after JetStream
//     acknowledged it; concurrent mutations of one session are committed
//     together in one message;
//   - snapshots make loading cheap; they are derived data, checksummed, and
//     never trusted over the log.
//
// A typical server:
//
//	st, err := profileledger.Open(ctx, js, "players", PlayerData{Coins: 100})
//	...
//	s, err := st.StartSession(ctx, "user:42") // hands over from another server if needed
//	...
//	err = s.Mutate(ctx, "quest.completed", func(p *PlayerData) error {
//		p.Coins += 50
//		return nil
//	})
//	...
//	<-s.Done() // another server took it over, or it was lost: stop using it
//
// On shutdown, Store.Close ends every session cleanly (the equivalent of
// ProfileStore's BindToClose).
//
// The NATS layout (stream, buckets, subjects) is documented in names.go and
// the README; the safety argument in DESIGN.md.
package profileledger
