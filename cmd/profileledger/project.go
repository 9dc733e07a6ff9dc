package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/examples/projections"
)

const projectDescription = `
Runs the built-in projections of <store> until Ctrl-C, or shows where every
projection of the store stands (-status).

  -snapshotter      writes a snapshot of every profile with -every or more
                    events since its last one (consumer PL_<store>_PROJ_snapshotter)
  -items PATH       an item-owner index of the string arrays at PATH (e.g. /gems)
                    that reports every dupe (an item in two profiles) as it
                    appears; it lives in memory, so it is rebuilt from the
                    first event at each start (consumer ..._PROJ_items)
  -balances PATH    writes the number at PATH (e.g. /gold) of every profile to
                    the KV bucket -bucket (default PL_<store>_BALANCES), as JSON
                    {"key","balance","version"} (consumer ..._PROJ_balances)

Each projection resumes from its checkpoint (its consumer's acknowledgements);
-from-start rebuilds the snapshotter and the balances from the first event,
-from-now starts a new one at the next event. Several processes may run
-snapshotter and -balances: one is active, the others wait and take over if
it dies. Run -items in one process only: its index is in memory and its
start rebuilds it from the first event, resetting the shared consumer.
Progress (events, lag, snapshots, dupes) goes to stderr every -progress;
dupes go to stdout as they are found (JSON lines with -json), and a summary
when it stops. Exit status 1 if a projection failed.

-status prints, for every projection of the store: its lag in events (not yet
delivered + delivered and not yet acknowledged), its checkpoint (ack floor)
against the stream's last sequence, and whether an instance is active.`

// projectSummary is the -json summary printed when project stops.
type projectSummary struct {
	Store       string                                    `json:"store"`
	Projections map[string]profileledger.ProjectionCounts `json:"projections"`
	Dupes       []projections.Dupe                        `json:"dupes"`
	Errors      map[string]string                         `json:"errors,omitempty"`
}

