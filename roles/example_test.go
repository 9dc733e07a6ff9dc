package roles_test

import (
	"fmt"
	"strings"

	"github.com/profileledger/profileledger/roles"
)

// The subjects a holder of store "players" writes to, besides the
// JetStream API's reads; a reader has none of them.
func ExampleFor() {
	for _, role := range []roles.Role{roles.Holder, roles.Reader} {
		p, err := roles.For("players", role)
		if err != nil {
			panic(err)
		}
		var writes []string
		for _, s := range p.Publish.Allow {
			if !strings.HasPrefix(s, "$JS.") {
				writes = append(writes, s)
			}
		}
		fmt.Println(role, writes)
	}
	// Output:
	// holder [pl.players.ev.> pl.players.msg.> pl.players.wake.* pl.players.ctl.> $KV.PL_players_LEASES.> $KV.PL_players_SNAPSHOTS.> $KV.PL_players_USERS.>]
	// reader []
}
