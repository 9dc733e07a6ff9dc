package profileledger

import (
	"fmt"
	"regexp"
)

// The NATS layout of a store named N (one place for every spelling):
//
//	stream  PL_N             subjects pl.N.ev.> and pl.N.msg.>
//	        pl.N.ev.<token>  a profile's events
//	        pl.N.msg.<token> a profile's inbox (reserved)
//	core    pl.N.ctl.<store-id>.<token>  hand-over requests to the Store holding it;
//	                         outside the stream on purpose: a stored subject would
//	                         be answered by JetStream's own ack
//	bucket  PL_N_LEASES      one lease per profile token, per-key TTL
//	bucket  PL_N_SNAPSHOTS   snapshots per profile token, a few revisions of history
//
// <token> is the profile key encoded by internal/keys: reversible, injective,
// and never a wildcard or a separator.
type names struct {
	store     string
	stream    string
	leases    string
	snapshots string
}

// MaxStoreNameLen is the longest store name accepted.
const MaxStoreNameLen = 48

var storeNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func newNames(store string) (names, error) {
	if !storeNameRE.MatchString(store) || len(store) > MaxStoreNameLen {
		return names{}, fmt.Errorf("%w: store name %q must be 1 to %d characters of A-Z a-z 0-9 _ -", ErrInvalidInput, store, MaxStoreNameLen)
	}
	return names{
		store:     store,
		stream:    "PL_" + store,
		leases:    "PL_" + store + "_LEASES",
		snapshots: "PL_" + store + "_SNAPSHOTS",
	}, nil
}

func (n names) subjects() []string {
	return []string{"pl." + n.store + ".ev.>", "pl." + n.store + ".msg.>"}
}
func (n names) events(token string) string      { return "pl." + n.store + ".ev." + token }
func (n names) controlAll(node string) string   { return "pl." + n.store + ".ctl." + node + ".>" }
func (n names) control(node, tok string) string { return "pl." + n.store + ".ctl." + node + "." + tok }
