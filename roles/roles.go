// Package roles generates the NATS server permissions of the three roles a
// profileledger store knows — holder, reader and admin — from the same
// names the library uses (internal/names), so that they cannot drift from
// what the library publishes and subscribes to.
//
//	p, err := roles.For("players", roles.Holder)
//	fmt.Print(p.Config()) // a nats-server "permissions { ... }" block
//
// Every subject names one store exactly: store "a" gets no right on store
// "ab" or "a_x". The roles:
//
//   - Holder: what a game or trading server needs to run sessions,
//     hand-overs, steals, trades, messages and snapshots on one store:
//     append to the store's event and inbox subjects, read its stream,
//     use its three KV buckets, send and answer hand-over requests. It
//     cannot create, update, delete or purge a stream or a bucket through
//     the JetStream API, delete a stream message, or touch another store.
//     (It can replace a KV bucket's contents with a Nats-Rollup publish:
//     permissions cannot filter headers. The README's threat model says
//     what that does.)
//   - Reader: what audit, log, show, trace, export and projections need:
//     stream and bucket reads, ordered consumers, and durable pull
//     consumers on the event stream (projections name theirs
//     PL_<store>_PROJ_<name>; NATS cannot restrict a consumer name by
//     prefix, so a reader may create and delete any consumer of the
//     store's streams). It cannot write a message anywhere.
//   - Admin: everything a holder can do, and create, update, purge and
//     delete the store's streams and buckets: the role that runs
//     "profileledger create" and migrations, and Store.Erase (an erasure
//     purges).
package roles

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/profileledger/profileledger/internal/names"
)

// Role is a kind of NATS user of a store.
type Role string

// The roles.
const (
	// Holder runs sessions, trades and messages on the store.
	Holder Role = "holder"
	// Reader reads the store and runs projections; it writes nothing.
	Reader Role = "reader"
	// Admin creates, migrates, purges and deletes the store, and can do
	// whatever a holder can.
	Admin Role = "admin"
)

// All lists the roles.
var All = []Role{Holder, Reader, Admin}

// ErrUnknownRole is returned by ParseRole and For for a role that is not
// holder, reader or admin.
var ErrUnknownRole = errors.New("roles: unknown role")

// ParseRole returns the role called s.
func ParseRole(s string) (Role, error) {
	for _, r := range All {
		if string(r) == s {
			return r, nil
		}
	}
	return "", fmt.Errorf("%w %q: want holder, reader or admin", ErrUnknownRole, s)
}

// Subjects are the allowed and denied subjects of one direction (publish
// or subscribe), as a NATS server's permissions spell them.
type Subjects struct {
	Allow []string `json:"allow,omitempty"`
	Deny  []string `json:"deny,omitempty"`
}

// Permissions are a NATS user's permissions, in the shape of a
// nats-server configuration's "permissions" block (Config renders it);
// their JSON has the block's keys.
type Permissions struct {
	Publish   Subjects `json:"publish"`
	Subscribe Subjects `json:"subscribe"`
	// AllowResponses lets the user publish a reply to the reply subject of
	// a request it received (a holder answering a hand-over request),
	// without a right to publish to every inbox.
	AllowResponses bool `json:"allow_responses,omitempty"`
}

// apiPrefix is the JetStream API prefix the permissions name: a
// JetStream domain or a custom API prefix is not supported here.
const apiPrefix = "$JS.API."

// management are the JetStream API requests that change a stream's
// existence, configuration or content other than by publishing: only an
// admin may send them.
var management = []string{"STREAM.CREATE", "STREAM.UPDATE", "STREAM.DELETE", "STREAM.PURGE", "STREAM.MSG.DELETE"}

