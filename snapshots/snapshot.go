package snapshots

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"slices"

	"github.com/profileledger/profileledger/internal/keys"
)

// FormatVersion is the version of the snapshot encoding Encode writes and
// Decode reads. Decode rejects every other version as corrupt: a snapshot is
// derived data, and the log can always rebuild it.
const FormatVersion = 1

var (
	// ErrCorrupt is wrapped by Decode, and listed in Loaded.Skipped, for
	// stored bytes that are not a valid snapshot: unknown format version,
	// malformed header, truncated state, checksum mismatch, or a snapshot
	// stored under another key than its own.
	ErrCorrupt = errors.New("snapshots: corrupt snapshot")

	// ErrTooLarge is wrapped by Store.Save when the encoded snapshot is
	// larger than the store's maximum value size. Nothing is written.
	ErrTooLarge = errors.New("snapshots: snapshot too large")
)

// Snapshot is a profile's folded document at some version.
type Snapshot struct {
	Key     string          // the profile key, plain (not encoded)
	Version uint64          // stream sequence of the last event folded in; at least 1
	Epoch   uint64          // epoch of that event
	Session string          // the session that wrote Epoch ("" if unknown)
	State   json.RawMessage // the folded JSON document, stored byte for byte
	// Meta is the profile's state beside its document that the fold keeps
	// (how many migrations it has had, ...), opaque to this package; nil
	// for none. It is covered by the checksum.
	Meta map[string]string
}

