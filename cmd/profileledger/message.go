package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"
	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/internal/keys"
	"github.com/profileledger/profileledger/ledger"
)

const messageDescription = `
Sends a message to the inbox of the profile <key> in <store>
(Store.Message, ProfileStore's MessageAsync): its holder handles it within
milliseconds if it handles messages, and otherwise its next session does.
Nobody needs to hold the profile. The payload is the argument's bytes, or
standard input's with "-" (use "--" before a payload that starts with a
dash).

-id is the message's idempotency key: sending again with the same id within
the store's duplicate window (two minutes) is a no-op, so a send whose
outcome is unknown (a timeout) can be repeated safely. Without -id a random
one is made up and printed. -meta key=value (repeatable) is recorded with
the message and with its handling (who sent it, and why).

The exit status is 1 if the inbox is full (ProfileStore's limit of 1000
unless the store says otherwise) or the message could not be sent.`

// maxStdinPayload bounds what message reads from standard input; the
// store's own limit (256 KiB unless the store says otherwise) is lower.
const maxStdinPayload = 16 << 20

// messageOutput is message's -json output.
type messageOutput struct {
	Store string            `json:"store"`
	Key   string            `json:"key"`
	ID    string            `json:"id"`
	Bytes int               `json:"bytes"`
	Meta  map[string]string `json:"meta,omitempty"`
}

func (m *Main) runMessage(ctx context.Context, args []string) int {
	fs := m.newFlagSet("message", "[flags] <store> <key> <payload | ->", messageDescription)
	conn := addNATSFlags(fs, 30*time.Second)
	asJSON := fs.Bool("json", false, "print what was sent as one JSON object")
	id := fs.String("id", "", "the message's idempotency `key` (MessageID; default: a random one)")
	meta := metaFlag{}
	fs.Var(meta, "meta", "`key=value` recorded with the message and its handling (repeatable)")
	pos, code, ok := m.parseArgs(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 3 {
		return m.usageError(fs, "want a store, a key and a payload, got %d arguments", len(pos))
	}
	store, key, payloadArg := pos[0], pos[1], pos[2]
	if _, err := keys.Encode(key); err != nil {
		return m.usageError(fs, "key %q: %v", key, err)
	}
	if err := ledger.CheckCallerMeta(meta); err != nil {
		return m.usageError(fs, "-meta: %v", err)
	}
	if len(*id) > profileledger.MaxMessageIDLen {
		return m.usageError(fs, "-id is %d bytes, over the limit of %d", len(*id), profileledger.MaxMessageIDLen)
	}
	if err := conn.check(); err != nil {
		return m.usageError(fs, "%v", err)
	}
	payload := []byte(payloadArg)
	if payloadArg == "-" {
		var err error
		if payload, err = io.ReadAll(io.LimitReader(m.stdin, maxStdinPayload+1)); err != nil {
			fmt.Fprintf(m.stderr, "profileledger message: read the payload from standard input: %v\n", err)
			return exitFail
		}
		if len(payload) > maxStdinPayload {
			fmt.Fprintf(m.stderr, "profileledger message: the payload on standard input is over %d bytes\n", maxStdinPayload)
			return exitFail
		}
	}
	if *id == "" {
		*id = uuid.NewString()
	}

	ctx, cancel := context.WithTimeout(ctx, conn.timeout)
	defer cancel()
	nc, js, err := conn.connect("message")
	if err != nil {
		fmt.Fprintf(m.stderr, "profileledger message: %v\n", err)
		return exitFail
	}
	defer nc.Close()
	st, err := openCLIStore(ctx, js, store, "profileledger-message")
	if err != nil {
		fmt.Fprintf(m.stderr, "profileledger message: %v\n", err)
		return exitFail
	}
	defer closeCLIStore(st)
	if len(meta) > 0 {
		ctx = profileledger.WithMeta(ctx, meta)
	}
	if err := st.Message(ctx, key, payload, profileledger.MessageID(*id)); err != nil {
		fmt.Fprintf(m.stderr, "profileledger message: %v\n", err)
		if errors.Is(err, profileledger.ErrInvalidInput) {
			return exitUsage
		}
		if !errors.Is(err, profileledger.ErrInboxFull) {
			fmt.Fprintf(m.stderr, "profileledger message: the outcome is unknown: send again with -id %s\n", *id)
		}
		return exitFail
	}
	if *asJSON {
		out := messageOutput{Store: store, Key: key, ID: *id, Bytes: len(payload)}
		if len(meta) > 0 {
			out.Meta = meta
		}
		enc := json.NewEncoder(m.stdout)
		enc.SetIndent("", "  ")
		enc.Encode(out)
		return exitOK
	}
	fmt.Fprintf(m.stdout, "sent %d bytes to profile %q in store %s (message id %s)\n", len(payload), key, store, *id)
	return exitOK
}
