package profileledger

import (
	"context"
	"fmt"
	"maps"

	"github.com/profileledger/profileledger/ledger"
)

// Metadata keys with a conventional meaning (any other key is welcome too).
const (
	// MetaActor names who caused a change: a user, an operator, a service.
	MetaActor = "actor"
	// MetaReason says why.
	MetaReason = "reason"
	// MetaRequestID ties a change to the request that caused it.
	MetaRequestID = "request_id"
)

type metaKey struct{}

// WithMeta returns a copy of ctx that carries meta: who and why. Every event
// caused by a call made with that context — Mutate, Apply, Trade, Rollback,
// a handled message, an erasure — records it in Event.Meta, and History and
// the operator commands show it. Metadata already in ctx is kept; meta's
// entries win. WithMeta does not check meta: the call that uses the context
// does, and refuses bad metadata with an error matching ErrInvalidInput
// (more than 32 keys, a key over 64 bytes or a value over 1 KiB, over 4 KiB
// in all, invalid UTF-8, or a key profileledger writes itself: node, prev,
// reconcile, trade, with, or any key starting "pl.").
//
//	ctx = profileledger.WithMeta(ctx, map[string]string{
//		profileledger.MetaActor:  "support:alice",
//		profileledger.MetaReason: "ticket 4411: refund",
//	})
func WithMeta(ctx context.Context, meta map[string]string) context.Context {
	merged := maps.Clone(MetaFrom(ctx))
	if merged == nil {
		merged = make(map[string]string, len(meta))
	}
	maps.Copy(merged, meta)
	return context.WithValue(ctx, metaKey{}, merged)
}

// MetaFrom returns the metadata WithMeta put in ctx (nil if none). The map
// must not be changed.
func MetaFrom(ctx context.Context) map[string]string {
	m, _ := ctx.Value(metaKey{}).(map[string]string)
	return m
}

// callerMeta returns a checked copy of ctx's metadata, with room for the
// library's own keys (extra).
func callerMeta(ctx context.Context, extra int) (map[string]string, error) {
	m := MetaFrom(ctx)
	if len(m) == 0 {
		if extra == 0 {
			return nil, nil
		}
		return make(map[string]string, extra), nil
	}
	if err := ledger.CheckCallerMeta(m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidInput, err)
	}
	out := make(map[string]string, len(m)+extra)
	maps.Copy(out, m)
	return out, nil
}
