package roles_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/conf"
	"github.com/profileledger/profileledger/internal/names"
	"github.com/profileledger/profileledger/roles"
)

// matches reports whether the NATS subject pattern p (with * and >)
// matches the literal subject s.
func matches(p, s string) bool {
	pt, st := strings.Split(p, "."), strings.Split(s, ".")
	for i, tok := range pt {
		switch {
		case tok == ">":
			return len(st) > i
		case i >= len(st):
			return false
		case tok != "*" && tok != st[i]:
			return false
		}
	}
	return len(pt) == len(st)
}

func TestSubjectMatcher(t *testing.T) {
	for _, c := range []struct {
		p, s string
		want bool
	}{
		{"a.>", "a.b.c", true}, {"a.>", "a", false}, {"a.*", "a.b", true}, {"a.*", "a.b.c", false},
		{"a.b", "a.b", true}, {"a.b", "a.bc", false}, {"*.b", "x.b", true},
	} {
		if got := matches(c.p, c.s); got != c.want {
			t.Errorf("matches(%q, %q) = %v", c.p, c.s, got)
		}
	}
}

// storeSubjects are concrete subjects of every kind the store's users
// publish to: writes, reads and management.
func storeSubjects(store string) (writes, reads, manage []string) {
	n, err := names.New(store)
	if err != nil {
		panic(err)
	}
	writes = []string{
		n.Events("alice"), n.Inbox("alice"), n.Wake("alice"), n.Control("id", "alice"),
		"$KV." + n.Leases + ".alice", "$KV." + n.Snapshots + ".alice", "$KV." + n.Users + ".u.alice",
	}
	streams, err := roles.Streams(store)
	if err != nil {
		panic(err)
	}
	for _, s := range streams {
		reads = append(reads,
			"$JS.API.STREAM.INFO."+s, "$JS.API.DIRECT.GET."+s, "$JS.API.DIRECT.GET."+s+"."+n.Events("alice"),
			"$JS.API.STREAM.MSG.GET."+s, "$JS.API.CONSUMER.CREATE."+s+".c1", "$JS.API.CONSUMER.CREATE."+s+".c1.pl.x",
			"$JS.API.CONSUMER.MSG.NEXT."+s+".c1", "$JS.ACK."+s+".c1.1.2.3.4.5")
		for _, m := range []string{"CREATE", "UPDATE", "DELETE", "PURGE", "MSG.DELETE"} {
			manage = append(manage, "$JS.API.STREAM."+m+"."+s)
		}
	}
	return writes, reads, manage
}

// allowed reports whether p lets its user publish to subject.
func allowed(p roles.Permissions, subject string) bool {
	in := func(list []string) bool {
		return slices.ContainsFunc(list, func(pat string) bool { return matches(pat, subject) })
	}
	return in(p.Publish.Allow) && !in(p.Publish.Deny)
}

func TestEachRoleMayDoWhatItsDocSaysOnItsStore(t *testing.T) {
	writes, reads, manage := storeSubjects("players")
	for _, c := range []struct {
		role                  roles.Role
		write, read, managing bool
	}{
		{roles.Holder, true, true, false},
		{roles.Reader, false, true, false},
		{roles.Admin, true, true, true},
	} {
		p, err := roles.For("players", c.role)
		if err != nil {
			t.Fatal(err)
		}
		for _, group := range []struct {
			subjects []string
			want     bool
		}{{writes, c.write}, {reads, c.read}, {manage, c.managing}} {
			for _, s := range group.subjects {
				if got := allowed(p, s); got != group.want {
					t.Errorf("%s may publish to %s: %v, want %v", c.role, s, got, group.want)
				}
			}
		}
		if c.role == roles.Reader && p.AllowResponses {
			t.Error("a reader may answer requests")
		}
	}
}

func TestNoRoleReachesAnotherStoreWhoseNameExtendsItsOwn(t *testing.T) {
	for _, other := range []string{"ab", "a_x", "a-b", "a_LEASES", "a_SNAPSHOTS", "A", "b"} {
		writes, reads, manage := storeSubjects(other)
		for _, role := range roles.All {
			p, err := roles.For("a", role)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range slices.Concat(writes, reads, manage) {
				if allowed(p, s) {
					t.Errorf("%s of store a may publish to %s of store %s", role, s, other)
				}
			}
			for _, s := range []string{"pl." + other + ".wake.x", "pl." + other + ".ctl.id.x", "pl." + other + ".msg.x"} {
				if slices.ContainsFunc(p.Subscribe.Allow, func(pat string) bool { return matches(pat, s) }) {
					t.Errorf("%s of store a may subscribe to %s", role, s)
				}
			}
		}
	}
}

func TestConfigIsANATSPermissionsBlockWithTheSameSubjects(t *testing.T) {
	for _, role := range roles.All {
		p, err := roles.For("players", role)
		if err != nil {
			t.Fatal(err)
		}
		parsed, err := conf.Parse(p.Config())
		if err != nil {
			t.Fatalf("%s: %v\n%s", role, err, p.Config())
		}
		// The configuration parser and JSON agree on the shape; compare
		// through JSON.
		raw, _ := json.Marshal(parsed["permissions"])
		var back roles.Permissions
		if err := json.Unmarshal(raw, &back); err != nil {
			t.Fatalf("%s: %v", role, err)
		}
		if !slices.Equal(back.Publish.Allow, p.Publish.Allow) || !slices.Equal(back.Publish.Deny, p.Publish.Deny) ||
			!slices.Equal(back.Subscribe.Allow, p.Subscribe.Allow) || back.AllowResponses != p.AllowResponses {
			t.Errorf("%s: the configuration parses as\n%+v\nnot\n%+v", role, back, p)
		}
		var fromJSON roles.Permissions
		if err := json.Unmarshal(p.JSON(), &fromJSON); err != nil || fmt.Sprint(fromJSON) != fmt.Sprint(p) {
			t.Errorf("%s: JSON round trip: %v", role, err)
		}
		// A user entry; its password may be the server's environment variable.
		t.Setenv("SVC_PASSWORD", "from-env")
		for pw, want := range map[string]string{"pw": "pw", "$SVC_PASSWORD": "from-env"} {
			cfg, err := conf.Parse("users: [\n" + p.UserConfig("svc", pw) + "]\n")
			if err != nil {
				t.Fatalf("%s: user entry: %v", role, err)
			}
			u := cfg["users"].([]any)[0].(map[string]any)
			if u["user"] != "svc" || u["password"] != want || u["permissions"] == nil {
				t.Errorf("%s: user entry parses as %v", role, u)
			}
		}
	}
}

func TestBadStoreNamesAndRolesAreRefused(t *testing.T) {
	if _, err := roles.For("a.b", roles.Holder); !errors.Is(err, names.ErrInvalid) {
		t.Errorf("For(a.b): %v", err)
	}
	if _, err := roles.For("players", "owner"); !errors.Is(err, roles.ErrUnknownRole) {
		t.Errorf("For(owner): %v", err)
	}
	if _, err := roles.ParseRole("Holder"); !errors.Is(err, roles.ErrUnknownRole) {
		t.Errorf("ParseRole(Holder): %v", err)
	}
	if r, err := roles.ParseRole("reader"); err != nil || r != roles.Reader {
		t.Errorf("ParseRole(reader) = %v, %v", r, err)
	}
}
