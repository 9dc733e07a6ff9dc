// Package names is the one place that spells a store's NATS names. For a
// store named N:
//
//	stream  PL_N             subjects pl.N.ev.> and pl.N.msg.>
//	        pl.N.ev.<token>  a profile's events
//	        pl.N.msg.<token> a profile's inbox: messages from anyone
//	core    pl.N.wake.<token>  "a message is stored in the inbox": the holder's cue
//	core    pl.N.ctl.<store-id>.<token>  hand-over requests to the Store
//	                         holding the profile; outside the stream on
//	                         purpose: a stored subject would be answered by
//	                         JetStream's own ack
//	bucket  PL_N_LEASES      one lease per profile token, per-key TTL
//	bucket  PL_N_SNAPSHOTS   snapshots per profile token, a few revisions
//	bucket  PL_N_USERS       user-id index: <user id token>.<profile token>
//	consumer PL_N_PROJ_<P>   projection P's durable consumer on the stream,
//	                         filter pl.N.ev.>, priority group "active"
//
// <token> is the profile key encoded by internal/keys: reversible,
// injective, and never a wildcard or a separator.
package names

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// MaxStoreLen is the longest store name accepted.
const MaxStoreLen = 48

// ErrInvalid means a store name is not 1 to MaxStoreLen characters of
// A-Z a-z 0-9 _ -.
var ErrInvalid = errors.New("names: invalid store name")

var storeRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// Names are a store's NATS names.
type Names struct {
	Store     string // the store's name, N
	Stream    string // PL_N
	Leases    string // PL_N_LEASES (a KV bucket)
	Snapshots string // PL_N_SNAPSHOTS (a KV bucket)
	Users     string // PL_N_USERS (a KV bucket): user id -> profile keys
}

// New returns the names of the store called store.
func New(store string) (Names, error) {
	if !storeRE.MatchString(store) || len(store) > MaxStoreLen {
		return Names{}, fmt.Errorf("%w: %q must be 1 to %d characters of A-Z a-z 0-9 _ -", ErrInvalid, store, MaxStoreLen)
	}
	return Names{
		Store:     store,
		Stream:    "PL_" + store,
		Leases:    "PL_" + store + "_LEASES",
		Snapshots: "PL_" + store + "_SNAPSHOTS",
		Users:     "PL_" + store + "_USERS",
	}, nil
}

// Subjects are the stream's subjects.
func (n Names) Subjects() []string {
	return []string{n.EventsPrefix() + ">", n.Inbox(">")}
}

// Inbox is the inbox subject of the profile whose key encodes to token.
func (n Names) Inbox(token string) string { return "pl." + n.Store + ".msg." + token }

// Wake is the core subject Store.Message publishes to once a message to the
// profile whose key encodes to token is stored: the holder's cue to read
// its inbox. It is outside the stream on purpose.
func (n Names) Wake(token string) string { return "pl." + n.Store + ".wake." + token }

// EventsPrefix is the prefix of every profile's event subject.
func (n Names) EventsPrefix() string { return "pl." + n.Store + ".ev." }

// Events is the event subject of the profile whose key encodes to token.
func (n Names) Events(token string) string { return n.EventsPrefix() + token }

// Token returns the key token of an event subject, and whether subject is one.
func (n Names) Token(subject string) (string, bool) {
	tok, ok := strings.CutPrefix(subject, n.EventsPrefix())
	return tok, ok && tok != ""
}

// ControlAll is the subject a Store with instance id subscribes to for
// hand-over requests.
func (n Names) ControlAll(id string) string { return "pl." + n.Store + ".ctl." + id + ".>" }

// Control is the hand-over subject of one profile held by Store id.
func (n Names) Control(id, token string) string { return "pl." + n.Store + ".ctl." + id + "." + token }

// APIPrefix returns the JetStream API prefix js sends its requests to, with
// its trailing dot ("$JS.API.", or a domain's or a custom prefix): the raw
// requests (direct gets, leader reads) must go where js's own do.
func APIPrefix(js jetstream.JetStream) string {
	o := js.Options()
	switch {
	case o.Domain != "":
		return "$JS." + o.Domain + ".API."
	case o.APIPrefix != "":
		return strings.TrimSuffix(o.APIPrefix, ".") + "."
	}
	return jetstream.DefaultAPIPrefix
}

// ErrInvalidProjection means a projection name is not 1 to
// MaxProjectionLen characters of A-Z a-z 0-9 _ -.
var ErrInvalidProjection = errors.New("names: invalid projection name")

// MaxProjectionLen is the longest projection name accepted.
const MaxProjectionLen = 64

// ProjectionGroup is the priority group every instance of a projection
// pulls in: the consumer pins one of them at a time.
const ProjectionGroup = "active"

// Projection is the durable consumer name of the store's projection called
// name.
func (n Names) Projection(name string) (string, error) {
	if !storeRE.MatchString(name) || len(name) > MaxProjectionLen {
		return "", fmt.Errorf("%w: %q must be 1 to %d characters of A-Z a-z 0-9 _ -", ErrInvalidProjection, name, MaxProjectionLen)
	}
	return "PL_" + n.Store + "_PROJ_" + name, nil
}

// ProjectionFilter is the subject filter of a projection's consumer: every
// profile's events, not the inboxes.
func (n Names) ProjectionFilter() string { return n.EventsPrefix() + ">" }

// KVStream is the stream behind a KV bucket.
func KVStream(bucket string) string { return "KV_" + bucket }
