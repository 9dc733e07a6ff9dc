// Command profileledger runs the profileledger demo, a development NATS
// server, the benchmark, and the operator commands.
//
//	profileledger demo    simulated game servers hand players around and trade, one crashes; every write is checked
//	profileledger serve   an embedded NATS server with JetStream: one node, or a member of a cluster (-cluster, -routes)
//	profileledger bench   the performance figures, each against a baseline measured in the same run
//	profileledger audit   check every profile of a store: log invariants, every snapshot against the log
//	profileledger trades  a profile's trades: the other profile and what moved on both sides
//	profileledger message send a message to a profile's inbox (Store.Message)
//	profileledger info    what a profile is and who holds it (Store.Info)
//	profileledger erase   erase a profile, or every profile of a user id, for good (Store.Erase, EraseUser)
//	profileledger log, show, diff, blame, trace, dupes, export, rollback
//	                      investigate a profile's history and undo it (package investigate)
//	profileledger ui      the same on a read-only web page, on 127.0.0.1 (package web)
//	profileledger permissions  the NATS permissions of a role on a store (package roles)
//	profileledger create  create a store: the admin step before holders can open it
//
// Run "profileledger <command> -h" for a command's flags. The exit status is
// 0 on success, 1 if the command failed (for demo: if any check failed) and
// 2 on a usage error.
//
// The demo needs nothing but this program: "go run ./cmd/profileledger demo"
// starts its own NATS server in a temporary directory and removes it at the
// end. Serve keeps its JetStream data in ./profileledger-data unless -data
// says otherwise, and warns that without -sync-always a power loss can lose
// acknowledged writes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := NewMain(os.Stdout, os.Stderr).Run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// Exit codes of Run.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// Main is the program: its input and output streams and its commands.
type Main struct {
	stdin    io.Reader // message's payload "-", erase's confirmation
	stdout   io.Writer
	stderr   io.Writer
	commands map[string]command
}

// command is one subcommand. run gets the arguments after its name and
// returns the exit code.
type command struct {
	summary string
	run     func(ctx context.Context, args []string) int
}

// NewMain returns the program reading os.Stdin and writing its results to
// stdout and usage, warnings and errors to stderr.
func NewMain(stdout, stderr io.Writer) *Main {
	m := &Main{stdin: os.Stdin, stdout: stdout, stderr: stderr}
	m.commands = map[string]command{
		"audit":       {summary: "check every profile of a store: its log's invariants, and every snapshot against the log", run: m.runAudit},
		"demo":        {summary: "run simulated game servers that hand players around, crash one, and check every write", run: m.runDemo},
		"trades":      {summary: "list a profile's trades: the other profile and what moved on both sides", run: m.runTrades},
		"serve":       {summary: "run an embedded NATS server with JetStream: one node, or a cluster member", run: m.runServe},
		"bench":       {summary: "measure mutations, starts, hand-overs and take-overs against baselines in the same run", run: m.runBench},
		"message":     {summary: "send a message to a profile's inbox, for its holder or its next session to handle", run: m.runMessage},
		"info":        {summary: "show what a profile is and who holds it, without taking it", run: m.runInfo},
		"erase":       {summary: "erase a profile, or every profile of a user id, for good (asks first)", run: m.runErase},
		"log":         {summary: "a profile's events, one line each, with who, why and what changed; -follow tails", run: m.runLog},
		"show":        {summary: "a profile's data as JSON, now or at a version or time", run: m.runShow},
		"diff":        {summary: "what changed in a profile between two versions or times", run: m.runDiff},
		"blame":       {summary: "every event that changed a path of a profile, before and after, who and when", run: m.runBlame},
		"trace":       {summary: "every profile that holds or held a value, how it arrived and left; flags dupes", run: m.runTrace},
		"dupes":       {summary: "find values held twice across the store and trace each (exit 1 if any)", run: m.runDupes},
		"export":      {summary: "every event as JSON Lines, streamed and resumable from a sequence", run: m.runExport},
		"rollback":    {summary: "roll a profile back to a version, with who and why (shows the diff, asks first)", run: m.runRollback},
		"project":     {summary: "run the snapshotter, an item-owner index (dupes) or balances as projections; -status shows their lag", run: m.runProject},
		"permissions": {summary: "print the NATS permissions of a role (holder, reader, admin) on a store", run: m.runPermissions},
		"ui":          {summary: "serve a read-only web page to investigate the store: timelines, diffs, blame, traces", run: m.runUI},
		"create":      {summary: "create a store's stream and buckets: the admin step before holders can open it", run: m.runCreate},
	}
	return m
}

// Run runs the command named by args[0] with the rest of args and returns
// the process's exit code. ctx ends the command early (SIGINT, SIGTERM).
func (m *Main) Run(ctx context.Context, args []string) int {
	if len(args) == 0 {
		m.usage(m.stderr)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help", "help":
		if len(args) > 1 && name == "help" {
			if c, ok := m.commands[args[1]]; ok {
				return c.run(ctx, []string{"-h"})
			}
		}
		m.usage(m.stderr)
		return exitOK
	}
	c, ok := m.commands[name]
	if !ok {
		fmt.Fprintf(m.stderr, "profileledger: unknown command %q\n\n", name)
		m.usage(m.stderr)
		return exitUsage
	}
	return c.run(ctx, args[1:])
}

func (m *Main) usage(w io.Writer) {
	fmt.Fprintln(w, "profileledger: an event-sourced, session-locked profile store on NATS JetStream")
	fmt.Fprintln(w, "\nUsage:\n\n\tprofileledger <command> [flags]\n\nCommands:")
	names := make([]string, 0, len(m.commands))
	for n := range m.commands {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(w, "\t%-11s %s\n", n, m.commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun \"profileledger <command> -h\" for a command's flags.")
}

// newFlagSet returns a flag set for command name whose usage, printed to
// stderr on -h or a bad flag, is the synopsis, the description and the flags.
func (m *Main) newFlagSet(name, synopsis, description string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(m.stderr)
	fs.Usage = func() {
		fmt.Fprintf(m.stderr, "Usage: profileledger %s %s\n\n%s\n\nFlags:\n", name, synopsis, strings.TrimSpace(description))
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args into fs. If it returns false the command must return
// code: exitOK after -h, exitUsage after a bad flag or a stray argument.
func (m *Main) parse(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false // flag printed the error and the usage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(m.stderr, "profileledger %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return exitUsage, false
	}
	return exitOK, true
}

// usageError reports a bad flag value of command name and prints its usage.
func (m *Main) usageError(fs *flag.FlagSet, format string, args ...any) int {
	fmt.Fprintf(m.stderr, "profileledger %s: %s\n", fs.Name(), fmt.Sprintf(format, args...))
	fs.Usage()
	return exitUsage
}
