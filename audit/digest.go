package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger/ledger"
)

// RuleDigest: every profile head a digest recorded is still in the log,
// with the same chain hash (so, the chain being intact, nothing at or
// before it changed), or the log starts with an erasure's tombstone that
// names a head at or after it (the erasure is on the record). Checked by
// VerifyDigest only. Seq is the recorded head's sequence.
const RuleDigest Rule = "digest-head-in-log"

// ProfileHead is one profile's chain head: the sequence and chain hash of
// the last message on its event subject.
type ProfileHead struct {
	Key  string `json:"key"`
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"` // hex sha256, as ledger.ChainHash computes it
}

// Digest is a store's state at one moment, small enough to keep
// elsewhere (another system, a ticket, a signed mail): every profile's
// chain head and a Merkle root over them. Since each head commits to its
// whole chain, a later VerifyDigest proves that nothing the digest covers
// has changed since.
type Digest struct {
	Store string    `json:"store"`
	Time  time.Time `json:"time"`
	// Root is the hex Merkle root (RFC 6962's tree hash) over the heads in
	// order of key: leaf = sha256(0x00 || key || 0x00 || seq as 8 bytes
	// big-endian || hash), node = sha256(0x01 || left || right).
	Root string `json:"root"`
	// Heads are sorted by key; profiles without a log have none.
	Heads []ProfileHead `json:"heads"`
}

// MerkleRoot returns the hex Merkle root over heads, which must be sorted
// by key.
func MerkleRoot(heads []ProfileHead) (string, error) {
	leaves := make([][32]byte, len(heads))
	for i, h := range heads {
		raw, err := hex.DecodeString(h.Hash)
		if err != nil || len(raw) != 32 {
			return "", fmt.Errorf("audit: head of %q: hash %q is not 64 hex digits", h.Key, h.Hash)
		}
		var b bytes.Buffer
		b.WriteByte(0)
		b.WriteString(h.Key)
		b.WriteByte(0)
		b.Write(binary.BigEndian.AppendUint64(nil, h.Seq))
		b.Write(raw)
		leaves[i] = sha256.Sum256(b.Bytes())
	}
	root := treeHash(leaves)
	return hex.EncodeToString(root[:]), nil
}

