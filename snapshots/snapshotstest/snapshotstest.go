// Package snapshotstest is the conformance suite every snapshots.Store
// implementation must pass, so that they behave identically.
//
//	func TestMemoryConformance(t *testing.T) {
//		snapshotstest.Run(t, func(t *testing.T) snapshotstest.Target {
//			return snapshots.NewMemory(3)
//		})
//	}
package snapshotstest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/profileledger/profileledger/internal/keys"
	"github.com/profileledger/profileledger/snapshots"
)

// Target is a store under test: a snapshots.Store that can also plant raw
// bytes and says what its limits are.
type Target interface {
	snapshots.Store
	// PutRaw stores raw, unchecked, as key's newest snapshot.
	PutRaw(ctx context.Context, key string, raw []byte) error
	// History is how many snapshots per key the store keeps (at least 3).
	History() int
	// MaxValueSize is the largest encoded snapshot Save accepts.
	MaxValueSize() int
}

// Run runs the suite. open returns a new, empty store for each subtest; it
// registers its own cleanup.
func Run(t *testing.T, open func(t *testing.T) Target) {
	t.Helper()
	tests := []struct {
		name string
		run  func(t *testing.T, s Target)
	}{
		{"MissingKeyIsNotFound", testMissingKey},
		{"SaveLoadRoundTrip", testRoundTrip},
		{"NewestWins", testNewestWins},
		{"OlderOrEqualSaveIsIgnored", testOlderSaveIgnored},
		{"MaxVersionPicksAnOlderSnapshot", testMaxVersion},
		{"CorruptNewestFallsBackToPrevious", testCorruptNewest},
		{"AllCorruptIsNotFoundWithSkips", testAllCorrupt},
		{"SaveComparesWithNewestValid", testSaveOverCorrupt},
		{"KeysAreIsolated", testKeysIsolated},
		{"InvalidKeyIsRejected", testInvalidKey},
		{"TooLargeIsRejectedAndNothingStored", testTooLarge},
		{"HistoryLimitIsRespected", testHistoryLimit},
		{"ConcurrentSavesKeepTheNewest", testConcurrentSaves},
		{"DeleteRemovesEveryRevision", testDelete},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			if s.History() < 3 {
				t.Fatalf("suite needs History >= 3, store has %d", s.History())
			}
			tt.run(t, s)
		})
	}
}

func testMissingKey(t *testing.T, s Target) {
	ctx := testContext(t)
	l := load(ctx, t, s, "nobody", 0)
	if l.Found || len(l.Skipped) != 0 {
		t.Fatalf("Load of a missing key = %+v, want nothing", l)
	}
}

func testRoundTrip(t *testing.T, s Target) {
	ctx := testContext(t)
	want := snap("user:123", 42, 3, `{"coins": 10, "items": ["sword"], "html": "<&>"}`)
	save(ctx, t, s, want)
	expectSnapshot(t, load(ctx, t, s, "user:123", 0), want)
}

