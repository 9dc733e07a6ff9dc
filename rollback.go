package profileledger

import (
	"context"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/profileledger/profileledger/ledger"
	"github.com/profileledger/profileledger/projector"
)

// Rollback turns the profile's data into its data as of version — the fold
// of its events up to and including version — by appending one event of
// type "pl.rollback" (ProfileStore's VersionQuery + SetAsync, ProfileService's
// OverwriteAsync). Nothing before it is rewritten: the event holds the ops
// from the current data to the old, names the version rolled back to (Meta
// "pl.to") and the reason (Meta "reason"), with the caller's metadata
// (WithMeta). It is committed like a mutation: fenced, validated
// (WithValidate), acknowledged only once in the log.
//
// Fields a newer server wrote are rolled back as well: the data as of
// version is the whole document then. If the store has migrations that
// version predates, the old data is migrated before it is applied, so the
// profile keeps the current shape.
//
// Rolling back past a trade undoes this profile's side only: the other
// profile keeps what the trade gave it and took from it (the trades
// command marks such a trade). Undo the other side with a rollback of its
// own, or a compensating mutation, if that is what is meant.
//
// version must be between 1 and the session's Version. reason must be
// non-empty valid UTF-8 of at most 1 KiB. Errors: ErrInvalidInput, and
// those of Mutate.
func (s *Session[T]) Rollback(ctx context.Context, version uint64, reason string) error {
	switch cur := s.Version(); {
	case reason == "" || len(reason) > ledger.MaxMetaValueLen || !utf8.ValidString(reason):
		return fmt.Errorf("%w: rollback of %q needs a reason of 1 to %d bytes of UTF-8", ErrInvalidInput, s.key, ledger.MaxMetaValueLen)
	case version == 0 || version > cur:
		return fmt.Errorf("%w: rollback of %q to version %d: its versions run from 1 to %d", ErrInvalidInput, s.key, version, cur)
	}
	meta, err := callerMeta(ctx, 2)
	if err != nil {
		return err
	}
	l, err := s.st.load(ctx, s.key, s.token, version, time.Time{})
	if err != nil {
		return err
	}
	if l.version == 0 {
		return fmt.Errorf("%w: rollback of %q to version %d: the profile has no event at or before it", ErrInvalidInput, s.key, version)
	}
	target := l.doc
	if target == nil {
		if target, err = projector.Decode(s.st.template); err != nil {
			return err
		}
	}
	if target, err = s.st.migrateTo(s.key, target, l.ps.migrated); err != nil {
		return err
	}
	meta[ledger.MetaRollbackTo] = strconv.FormatUint(l.version, 10)
	meta[MetaReason] = reason
	return s.submit(ctx, &request[T]{ctx: ctx, typ: ledger.TypeRollback, target: target, meta: meta, lib: true})
}
