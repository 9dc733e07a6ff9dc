package audit

import (
	"fmt"

	"github.com/profileledger/profileledger/ledger"
)

// RuleChain: the profile's messages form one hash chain (see ledger's
// ChainHeader). Every message names the message before it on the subject
// by sequence and chain hash; the first names sequence 0 (genesis), or,
// when it is an erasure's tombstone, the head of the chain the erasure
// removed. Messages written before the chain existed carry no link: they
// may form a prefix (reported by nothing), but an unlinked message after a
// linked one breaks the chain. Seq is the message where the chain breaks:
//
//   - a deleted message: the next message names a sequence the log no
//     longer holds (the detail names it);
//   - an altered message, re-published: the message after the original
//     names a sequence no longer there, and the copy names a predecessor
//     that is not the message before it, or names it with another hash;
//   - an inserted message: it has no link (a naive writer), or the message
//     after it names the insert's predecessor, not the insert;
//   - reordered messages: a message names a predecessor that is not the
//     message before it.
//
// An insert by a writer who computes the link correctly and is the last
// message keeps the chain intact: the chain is not keyed. The epoch and
// session rules still catch one that does not claim the live session's
// identity; only signatures would catch the rest (not built: see the
// README's "Signed events"). A deleted last message
// leaves no gap either: a digest taken before (VerifyDigest) catches it.
const RuleChain Rule = "hash-chain-intact"

// checkChain returns the RuleChain violations of one profile's records.
func checkChain(key string, recs []ledger.Record) []Violation {
	var out []Violation
	add := func(seq uint64, format string, args ...any) {
		out = append(out, Violation{Key: key, Seq: seq, Rule: RuleChain, Detail: fmt.Sprintf(format, args...)})
	}
	var prev ledger.Head // the message before, in the log as it is
	first, chained := true, false
	for i, r := range recs {
		if i > 0 && r.Seq == recs[i-1].Seq {
			continue // the other events of a group: one message, one link
		}
		here := r.Head()
		wasFirst := first
		first = false
		if r.Link == "" {
			if chained {
				add(r.Seq, "the message has no chain link, after linked messages: written outside profileledger (inserted), or its link stripped")
			}
			prev = here
			continue
		}
		chained = true
		link, err := ledger.ParseHead(r.Link)
		if err != nil {
			add(r.Seq, "%v", err)
			prev = here
			continue
		}
		switch {
		case wasFirst && link.Seq == 0:
			if link.Hash != ([32]byte{}) {
				add(r.Seq, "the first message's link names sequence 0 with a non-zero hash")
			}
		case wasFirst && r.Err == nil && r.Event.Type == ledger.TypeErased && link.Seq < r.Seq:
			// The erasure's tombstone commits to the head of the chain it
			// erased; that prefix was purged by design.
		case wasFirst && r.Err == nil && r.Event.Type == ledger.TypeErased:
			add(r.Seq, "the tombstone links to sequence %d, which is not before it: forged", link.Seq)
		case wasFirst:
			add(r.Seq, "the message links to sequence %d, which the log no longer holds: the messages before it were deleted", link.Seq)
		case link.Seq >= r.Seq:
			add(r.Seq, "the message links to sequence %d, which is not before it: forged, or re-published from elsewhere", link.Seq)
		case link.Seq == prev.Seq && link.Hash != prev.Hash:
			add(r.Seq, "the message links to sequence %d with hash %x, but the message there hashes to %x: it was altered", link.Seq, link.Hash[:8], prev.Hash[:8])
		case link.Seq > prev.Seq:
			add(r.Seq, "the message links to sequence %d, which the log no longer holds (the message before it is %d): deleted", link.Seq, prev.Seq)
		case link.Seq < prev.Seq:
			add(r.Seq, "the message links to sequence %d, but the message before it is %d: inserted, re-published or reordered", link.Seq, prev.Seq)
		}
		prev = here
	}
	return out
}
