// Package snapshots stores profile snapshots: a profile's folded JSON
// document at some version, kept so that loading a profile does not replay
// its whole event log.
//
// A snapshot is derived data. The log is the truth; a snapshot only saves
// time. So a snapshot is never trusted: every stored value carries a format
// version and a CRC-32C checksum over its key, version, epoch and state, and
// Store.Load passes over any value that fails to decode, falling back to an
// older snapshot, or to none (the caller then replays the log from the
// start), and lists what it passed over in Loaded.Skipped so the caller can
// say so.
//
// Two stores behave identically (package snapshotstest is their shared
// conformance suite): Memory, in process memory, and KV, in a NATS
// JetStream KV bucket whose keys are the profile keys encoded by
// internal/keys, keeping the last few snapshots of each key as the KV
// history.
//
// The encoding (FormatVersion 1) is one line of JSON, a newline, and the
// state byte for byte:
//
//	{"format":1,"key":"user:123","version":42,"epoch":3,"size":11,"crc32c":"5a9aa434"}
//	{"coins":7}
//
// Typical use by a session:
//
//	st, err := snapshots.OpenKV(ctx, js, snapshots.KVConfig{Bucket: "PL_PLAYERS_SNAPSHOTS", Replicas: 3})
//	...
//	l, err := st.Load(ctx, "user:123", 0)
//	if err != nil {
//		return err // storage unreachable
//	}
//	for _, sk := range l.Skipped {
//		logger.Warn("corrupt snapshot skipped", "revision", sk.Revision, "err", sk.Err)
//	}
//	from := uint64(0)
//	if l.Found {
//		doc, from = l.Snapshot.State, l.Snapshot.Version
//	}
//	// replay the events after from, then later:
//	err = st.Save(ctx, snapshots.Snapshot{Key: "user:123", Version: v, Epoch: e, State: doc})
package snapshots
