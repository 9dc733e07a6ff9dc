package main

import (
	"context"
	"time"

	"github.com/profileledger/profileledger"
)

const showDescription = `
Prints a profile's data as JSON: as of now, or as it was at a version
(-at-version) or a time (-at-time, RFC 3339: after the last event the
server stored at or before it). Reads without taking the profile.`

// showOutput is show's output.
type showOutput struct {
	Key     string         `json:"key"`
	Version uint64         `json:"version"`
	Epoch   uint64         `json:"epoch"`
	Exists  bool           `json:"exists"`
	Data    map[string]any `json:"data"`
}

func (m *Main) runShow(ctx context.Context, args []string) int {
	fs := m.newFlagSet("show", "[flags] <store> <key>", showDescription)
	nf := addNATSFlags(fs, time.Minute)
	atVersion := fs.Uint64("at-version", 0, "show the data as of this `version`")
	atTime := fs.String("at-time", "", "show the data as of this `time` (RFC 3339)")
	fs.Bool("json", true, "the output is always JSON (accepted for symmetry)")
	pos, code, ok := m.parseArgs(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 2 {
		return m.usageError(fs, "want a store and a key, got %d arguments", len(pos))
	}
	if err := nf.check(); err != nil {
		return m.usageError(fs, "%v", err)
	}
	var opts []profileledger.ReadOption
	switch {
	case *atVersion > 0 && *atTime != "":
		return m.usageError(fs, "-at-version and -at-time: one or the other")
	case *atVersion > 0:
		opts = append(opts, profileledger.AtVersion(*atVersion))
	case *atTime != "":
		t, err := time.Parse(time.RFC3339Nano, *atTime)
		if err != nil {
			return m.usageError(fs, "-at-time %q: %v", *atTime, err)
		}
		opts = append(opts, profileledger.AtTime(t))
	}
	ctx, cancel := context.WithTimeout(ctx, nf.timeout)
	defer cancel()
	iv, err := openInvestigation(ctx, nf, "show", pos[0])
	if err != nil {
		return m.fail("show", err)
	}
	defer iv.close()
	v, err := iv.st.Get(ctx, pos[1], opts...)
	if err != nil {
		return m.fail("show", err)
	}
	writeJSON(m.stdout, showOutput{Key: v.Key, Version: v.Version, Epoch: v.Epoch, Exists: v.Exists, Data: v.Data})
	return exitOK
}