func (m *Main) runProject(ctx context.Context, args []string) int {
	fs := m.newFlagSet("project", "[flags] <store>", projectDescription)
	conn := addNATSFlags(fs, 30*time.Second)
	snapshotter := fs.Bool("snapshotter", false, "run the snapshotter")
	every := fs.Int("every", 256, "the snapshotter writes a profile's snapshot every `N` events")
	items := fs.String("items", "", "run the item-owner index of the string arrays at JSON pointer `PATH`")
	balances := fs.String("balances", "", "run the balances of the numbers at JSON pointer `PATH`")
	bucket := fs.String("bucket", "", "the balances' KV bucket (default PL_<store>_BALANCES)")
	fromStart := fs.Bool("from-start", false, "rebuild: drop the checkpoints and fold every event from the first")
	fromNow := fs.Bool("from-now", false, "a projection that has no checkpoint yet starts at the next event")
	status := fs.Bool("status", false, "print every projection's lag and checkpoint, then exit")
	asJSON := fs.Bool("json", false, "print JSON: -status as an array; dupes as JSON lines and the summary as an object")
	progress := fs.Duration("progress", 2*time.Second, "print progress to stderr every `D` (0: never)")
	pos, code, ok := m.parseArgs(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return m.usageError(fs, "want a store, got %d arguments", len(pos))
	}
	store := pos[0]
	if err := conn.check(); err != nil {
		return m.usageError(fs, "%v", err)
	}
	if *fromStart && *fromNow {
		return m.usageError(fs, "-from-start and -from-now together")
	}
	if !*status && !*snapshotter && *items == "" && *balances == "" {
		return m.usageError(fs, "name a projection to run (-snapshotter, -items PATH, -balances PATH) or ask for -status")
	}
	if *every < 1 {
		return m.usageError(fs, "-every %d: must be at least 1", *every)
	}
	var itemsOf func(*map[string]any) []string
	var balanceOf func(*map[string]any) int64
	var err error
	if *items != "" {
		if itemsOf, err = projections.ItemsAt(*items); err != nil {
			return m.usageError(fs, "-items %q: %v", *items, err)
		}
	}
	if *balances != "" {
		if balanceOf, err = projections.NumberAt(*balances); err != nil {
			return m.usageError(fs, "-balances %q: %v", *balances, err)
		}
	}
	if *bucket == "" {
		*bucket = "PL_" + store + "_BALANCES"
	}

	nc, js, err := conn.connect("project")
	if err != nil {
		fmt.Fprintf(m.stderr, "profileledger project: %v\n", err)
		return exitFail
	}
	defer nc.Close()
	if *status {
		sctx, cancel := context.WithTimeout(ctx, conn.timeout)
		defer cancel()
		list, err := profileledger.ProjectionStatuses(sctx, js, store)
		if err != nil {
			fmt.Fprintf(m.stderr, "profileledger project: %v\n", err)
			return exitFail
		}
		printProjectionStatus(m.stdout, list, *asJSON)
		return exitOK
	}

	octx, cancel := context.WithTimeout(ctx, conn.timeout)
	defer cancel()
	st, err := openCLIStore(octx, js, store, "profileledger-project")
	if err != nil {
		fmt.Fprintf(m.stderr, "profileledger project: %v\n", err)
		return exitFail
	}
	defer closeCLIStore(st)
	var opts []profileledger.ProjectionOption
	switch {
	case *fromStart:
		opts = append(opts, profileledger.ProjectFromStart())
	case *fromNow:
		opts = append(opts, profileledger.ProjectFromNow())
	}
	var (
		mu    sync.Mutex
		dupes []projections.Dupe
		run   []*profileledger.Projection[map[string]any]
	)
	enc := json.NewEncoder(m.stdout)
	if *snapshotter {
		p, err := st.Snapshotter(*every, opts...)
		if err != nil {
			return m.usageError(fs, "%v", err)
		}
		run = append(run, p)
	}
	if itemsOf != nil {
		idx := projections.NewItemIndex(itemsOf, func(d projections.Dupe) {
			mu.Lock()
			defer mu.Unlock()
			dupes = append(dupes, d)
			if *asJSON {
				enc.Encode(d)
			} else {
				fmt.Fprintf(m.stdout, "DUPE %s held by %s (event %s of %q, seq %d)\n", d.Item, strings.Join(d.Owners, ", "), d.EventID, d.Key, d.Seq)
			}
		})
		p, err := st.Project("items", idx.Handle, profileledger.ProjectFromStart()) // the index is in memory
		if err != nil {
			return m.usageError(fs, "%v", err)
		}
		run = append(run, p)
	}
	if balanceOf != nil {
		bal, err := projections.OpenBalances(octx, js, *bucket, balanceOf)
		if err != nil {
			fmt.Fprintf(m.stderr, "profileledger project: %v\n", err)
			return exitFail
		}
		p, err := st.Project("balances", bal.Handle, opts...)
		if err != nil {
			return m.usageError(fs, "%v", err)
		}
		run = append(run, p)
	}

	// Run until Ctrl-C (ctx) or the first failure.
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	errs := make([]error, len(run))
	var wg sync.WaitGroup
	for i, p := range run {
		wg.Go(func() {
			if errs[i] = p.Run(rctx); errs[i] != nil {
				stop()
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	var tick <-chan time.Time
	if *progress > 0 {
		t := time.NewTicker(*progress)
		defer t.Stop()
		tick = t.C
	}
	for running := true; running; {
		select {
		case <-done:
			running = false
		case <-tick:
			mu.Lock()
			n := len(dupes)
			mu.Unlock()
			fmt.Fprintf(m.stderr, "profileledger project %s: %s; dupes %d\n", store, progressLine(run), n)
		}
	}

	sum := projectSummary{Store: store, Projections: map[string]profileledger.ProjectionCounts{}, Dupes: dupes, Errors: map[string]string{}}
	failed := false
	for i, p := range run {
		sum.Projections[p.Name()] = p.Counts()
		if errs[i] != nil {
			sum.Errors[p.Name()] = errs[i].Error()
			failed = true
		}
	}
	if sum.Dupes == nil {
		sum.Dupes = []projections.Dupe{}
	}
	if *asJSON {
		enc.Encode(sum)
	} else {
		fmt.Fprintf(m.stdout, "profileledger project %s: stopped; %s; dupes %d\n", store, progressLine(run), len(dupes))
		for name, e := range sum.Errors {
			fmt.Fprintf(m.stderr, "profileledger project: %s: %s\n", name, e)
		}
	}
	if failed {
		return exitFail
	}
	return exitOK
}

// progressLine is one line of every projection's counts.
func progressLine(run []*profileledger.Projection[map[string]any]) string {
	parts := make([]string, 0, len(run))
	for _, p := range run {
		c := p.Counts()
		s := fmt.Sprintf("%s: %d events, lag %d events (%.3fs)", p.Name(), c.Events, c.Pending, c.LagSeconds)
		if p.Name() == profileledger.SnapshotterName {
			s += fmt.Sprintf(", %d snapshots", c.Snapshots)
		}
		if !p.Active() {
			s += " (waiting)"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

// printProjectionStatus prints -status as a table or JSON.
func printProjectionStatus(w io.Writer, list []profileledger.ProjectionStatus, asJSON bool) {
	if asJSON {
		if list == nil {
			list = []profileledger.ProjectionStatus{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(list)
		return
	}
	if len(list) == 0 {
		fmt.Fprintln(w, "no projections")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PROJECTION\tLAG EVENTS\tPENDING\tACK PENDING\tCHECKPOINT\tSTREAM LAST\tBEHIND SEQ\tACTIVE")
	for _, s := range list {
		active := "no"
		if s.Pinned != "" {
			active = "yes, since " + s.PinnedSince.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", s.Name, s.LagEvents(), s.Pending, s.AckPending, s.AckFloor, s.StreamLastSeq, s.BehindSeq, active)
	}
	tw.Flush()
}
