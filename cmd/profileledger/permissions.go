package main

import (
	"context"
	"fmt"
	"time"

	"github.com/profileledger/profileledger/roles"
)

const permissionsDescription = `
Prints the NATS server permissions of a role on <store>, generated from the
names the library uses (package roles), as a "permissions { ... }" block
for a user in the server's configuration file, or with -user as a whole
user entry for its "users" list:

  holder  runs sessions, hand-overs, steals, trades, messages and snapshots;
          cannot create, reconfigure, purge or delete streams or buckets,
          delete messages, or touch another store
  reader  audit, log, show, trace, export and projections (durable pull
          consumers PL_<store>_PROJ_<name>); writes nothing
  admin   a holder's rights, and creates, migrates, purges (erase) and
          deletes the store's streams and buckets ("profileledger create")

Every subject names this store exactly: store "a" gets nothing of store
"ab" or "a_x". The permissions assume the default JetStream API prefix
($JS.API), no JetStream domain. Printing needs no connection: the
connection flags are accepted, as by every operator command, and unused.`

func (m *Main) runPermissions(_ context.Context, args []string) int {
	fs := m.newFlagSet("permissions", "[flags] <store> -role holder|reader|admin", permissionsDescription)
	addNATSFlags(fs, 30*time.Second)
	role := fs.String("role", "", "the `role`: holder, reader or admin")
	user := fs.String("user", "", "print a whole users-list entry for this NATS user `name`")
	password := fs.String("user-password", "", "the entry's password (with -user): a literal, or a `$VARIABLE` the server reads from its environment")
	asJSON := fs.Bool("json", false, "print the permissions as JSON")
	pos, code, ok := m.parseArgs(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return m.usageError(fs, "want one store, got %d arguments", len(pos))
	}
	r, err := roles.ParseRole(*role)
	if err != nil {
		return m.usageError(fs, "-role: %v", err)
	}
	if *password != "" && *user == "" {
		return m.usageError(fs, "-user-password needs -user")
	}
	p, err := roles.For(pos[0], r)
	if err != nil {
		return m.usageError(fs, "store %q: %v", pos[0], err)
	}
	switch {
	case *asJSON && *user != "":
		writeJSON(m.stdout, struct {
			User        string            `json:"user"`
			Password    string            `json:"password,omitempty"`
			Permissions roles.Permissions `json:"permissions"`
		}{*user, *password, p})
	case *asJSON:
		writeJSON(m.stdout, p)
	case *user != "":
		fmt.Fprintf(m.stdout, "# profileledger %s of store %s\n%s", r, pos[0], p.UserConfig(*user, *password))
	default:
		fmt.Fprintf(m.stdout, "# profileledger %s of store %s\n%s", r, pos[0], p.Config())
	}
	return exitOK
}
