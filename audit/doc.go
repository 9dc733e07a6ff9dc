// Package audit checks profiles against the invariants of DESIGN.md §2.
//
// Check takes one profile's records, as a ledger.Log read returned them,
// and checks the log: every message is an event; event ids are unique;
// epochs never decrease; each epoch is opened by its session's
// session.started fence (or, first in the log, by an erasure's pl.erased
// tombstone) and written by that session alone, so two holders' writes
// never interleave; nothing follows a session's session.ended or
// tombstone; an inbox message is handled at most once, in inbox order;
// the messages form one hash chain (RuleChain: each names the one before
// it by sequence and chain hash, see ledger.ChainHeader), so a deleted,
// altered, inserted or reordered message is reported where the chain
// breaks.
//
// CheckProfile adds the profile's stored snapshots and the fold: every event
// the fold takes in applies, and every stored snapshot (each revision of
// the bucket's history, not only the newest) decodes with a valid checksum,
// is stored under its own key, is not beyond the log's last sequence, and
// equals the fold of the log up to its version, epoch included (the fold
// starts afresh at an erasure's tombstone, as a load does). With WithInbox
// it also checks that every handled message was this profile's inbox
// message (RuleMessageInInbox). Both are pure: no I/O, so they can be
// table-tested and fuzzed without NATS. Each violation names the profile,
// the sequence and the Rule.
//
// Store audits a whole store on NATS: it lists the profiles from the
// subjects of the store's stream and the keys of its snapshot bucket, reads
// each profile's snapshots, its log and the stream's messages at the inbox
// sequences its handled messages name, and runs CheckProfile on them.
//
//	rep, err := audit.Store(ctx, js, "players", audit.WithProgress(1000, func(p audit.Progress) {
//		log.Printf("%d/%d profiles", p.Profiles, p.Total)
//	}))
//	if err != nil {
//		return err // could not read the store
//	}
//	for _, v := range rep.Violations {
//		fmt.Println(v) // profile "user:42" seq 1234: epochs-never-decrease: ...
//	}
//
// TakeDigest audits a store and returns its digest: every profile's chain
// head and a Merkle root over them, to keep elsewhere; VerifyDigest later
// proves that nothing the digest covers has changed since
// (RuleDigest).
//
// The command "profileledger audit <store>" runs Store and prints its
// report; -digest and -verify-digest FILE run TakeDigest and VerifyDigest.
package audit
