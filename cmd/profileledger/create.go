package main

import (
	"context"
	"fmt"
	"time"

	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/internal/names"
	"github.com/profileledger/profileledger/roles"
)

const createDescription = `
Creates the store <store> — its event stream PL_<store> and its lease,
snapshot and user-id buckets — or checks that they exist with a compatible
configuration (profileledger.Create). It is the admin step: users with
holder rights ("profileledger permissions") cannot create streams, and
their Open of a missing store fails with a message naming this command.
The flags that shape the store must match what its users open it with
(WithReplicas, WithMemoryStorage, WithMaxEventSize, WithLeaseTTL).`

// createOutput is create's -json output.
type createOutput struct {
	Store    string   `json:"store"`
	Streams  []string `json:"streams"`
	Replicas int      `json:"replicas"`
	Storage  string   `json:"storage"`
}

func (m *Main) runCreate(ctx context.Context, args []string) int {
	fs := m.newFlagSet("create", "[flags] <store>", createDescription)
	conn := addNATSFlags(fs, 30*time.Second)
	replicas := fs.Int("replicas", 1, "stream and bucket replicas (`n`, 1 to 5; 3 on a cluster)")
	memory := fs.Bool("memory", false, "memory storage instead of file storage (tests only: lost at a restart)")
	maxEvent := fs.Int("max-event-size", 0, "largest event in `bytes` (default the library's, 256 KiB)")
	lease := fs.Duration("lease-ttl", 0, "the lease bucket's per-key TTL `duration` (default the library's, 5s)")
	asJSON := fs.Bool("json", false, "print what exists as one JSON object")
	pos, code, ok := m.parseArgs(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return m.usageError(fs, "want one store, got %d arguments", len(pos))
	}
	store := pos[0]
	if _, err := names.New(store); err != nil {
		return m.usageError(fs, "store %q: %v", store, err)
	}
	if err := conn.check(); err != nil {
		return m.usageError(fs, "%v", err)
	}
	opts := []profileledger.Option{profileledger.WithReplicas(*replicas)}
	storage := "file"
	if *memory {
		opts, storage = append(opts, profileledger.WithMemoryStorage()), "memory"
	}
	if *maxEvent != 0 {
		opts = append(opts, profileledger.WithMaxEventSize(*maxEvent))
	}
	if *lease != 0 {
		opts = append(opts, profileledger.WithLeaseTTL(*lease))
	}

	ctx, cancel := context.WithTimeout(ctx, conn.timeout)
	defer cancel()
	nc, js, err := conn.connect("create")
	if err != nil {
		return m.fail("create", err)
	}
	defer nc.Close()
	if err := profileledger.Create(ctx, js, store, opts...); err != nil {
		return m.fail("create", err)
	}
	streams, _ := roles.Streams(store)
	if *asJSON {
		writeJSON(m.stdout, createOutput{Store: store, Streams: streams, Replicas: *replicas, Storage: storage})
		return exitOK
	}
	fmt.Fprintf(m.stdout, "store %s ready: streams %v, %d replica(s), %s storage\n", store, streams, *replicas, storage)
	return exitOK
}
