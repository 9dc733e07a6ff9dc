package profileledger

import "errors"

// ErrImmutableLog is returned by Erase and EraseUser on a store whose
// event stream denies delete and purge (WithImmutableLog, or an
// administrator's choice): erasure removes events, which that stream
// refuses, and a tombstone alone would claim an erasure while the data
// stays. Nothing was appended; the profile is as it was.
var ErrImmutableLog = errors.New("profileledger: the store's log is immutable (its stream denies delete and purge): erasure cannot remove the profile's events")

// WithImmutableLog makes Open create the store's event stream with
// JetStream's DenyDelete and DenyPurge, so that not even an administrator
// of the stream can remove a message through the JetStream API (the
// stream itself can still be deleted: keep its digests elsewhere, see
// audit.TakeDigest). Open refuses (ErrStreamConfig) an existing stream
// that does not deny both.
//
// The price: Erase and EraseUser fail with ErrImmutableLog (a log that
// must keep everything cannot forget a person), and handled inbox messages
// stay in the stream, so an inbox's limit (WithInboxLimit) counts every
// message a profile was ever sent. Choose it for accounts whose history
// the law requires you to keep; keep personal data out of their events.
func WithImmutableLog() Option { return func(c *config) { c.immutableLog = true } }