// For returns the permissions of role on the store called store.
func For(store string, role Role) (Permissions, error) {
	n, err := names.New(store)
	if err != nil {
		return Permissions{}, err
	}
	if _, err := ParseRole(string(role)); err != nil {
		return Permissions{}, err
	}
	streams := streams(n)
	var pub, deny []string
	pub = append(pub, apiPrefix+"INFO")
	for _, s := range streams {
		// Reads: stream info, direct and leader gets, ordered consumers
		// (History, exports, KV listings) and durable pull consumers
		// (projections), their flow control and acknowledgements.
		pub = append(pub,
			apiPrefix+"STREAM.INFO."+s,
			apiPrefix+"DIRECT.GET."+s,
			apiPrefix+"DIRECT.GET."+s+".>",
			apiPrefix+"STREAM.MSG.GET."+s,
			apiPrefix+"CONSUMER.CREATE."+s+".>",
			apiPrefix+"CONSUMER.DURABLE.CREATE."+s+".*",
			apiPrefix+"CONSUMER.INFO."+s+".*",
			apiPrefix+"CONSUMER.DELETE."+s+".*",
			apiPrefix+"CONSUMER.MSG.NEXT."+s+".*",
			"$JS.FC."+s+".>",
			"$JS.ACK."+s+".>",
		)
	}
	// Every opened Store subscribes to its hand-over requests, a reader's
	// too (it gets none: no lease names it, and it may not answer).
	sub := []string{"_INBOX.>", "pl." + n.Store + ".ctl.>"}
	if role == Holder || role == Admin {
		pub = append(pub, writeSubjects(n)...)
		// The inbox cues, and the writes of the store's leases (a
		// holder lets go of a session whose lease another rewrote).
		sub = append(sub, n.Wake("*"), n.Inbox("*"), "$KV."+n.Leases+".*")
	}
	if role == Admin {
		for _, s := range streams {
			for _, m := range management {
				pub = append(pub, apiPrefix+m+"."+s)
			}
		}
	} else {
		// Denied explicitly too, so that a broader allow added by hand
		// next to these permissions does not grant them.
		for _, m := range management {
			deny = append(deny, apiPrefix+m+".>")
		}
	}
	return Permissions{
		Publish:        Subjects{Allow: pub, Deny: deny},
		Subscribe:      Subjects{Allow: sub},
		AllowResponses: role != Reader,
	}, nil
}

// Streams returns the JetStream streams of the store called store: its
// event stream and the streams of its lease, snapshot and user-id buckets.
func Streams(store string) ([]string, error) {
	n, err := names.New(store)
	if err != nil {
		return nil, err
	}
	return streams(n), nil
}

func streams(n names.Names) []string {
	return []string{n.Stream, names.KVStream(n.Leases), names.KVStream(n.Snapshots), names.KVStream(n.Users)}
}

// writeSubjects are the subjects a holder publishes its writes to: the
// store's events and inboxes, the holder's cue and hand-over requests, and
// its three buckets.
func writeSubjects(n names.Names) []string {
	return []string{
		n.Events(">"), n.Inbox(">"), n.Wake("*"), "pl." + n.Store + ".ctl.>",
		"$KV." + n.Leases + ".>", "$KV." + n.Snapshots + ".>", "$KV." + n.Users + ".>",
	}
}

// Config renders p as a nats-server configuration "permissions" block,
// to go inside a user's entry (users: [ {user: ..., password: ...,
// permissions: <here>} ]).
func (p Permissions) Config() string {
	var b strings.Builder
	b.WriteString("permissions {\n")
	dir := func(name string, s Subjects) {
		fmt.Fprintf(&b, "  %s {\n", name)
		list := func(key string, subjects []string) {
			if len(subjects) == 0 {
				return
			}
			fmt.Fprintf(&b, "    %s: [\n", key)
			for _, s := range subjects {
				fmt.Fprintf(&b, "      %q\n", s)
			}
			b.WriteString("    ]\n")
		}
		list("allow", s.Allow)
		list("deny", s.Deny)
		b.WriteString("  }\n")
	}
	dir("publish", p.Publish)
	dir("subscribe", p.Subscribe)
	if p.AllowResponses {
		b.WriteString("  allow_responses: true\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// UserConfig renders one entry of a nats-server "users" list: user with
// password (a literal, or a $VARIABLE the server reads from its
// environment; empty for none) and p.
func (p Permissions) UserConfig(user, password string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "{\n  user: %q\n", user)
	switch {
	case strings.HasPrefix(password, "$"):
		fmt.Fprintf(&b, "  password: %s\n", password)
	case password != "":
		fmt.Fprintf(&b, "  password: %q\n", password)
	}
	for line := range strings.Lines(p.Config()) {
		b.WriteString("  " + line)
	}
	b.WriteString("}\n")
	return b.String()
}

// JSON returns p as indented JSON: the same block as Config, with the
// same keys.
func (p Permissions) JSON() []byte {
	out, _ := json.MarshalIndent(p, "", "  ")
	return out
}