// header is the first line of an encoded snapshot.
type header struct {
	Format  int               `json:"format"`
	Key     string            `json:"key"`
	Version uint64            `json:"version"`
	Epoch   uint64            `json:"epoch"`
	Session string            `json:"session,omitempty"`
	Meta    map[string]string `json:"meta,omitempty"`
	Size    int               `json:"size"`   // length of the state in bytes
	CRC32C  string            `json:"crc32c"` // checksum(...), 8 lowercase hex digits
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checksum is the CRC-32C of every field of s and the format version, so
// that a change to any of them, in the header or the state, is detected.
func checksum(format int, s Snapshot) uint32 {
	b := make([]byte, 0, 4*binary.MaxVarintLen64+len(s.Key))
	b = binary.AppendUvarint(b, uint64(format))
	b = binary.AppendUvarint(b, uint64(len(s.Key)))
	b = append(b, s.Key...)
	b = binary.AppendUvarint(b, s.Version)
	b = binary.AppendUvarint(b, s.Epoch)
	b = binary.AppendUvarint(b, uint64(len(s.Session)))
	b = append(b, s.Session...)
	// Meta, when there is any, in key order (a snapshot without it sums as
	// snapshots did before it existed).
	for _, k := range slices.Sorted(maps.Keys(s.Meta)) {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		b = binary.AppendUvarint(b, uint64(len(s.Meta[k])))
		b = append(b, s.Meta[k]...)
	}
	return crc32.Update(crc32.Checksum(b, castagnoli), castagnoli, s.State)
}

// Encode returns the stored form of s: one line of JSON naming the format
// version, key, version, epoch, state size and CRC-32C checksum, then a
// newline, then the state exactly as given. It fails if the key is not a
// valid profile key (the error wraps keys.ErrInvalid), if the version is 0,
// or if the state is not valid JSON.
func Encode(s Snapshot) ([]byte, error) {
	if err := keys.Check(s.Key); err != nil {
		return nil, fmt.Errorf("snapshots: %w", err)
	}
	if s.Version == 0 {
		return nil, fmt.Errorf("snapshots: snapshot of %q has version 0; versions start at 1", s.Key)
	}
	if !json.Valid(s.State) {
		return nil, fmt.Errorf("snapshots: state of %q at version %d is not valid JSON", s.Key, s.Version)
	}
	metaLen := 0
	for k, v := range s.Meta {
		metaLen += len(k) + len(v)
	}
	if metaLen > MaxMetaLen {
		return nil, fmt.Errorf("snapshots: meta of %q at version %d is %d bytes, over the limit of %d", s.Key, s.Version, metaLen, MaxMetaLen)
	}
	h, err := json.Marshal(header{
		Format:  FormatVersion,
		Key:     s.Key,
		Version: s.Version,
		Epoch:   s.Epoch,
		Session: s.Session,
		Meta:    s.Meta,
		Size:    len(s.State),
		CRC32C:  fmt.Sprintf("%08x", checksum(FormatVersion, s)),
	})
	if err != nil {
		return nil, fmt.Errorf("snapshots: encode header: %w", err)
	}
	out := make([]byte, 0, len(h)+1+len(s.State))
	out = append(out, h...)
	out = append(out, '\n')
	return append(out, s.State...), nil
}

// maxHeaderLen bounds the header line: a key of MaxKeyLen bytes, each
// escaped by JSON as \u00XX, the meta (MaxMetaLen bytes, escaped likewise),
// plus the other fields.
const maxHeaderLen = 6*keys.MaxKeyLen + 6*MaxMetaLen + 256

// MaxMetaLen bounds a snapshot's Meta: its keys and values together. It
// holds a profile's user ids (up to 32 of up to 128 bytes, JSON-encoded,
// each byte perhaps escaped) among the rest.
const MaxMetaLen = 32 << 10

// Decode parses and verifies an encoded snapshot. Every error wraps
// ErrCorrupt and says what is wrong. The returned State aliases data.
func Decode(data []byte) (Snapshot, error) {
	nl := bytes.IndexByte(data[:min(len(data), maxHeaderLen)], '\n')
	if nl < 0 {
		return Snapshot{}, corrupt("no header line in %d bytes", len(data))
	}
	line, state := data[:nl], data[nl+1:]

	var f struct {
		Format *int `json:"format"`
	}
	if err := json.Unmarshal(line, &f); err != nil {
		return Snapshot{}, corrupt("header is not JSON: %v", err)
	}
	if f.Format == nil {
		return Snapshot{}, corrupt("header has no format version")
	}
	if *f.Format != FormatVersion {
		return Snapshot{}, corrupt("unsupported format version %d (this reader knows %d)", *f.Format, FormatVersion)
	}

	var h header
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return Snapshot{}, corrupt("bad header: %v", err)
	}
	if dec.More() {
		return Snapshot{}, corrupt("bad header: data after the JSON object")
	}
	if len(state) != h.Size {
		return Snapshot{}, corrupt("state of %q at version %d is %d bytes, header says %d (truncated?)", h.Key, h.Version, len(state), h.Size)
	}
	want, err := parseCRC(h.CRC32C)
	if err != nil {
		return Snapshot{}, corrupt("bad checksum field %q", h.CRC32C)
	}
	s := Snapshot{Key: h.Key, Version: h.Version, Epoch: h.Epoch, Session: h.Session, Meta: h.Meta, State: state}
	if got := checksum(h.Format, s); got != want {
		return Snapshot{}, corrupt("checksum mismatch for %q at version %d: stored %08x, computed %08x", h.Key, h.Version, want, got)
	}
	// A matching checksum makes these redundant unless the bytes were forged;
	// a snapshot is never trusted, so check anyway.
	if err := keys.Check(s.Key); err != nil {
		return Snapshot{}, corrupt("%v", err)
	}
	if s.Version == 0 {
		return Snapshot{}, corrupt("version 0")
	}
	if !json.Valid(s.State) {
		return Snapshot{}, corrupt("state of %q at version %d is not valid JSON", s.Key, s.Version)
	}
	return s, nil
}

func parseCRC(s string) (uint32, error) {
	if len(s) != 8 {
		return 0, errors.New("not 8 hex digits")
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return 0, errors.New("not lowercase hex")
		}
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(b), nil
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}

// decodeFor decodes data stored under key and checks that it is key's.
func decodeFor(key string, data []byte) (Snapshot, error) {
	s, err := Decode(data)
	if err != nil {
		return Snapshot{}, err
	}
	if s.Key != key {
		return Snapshot{}, corrupt("snapshot of %q stored under %q", s.Key, key)
	}
	return s, nil
}
