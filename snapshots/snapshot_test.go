package snapshots_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/profileledger/profileledger/internal/keys"
	"github.com/profileledger/profileledger/snapshots"
)

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for _, s := range []snapshots.Snapshot{
		{Key: "user:123", Version: 1, Epoch: 0, State: []byte(`{}`)},
		{Key: "ü a.b *>", Version: 1 << 63, Epoch: 1<<64 - 1, State: []byte(" [1, 2,\n 3] ")},
		{Key: "\"quoted\"\n", Version: 2, Epoch: 3, State: []byte(`"<&>"`)},
		{Key: strings.Repeat("\x01", keys.MaxKeyLen), Version: 2, Epoch: 3, State: []byte(`null`)},
	} {
		data, err := snapshots.Encode(s)
		if err != nil {
			t.Fatalf("Encode(%+v): %v", s, err)
		}
		got, err := snapshots.Decode(data)
		if err != nil {
			t.Fatalf("Decode(Encode(%+v)): %v", s, err)
		}
		if got.Key != s.Key || got.Version != s.Version || got.Epoch != s.Epoch || !bytes.Equal(got.State, s.State) {
			t.Fatalf("Decode(Encode(%+v)) = %+v", s, got)
		}
	}
}

func TestEncodeRejectsInvalidSnapshots(t *testing.T) {
	tests := []struct {
		name string
		s    snapshots.Snapshot
		why  string
	}{
		{"empty key", snapshots.Snapshot{Key: "", Version: 1, State: []byte(`{}`)}, "empty"},
		{"invalid key", snapshots.Snapshot{Key: "\xff", Version: 1, State: []byte(`{}`)}, "UTF-8"},
		{"version 0", snapshots.Snapshot{Key: "k", Version: 0, State: []byte(`{}`)}, "version 0"},
		{"no state", snapshots.Snapshot{Key: "k", Version: 1}, "not valid JSON"},
		{"bad state", snapshots.Snapshot{Key: "k", Version: 1, State: []byte(`{`)}, "not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := snapshots.Encode(tt.s)
			if err == nil || !strings.Contains(err.Error(), tt.why) || !strings.HasPrefix(err.Error(), "snapshots: ") {
				t.Fatalf("Encode = %v, want an error saying %q", err, tt.why)
			}
		})
	}
	if _, err := snapshots.Encode(snapshots.Snapshot{Version: 1, State: []byte(`{}`)}); !errors.Is(err, keys.ErrInvalid) {
		t.Fatalf("Encode with empty key = %v, want keys.ErrInvalid", err)
	}
}

func TestDecodeNamesTheDamage(t *testing.T) {
	good, err := snapshots.Encode(snapshots.Snapshot{Key: "k", Version: 12, Epoch: 3, State: []byte(`{"coins":99}`)})
	if err != nil {
		t.Fatal(err)
	}
	header, state, _ := bytes.Cut(good, []byte("\n"))
	edit := func(old, new string) []byte {
		return bytes.Replace(bytes.Clone(good), []byte(old), []byte(new), 1)
	}
	tests := []struct {
		name string
		data []byte
		why  string
	}{
		{"empty", nil, "no header line"},
		{"garbage", []byte("hello\nworld"), "header is not JSON"},
		{"no format", edit(`"format":1,`, ``), "no format version"},
		{"future format", edit(`"format":1`, `"format":2`), "unsupported format version 2"},
		{"unknown field", edit(`"format":1,`, `"format":1,"extra":1,`), "unknown field"},
		{"state flipped", edit(`99`, `98`), "checksum mismatch"},
		{"version changed", edit(`"version":12`, `"version":13`), "checksum mismatch"},
		{"epoch changed", edit(`"epoch":3`, `"epoch":4`), "checksum mismatch"},
		{"key changed", edit(`"key":"k"`, `"key":"j"`), "checksum mismatch"},
		{"crc not hex", edit(`"crc32c":"`, `"crc32c":"X`), "bad checksum field"},
		{"truncated", good[:len(good)-1], "truncated"},
		{"extended", append(bytes.Clone(good), ' '), "header says"},
		{"header only", append(bytes.Clone(header), '\n'), "truncated"},
		{"state only", state, "no header line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := snapshots.Decode(tt.data)
			if !errors.Is(err, snapshots.ErrCorrupt) || !strings.Contains(err.Error(), tt.why) {
				t.Fatalf("Decode = %v, want ErrCorrupt saying %q", err, tt.why)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	good, err := snapshots.Encode(snapshots.Snapshot{Key: "k", Version: 12, Epoch: 3, State: []byte(`{"coins":99}`)})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte("garbage"))
	f.Add([]byte("{}\n{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := snapshots.Decode(data)
		if err != nil {
			if !errors.Is(err, snapshots.ErrCorrupt) {
				t.Fatalf("Decode error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		// Whatever Decode accepts is a valid snapshot that survives a round trip.
		again, err := snapshots.Encode(s)
		if err != nil {
			t.Fatalf("Decode accepted %+v, which Encode rejects: %v", s, err)
		}
		back, err := snapshots.Decode(again)
		if err != nil || back.Key != s.Key || back.Version != s.Version || back.Epoch != s.Epoch || !bytes.Equal(back.State, s.State) {
			t.Fatalf("round trip of %+v = %+v, %v", s, back, err)
		}
		if !json.Valid(s.State) {
			t.Fatalf("Decode accepted invalid JSON state %q", s.State)
		}
	})
}