// treeHash is RFC 6962's MTH over leaf hashes.
func treeHash(leaves [][32]byte) [32]byte {
	switch len(leaves) {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return leaves[0]
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	l, r := treeHash(leaves[:k]), treeHash(leaves[k:])
	return sha256.Sum256(append(append([]byte{1}, l[:]...), r[:]...))
}

// Check reports whether d is well formed: heads sorted by key, each once,
// and Root their Merkle root. A digest edited by hand fails it.
func (d *Digest) Check() error {
	if !slices.IsSortedFunc(d.Heads, func(a, b ProfileHead) int { return strings.Compare(a.Key, b.Key) }) {
		return fmt.Errorf("audit: digest of %s: heads are not sorted by key", d.Store)
	}
	for i := 1; i < len(d.Heads); i++ {
		if d.Heads[i].Key == d.Heads[i-1].Key {
			return fmt.Errorf("audit: digest of %s: profile %q has two heads", d.Store, d.Heads[i].Key)
		}
	}
	root, err := MerkleRoot(d.Heads)
	if err != nil {
		return err
	}
	if root != d.Root {
		return fmt.Errorf("audit: digest of %s: root %s is not the Merkle root of its heads (%s): the digest was changed", d.Store, d.Root, root)
	}
	return nil
}

// TakeDigest audits the store as Store does and returns its digest with
// the report. A digest of a store whose audit found violations records
// the log as it is, violations included: look at the report first.
func TakeDigest(ctx context.Context, js jetstream.JetStream, store string, opts ...Option) (*Digest, *Report, error) {
	d := &Digest{Store: store, Time: time.Now().UTC(), Heads: []ProfileHead{}}
	opts = append(opts, func(c *config) {
		c.visit = func(key string, recs []ledger.Record) []Violation {
			if len(recs) > 0 {
				last := recs[len(recs)-1]
				d.Heads = append(d.Heads, ProfileHead{Key: key, Seq: last.Seq, Hash: hex.EncodeToString(last.Hash[:])})
			}
			return nil
		}
	})
	rep, err := Store(ctx, js, store, opts...)
	if err != nil {
		return nil, rep, err
	}
	slices.SortFunc(d.Heads, func(a, b ProfileHead) int { return strings.Compare(a.Key, b.Key) })
	if d.Root, err = MerkleRoot(d.Heads); err != nil {
		return nil, rep, err
	}
	return d, rep, nil
}

// VerifyDigest audits d's store as Store does and also checks RuleDigest
// for every head d recorded: the report's violations then name every
// profile whose log changed at or before its recorded head (RuleDigest)
// or whose chain is broken anywhere (RuleChain, and the other rules). A
// clean report proves that nothing the digest covers changed since, and
// that what came after extends it. d must pass Check (it is checked first).
func VerifyDigest(ctx context.Context, js jetstream.JetStream, d *Digest, opts ...Option) (*Report, error) {
	if err := d.Check(); err != nil {
		return &Report{Store: d.Store, Violations: []Violation{}}, err
	}
	want := make(map[string]ProfileHead, len(d.Heads))
	for _, h := range d.Heads {
		want[h.Key] = h
	}
	opts = append(opts, func(c *config) {
		c.visit = func(key string, recs []ledger.Record) []Violation {
			h, ok := want[key]
			if !ok {
				return nil // a profile created since
			}
			delete(want, key)
			if v, bad := checkHead(h, recs); bad {
				return []Violation{v}
			}
			return nil
		}
	})
	rep, err := Store(ctx, js, d.Store, opts...)
	if err != nil {
		return rep, err
	}
	gone := make([]ProfileHead, 0, len(want))
	for _, h := range want {
		gone = append(gone, h)
	}
	slices.SortFunc(gone, func(a, b ProfileHead) int { return strings.Compare(a.Key, b.Key) })
	for _, h := range gone {
		rep.Violations = append(rep.Violations, Violation{Key: h.Key, Seq: h.Seq, Rule: RuleDigest,
			Detail: fmt.Sprintf("the digest of %s holds this profile at sequence %d; its log is gone", d.Time.Format(time.RFC3339), h.Seq)})
	}
	return rep, nil
}

// checkHead checks one recorded head against the profile's log now.
func checkHead(h ProfileHead, recs []ledger.Record) (Violation, bool) {
	bad := func(format string, args ...any) (Violation, bool) {
		return Violation{Key: h.Key, Seq: h.Seq, Rule: RuleDigest, Detail: fmt.Sprintf(format, args...)}, true
	}
	for _, r := range recs {
		if r.Seq != h.Seq {
			continue
		}
		if got := hex.EncodeToString(r.Hash[:]); got != h.Hash {
			return bad("the message at sequence %d hashes to %.16s..., the digest recorded %.16s...: it or a message before it changed", h.Seq, got, h.Hash)
		}
		return Violation{}, false
	}
	if len(recs) > 0 && recs[0].Err == nil && recs[0].Event.Type == ledger.TypeErased && recs[0].Link != "" {
		link, err := ledger.ParseHead(recs[0].Link)
		switch {
		case err != nil || link.Seq >= recs[0].Seq:
			// A forged tombstone: the chain rule reports it too.
		case link.Seq == h.Seq && hex.EncodeToString(link.Hash[:]) != h.Hash:
			return bad("the tombstone at sequence %d names the recorded head %d with another hash: the chain it claims to erase is not the one the digest recorded", recs[0].Seq, h.Seq)
		case link.Seq >= h.Seq:
			return Violation{}, false // erased since; the tombstone names the erased head
		}
	}
	return bad("the message at sequence %d that the digest recorded is no longer in the log", h.Seq)
}

// ReadDigest reads a digest from a file as TakeDigest's JSON (or the
// audit command's -json output, which holds it under "digest") and checks
// it (Digest.Check).
func ReadDigest(path string) (*Digest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var wrapped struct {
		Digest *Digest `json:"digest"`
	}
	var d Digest
	if err := json.Unmarshal(data, &wrapped); err == nil && wrapped.Digest != nil {
		d = *wrapped.Digest
	} else if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("%s is not a digest: %w", path, err)
	}
	if d.Store == "" || d.Root == "" {
		return nil, fmt.Errorf("%s is not a digest: no store or root", path)
	}
	if err := d.Check(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &d, nil
}