func testDelete(t *testing.T, s Target) {
	ctx := testContext(t)
	for v := uint64(1); v <= 3; v++ {
		save(ctx, t, s, snap("gone", v, 1, state(v)))
	}
	save(ctx, t, s, snap("kept", 1, 1, state(1)))
	if err := s.Delete(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if l := load(ctx, t, s, "gone", 0); l.Found || len(l.Skipped) != 0 {
		t.Fatalf("after Delete: %+v", l)
	}
	for v := uint64(1); v <= 3; v++ {
		if l := load(ctx, t, s, "gone", v); l.Found {
			t.Fatalf("after Delete an older revision survives: %+v", l)
		}
	}
	expectSnapshot(t, load(ctx, t, s, "kept", 0), snap("kept", 1, 1, state(1)))
	if err := s.Delete(ctx, "never-saved"); err != nil {
		t.Fatalf("Delete of a key with no snapshot = %v", err)
	}
	// A snapshot saved after the delete is found again.
	save(ctx, t, s, snap("gone", 9, 2, state(9)))
	expectSnapshot(t, load(ctx, t, s, "gone", 0), snap("gone", 9, 2, state(9)))
}

func testNewestWins(t *testing.T, s Target) {
	ctx := testContext(t)
	for v := uint64(1); v <= 3; v++ {
		save(ctx, t, s, snap("k", v, 1, state(v)))
	}
	expectSnapshot(t, load(ctx, t, s, "k", 0), snap("k", 3, 1, state(3)))
}

func testOlderSaveIgnored(t *testing.T, s Target) {
	ctx := testContext(t)
	want := snap("k", 5, 2, state(5))
	save(ctx, t, s, want)
	save(ctx, t, s, snap("k", 3, 2, state(3)))
	save(ctx, t, s, snap("k", 5, 2, `{"other":true}`))
	l := load(ctx, t, s, "k", 0)
	expectSnapshot(t, l, want)
	// The ignored saves did not use up history either.
	expectSnapshot(t, load(ctx, t, s, "k", 4), snapshots.Snapshot{})
}

func testMaxVersion(t *testing.T, s Target) {
	ctx := testContext(t)
	for _, v := range []uint64{10, 20, 30} {
		save(ctx, t, s, snap("k", v, 1, state(v)))
	}
	for _, tt := range []struct{ max, want uint64 }{
		{0, 30}, {30, 30}, {29, 20}, {25, 20}, {20, 20}, {19, 10}, {10, 10}, {9, 0}, {1, 0},
	} {
		l := load(ctx, t, s, "k", tt.max)
		if tt.want == 0 {
			if l.Found {
				t.Errorf("Load(max %d) found version %d, want none", tt.max, l.Snapshot.Version)
			}
			continue
		}
		if !l.Found || l.Snapshot.Version != tt.want {
			t.Errorf("Load(max %d) = %v %d, want version %d", tt.max, l.Found, l.Snapshot.Version, tt.want)
		}
	}
}

// corruptions are bad values for key, each with what its error names.
func corruptions(t testing.TB, key string) []struct {
	name, why string
	raw       []byte
} {
	t.Helper()
	good, err := snapshots.Encode(snap(key, 9, 1, `{"coins":99}`))
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(good)
	flipped[len(flipped)-3] ^= 0x01 // inside the state: "99" -> "98"
	other, err := snapshots.Encode(snap("other", 9, 1, `{}`))
	if err != nil {
		t.Fatal(err)
	}
	return []struct {
		name, why string
		raw       []byte
	}{
		{"bad checksum", "checksum mismatch", flipped},
		{"truncated state", "truncated", good[:len(good)-4]},
		{"truncated header", "no header line", good[:20]},
		{"garbage", "header is not JSON", []byte("\x00\xffnot a snapshot\nat all")},
		{"empty", "no header line", nil},
		{"unknown format version", "unsupported format version 2", bytes.Replace(good, []byte(`"format":1`), []byte(`"format":2`), 1)},
		{"another key's snapshot", fmt.Sprintf(`snapshot of "other" stored under %q`, key), other},
	}
}

func testCorruptNewest(t *testing.T, s Target) {
	for i, c := range corruptions(t, "k") {
		t.Run(c.name, func(t *testing.T) {
			ctx := testContext(t)
			key := fmt.Sprintf("k%d", i)
			c := corruptions(t, key)[i]
			save(ctx, t, s, snap(key, 1, 1, state(1)))
			save(ctx, t, s, snap(key, 2, 1, state(2)))
			putRaw(ctx, t, s, key, c.raw)
			l := load(ctx, t, s, key, 0)
			expectSnapshot(t, l, snap(key, 2, 1, state(2)))
			expectSkips(t, l, 1, c.why)
		})
	}
}

func testAllCorrupt(t *testing.T, s Target) {
	ctx := testContext(t)
	putRaw(ctx, t, s, "k", []byte("garbage 1"))
	putRaw(ctx, t, s, "k", []byte("garbage 2"))
	l := load(ctx, t, s, "k", 0)
	if l.Found {
		t.Fatalf("Load found %+v among garbage", l.Snapshot)
	}
	expectSkips(t, l, 2, "no header line")
	if l.Skipped[0].Revision <= l.Skipped[1].Revision {
		t.Fatalf("Skipped revisions %d, %d; want newest first", l.Skipped[0].Revision, l.Skipped[1].Revision)
	}
}

func testSaveOverCorrupt(t *testing.T, s Target) {
	ctx := testContext(t)
	save(ctx, t, s, snap("k", 5, 1, state(5)))
	putRaw(ctx, t, s, "k", []byte("garbage"))
	save(ctx, t, s, snap("k", 4, 1, state(4))) // older than the newest valid: no-op
	l := load(ctx, t, s, "k", 0)
	expectSnapshot(t, l, snap("k", 5, 1, state(5)))
	expectSkips(t, l, 1, "no header line")

	save(ctx, t, s, snap("k", 6, 1, state(6)))
	l = load(ctx, t, s, "k", 0)
	expectSnapshot(t, l, snap("k", 6, 1, state(6)))
	expectSkips(t, l, 0, "")
}

func testKeysIsolated(t *testing.T, s Target) {
	ctx := testContext(t)
	ks := []string{
		"a.b", "a_2Eb", "a.*", "a.>", "*", ">", "a b", "ü", "u", "%41", "A", "_", "_5F",
		"a/b", "a=b", "\x00\t", strings.Repeat(".", keys.MaxKeyLen), strings.Repeat("ü", keys.MaxKeyLen/2),
	}
	doc := func(k string) string {
		b, err := json.Marshal(map[string]string{"key": k})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for i, k := range ks {
		save(ctx, t, s, snap(k, uint64(i+1), uint64(i), doc(k)))
	}
	for i, k := range ks {
		expectSnapshot(t, load(ctx, t, s, k, 0), snap(k, uint64(i+1), uint64(i), doc(k)))
	}
}

func testInvalidKey(t *testing.T, s Target) {
	ctx := testContext(t)
	for _, k := range []string{"", strings.Repeat("k", keys.MaxKeyLen+1), "bad\xff"} {
		if err := s.Save(ctx, snap(k, 1, 1, `{}`)); !errors.Is(err, keys.ErrInvalid) {
			t.Errorf("Save with key %q: %v, want keys.ErrInvalid", k, err)
		}
		if _, err := s.Load(ctx, k, 0); !errors.Is(err, keys.ErrInvalid) {
			t.Errorf("Load with key %q: %v, want keys.ErrInvalid", k, err)
		}
	}
}

func testTooLarge(t *testing.T, s Target) {
	ctx := testContext(t)
	big := `"` + strings.Repeat("x", s.MaxValueSize()) + `"`
	err := s.Save(ctx, snap("big", 1, 1, big))
	if !errors.Is(err, snapshots.ErrTooLarge) {
		t.Fatalf("Save of %d bytes = %v, want ErrTooLarge", len(big), err)
	}
	if l := load(ctx, t, s, "big", 0); l.Found || len(l.Skipped) != 0 {
		t.Fatalf("after a rejected Save, Load = %+v, want nothing", l)
	}

	save(ctx, t, s, snap("big", 1, 1, state(1)))
	if err := s.Save(ctx, snap("big", 2, 1, big)); !errors.Is(err, snapshots.ErrTooLarge) {
		t.Fatalf("Save of %d bytes = %v, want ErrTooLarge", len(big), err)
	}
	expectSnapshot(t, load(ctx, t, s, "big", 0), snap("big", 1, 1, state(1)))

	// Exactly at the limit is fine.
	fits := `"` + strings.Repeat("x", s.MaxValueSize()) + `"`
	for {
		enc, err := snapshots.Encode(snap("big", 3, 1, fits))
		if err != nil {
			t.Fatal(err)
		}
		if over := len(enc) - s.MaxValueSize(); over > 0 {
			fits = fits[:len(fits)-over-1] + `"`
			continue
		}
		if len(enc) != s.MaxValueSize() {
			t.Fatalf("cannot build a snapshot of exactly %d bytes", s.MaxValueSize())
		}
		break
	}
	save(ctx, t, s, snap("big", 3, 1, fits))
	expectSnapshot(t, load(ctx, t, s, "big", 0), snap("big", 3, 1, fits))
}

func testHistoryLimit(t *testing.T, s Target) {
	ctx := testContext(t)
	h := uint64(s.History())
	for v := uint64(1); v <= h+2; v++ {
		save(ctx, t, s, snap("k", v, 1, state(v)))
	}
	// Versions 1 and 2 are gone; 3 is the oldest kept.
	if l := load(ctx, t, s, "k", 2); l.Found {
		t.Fatalf("Load(max 2) found version %d beyond the history of %d", l.Snapshot.Version, h)
	}
	expectSnapshot(t, load(ctx, t, s, "k", 3), snap("k", 3, 1, state(3)))

	// Corrupt values count against the history too.
	for range h - 1 {
		putRaw(ctx, t, s, "k", []byte("garbage"))
	}
	l := load(ctx, t, s, "k", 0)
	expectSnapshot(t, l, snap("k", h+2, 1, state(h+2)))
	expectSkips(t, l, int(h-1), "no header line")
	putRaw(ctx, t, s, "k", []byte("garbage"))
	l = load(ctx, t, s, "k", 0)
	if l.Found {
		t.Fatalf("Load found version %d, pushed out of the history by garbage", l.Snapshot.Version)
	}
	expectSkips(t, l, int(h), "no header line")
}

func testConcurrentSaves(t *testing.T, s Target) {
	ctx := testContext(t)
	const writers, each = 4, 5
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				v := uint64(i*writers + w + 1)
				if err := s.Save(ctx, snap("k", v, 1, state(v))); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Save: %v", err)
	}
	expectSnapshot(t, load(ctx, t, s, "k", 0), snap("k", writers*each, 1, state(writers*each)))
}

// testContext returns a context that ends with the test or after 30 s.
func testContext(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func snap(key string, version, epoch uint64, state string) snapshots.Snapshot {
	return snapshots.Snapshot{Key: key, Version: version, Epoch: epoch, State: []byte(state)}
}

func state(v uint64) string { return fmt.Sprintf(`{"v":%d}`, v) }

func save(ctx context.Context, t testing.TB, s Target, snap snapshots.Snapshot) {
	t.Helper()
	if err := s.Save(ctx, snap); err != nil {
		t.Fatalf("Save(%q, version %d): %v", snap.Key, snap.Version, err)
	}
}

func putRaw(ctx context.Context, t testing.TB, s Target, key string, raw []byte) {
	t.Helper()
	if err := s.PutRaw(ctx, key, raw); err != nil {
		t.Fatalf("PutRaw(%q): %v", key, err)
	}
}

func load(ctx context.Context, t testing.TB, s Target, key string, maxVersion uint64) snapshots.Loaded {
	t.Helper()
	l, err := s.Load(ctx, key, maxVersion)
	if err != nil {
		t.Fatalf("Load(%q, %d): %v", key, maxVersion, err)
	}
	return l
}

// expectSnapshot checks that l found want; a zero want means found nothing.
func expectSnapshot(t testing.TB, l snapshots.Loaded, want snapshots.Snapshot) {
	t.Helper()
	if want.Version == 0 {
		if l.Found {
			t.Fatalf("Load found version %d, want none", l.Snapshot.Version)
		}
		return
	}
	if !l.Found {
		t.Fatalf("Load found nothing (skipped %v), want %q version %d", l.Skipped, want.Key, want.Version)
	}
	got := l.Snapshot
	if got.Key != want.Key || got.Version != want.Version || got.Epoch != want.Epoch || !bytes.Equal(got.State, want.State) {
		t.Fatalf("Load = {%q v%d e%d %s}, want {%q v%d e%d %s}",
			got.Key, got.Version, got.Epoch, got.State, want.Key, want.Version, want.Epoch, want.State)
	}
}

// expectSkips checks that l skipped n values, each for ErrCorrupt and, if
// why is not empty, saying why.
func expectSkips(t testing.TB, l snapshots.Loaded, n int, why string) {
	t.Helper()
	if len(l.Skipped) != n {
		t.Fatalf("Load skipped %d values (%v), want %d", len(l.Skipped), l.Skipped, n)
	}
	for _, sk := range l.Skipped {
		if sk.Revision == 0 {
			t.Errorf("skipped value has revision 0")
		}
		if !errors.Is(sk.Err, snapshots.ErrCorrupt) {
			t.Errorf("skipped revision %d: %v, want ErrCorrupt", sk.Revision, sk.Err)
		}
		if why != "" && !strings.Contains(sk.Err.Error(), why) {
			t.Errorf("skipped revision %d: %q, want it to say %q", sk.Revision, sk.Err, why)
		}
	}
}
