package projections

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/internal/keys"
)

// Balance is one profile's balance as stored in the bucket: JSON
// {"key":..., "balance":..., "version":...}, readable by any NATS client
// (a web page through a KV watch, `nats kv get`).
type Balance struct {
	Key     string `json:"key"`
	Balance int64  `json:"balance"`
	// Version is the profile's version (stream sequence) the balance is
	// as of.
	Version uint64 `json:"version"`
}

// Balances writes every profile's balance to a KV bucket, keyed by the
// profile key's subject token (internal/keys: reversible, never a
// wildcard). Each write is a compare-and-set that keeps the newer version:
// a redelivered or late event never puts an older balance back, so the
// bucket's effect is exactly once. The bucket persists: its projection
// resumes from its checkpoint.
type Balances[T any] struct {
	kv      jetstream.KeyValue
	balance func(*T) int64
}

// OpenBalances creates or opens the bucket and returns the projection's
// handler state; balance reads a profile's balance from its data.
func OpenBalances[T any](ctx context.Context, js jetstream.JetStream, bucket string, balance func(*T) int64) (*Balances[T], error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bucket, Description: "profileledger balances projection", History: 1})
	if err != nil {
		return nil, fmt.Errorf("projections: balances bucket %s: %w", bucket, err)
	}
	return &Balances[T]{kv: kv, balance: balance}, nil
}

// Handle is the balances' profileledger.Handler: one write per message
// (its last event), as of the message's sequence.
func (b *Balances[T]) Handle(ctx context.Context, c *profileledger.Change[T]) error {
	if !c.LastInMessage {
		return nil
	}
	after, err := c.After()
	if err != nil {
		return err
	}
	token, err := keys.Encode(c.Key)
	if err != nil {
		return err
	}
	val, _ := json.Marshal(Balance{Key: c.Key, Balance: b.balance(&after), Version: c.Event.Seq})
	for {
		e, err := b.kv.Get(ctx, token)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			_, err = b.kv.Create(ctx, token, val)
		case err != nil:
			return err
		default:
			var have Balance
			if json.Unmarshal(e.Value(), &have) == nil && have.Version >= c.Event.Seq {
				return nil // as new or newer already
			}
			_, err = b.kv.Update(ctx, token, val, e.Revision())
		}
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue // another writer got in first: look again
		}
		return err
	}
}

// Get reads a profile's balance from the bucket; ok is false if it has
// none yet.
func (b *Balances[T]) Get(ctx context.Context, key string) (bal Balance, ok bool, err error) {
	token, err := keys.Encode(key)
	if err != nil {
		return Balance{}, false, err
	}
	e, err := b.kv.Get(ctx, token)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Balance{}, false, nil
	}
	if err != nil {
		return Balance{}, false, err
	}
	if err := json.Unmarshal(e.Value(), &bal); err != nil {
		return Balance{}, false, fmt.Errorf("projections: balance of %q: %w", key, err)
	}
	return bal, true, nil
}

// All reads every balance in the bucket, by profile key.
func (b *Balances[T]) All(ctx context.Context) (map[string]Balance, error) {
	out := map[string]Balance{}
	lister, err := b.kv.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	for k := range lister.Keys() {
		e, err := b.kv.Get(ctx, k)
		if err != nil {
			return nil, err
		}
		var bal Balance
		if err := json.Unmarshal(e.Value(), &bal); err != nil {
			return nil, fmt.Errorf("projections: balance %s: %w", k, err)
		}
		out[bal.Key] = bal
	}
	return out, nil
}
