package names_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/profileledger/profileledger/internal/names"
)

func TestNamesOfAStore(t *testing.T) {
	n, err := names.New("players")
	if err != nil {
		t.Fatal(err)
	}
	if n.Stream != "PL_players" || n.Leases != "PL_players_LEASES" || n.Snapshots != "PL_players_SNAPSHOTS" {
		t.Fatalf("%+v", n)
	}
	if !slices.Equal(n.Subjects(), []string{"pl.players.ev.>", "pl.players.msg.>"}) {
		t.Fatalf("subjects %v", n.Subjects())
	}
	if tok, ok := n.Token(n.Events("user_3A1")); !ok || tok != "user_3A1" {
		t.Fatalf("Token(Events(x)) = %q, %v", tok, ok)
	}
	if _, ok := n.Token("pl.players.msg.x"); ok {
		t.Fatal("an inbox subject taken for an event subject")
	}
	// The control subjects must stay outside the stream.
	if c := n.Control("id", "tok"); strings.HasPrefix(c, n.EventsPrefix()) || strings.HasPrefix(c, "pl.players.msg.") {
		t.Fatalf("control subject %q is inside the stream", c)
	}
	if names.KVStream(n.Leases) != "KV_PL_players_LEASES" {
		t.Fatal(names.KVStream(n.Leases))
	}
}

func TestInvalidStoreNames(t *testing.T) {
	for _, s := range []string{"", "a.b", "a b", "a*", ">", "ü", strings.Repeat("x", names.MaxStoreLen+1)} {
		if _, err := names.New(s); !errors.Is(err, names.ErrInvalid) {
			t.Errorf("New(%q) = %v", s, err)
		}
	}
}

func TestProjectionNamesAreCheckedAndSpelledOnce(t *testing.T) {
	n, _ := names.New("players")
	c, err := n.Projection("snapshotter")
	if err != nil || c != "PL_players_PROJ_snapshotter" {
		t.Fatalf("Projection = %q, %v", c, err)
	}
	if n.ProjectionFilter() != "pl.players.ev.>" {
		t.Fatal(n.ProjectionFilter())
	}
	for _, bad := range []string{"", "a.b", "a b", "*", strings.Repeat("p", names.MaxProjectionLen+1)} {
		if _, err := n.Projection(bad); !errors.Is(err, names.ErrInvalidProjection) {
			t.Errorf("Projection(%q) = %v", bad, err)
		}
	}
}
