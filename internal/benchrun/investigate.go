package benchrun

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger/internal/keys"
	"github.com/profileledger/profileledger/internal/names"
	"github.com/profileledger/profileledger/investigate"
	"github.com/profileledger/profileledger/ledger"
)

// benchInvestigate: export_vs_raw_read and dupes_100k_events_s, on one
// store grown in three steps (r.size.DupesProfiles profiles of
// r.size.DupesEvents events each, nominally 250, 500 and 1,000 profiles of
// 100: 25,000, 50,000 and 100,000 events).
//
// The histories are written straight to the stream (a session.started and
// then one "loot" event per message, each adding a unique item), as fast
// as PublishAsync goes: what is measured is reading them, not writing.
//
// dupes: investigate.Dupes over /items/* (every item is unique, so none
// is found and no trace runs), at each size, through the store (Get from
// no snapshot: each profile's whole log is replayed): its time should
// grow linearly with the events.
//
// export: at the largest size, investigate.Export of the whole store to
// io.Discard, against a raw ordered consumer on the same subjects that
// reads every message and decodes nothing, in alternating rounds; the
// figure is events per second, the best round of each.
func benchInvestigate(ctx context.Context, r *benchRun, want func(string) bool) ([]Result, error) {
	_, js, err := r.env.connect("investigate")
	if err != nil {
		return nil, err
	}
	st, err := r.env.openStore(ctx, js, "investigate", "investigator", benchProfile{Items: []string{}})
	if err != nil {
		return nil, err
	}
	defer closeStore(st)
	name := r.env.storeName("investigate")
	n, err := names.New(name)
	if err != nil {
		return nil, err
	}
	pattern, _ := investigate.ParsePattern("/items/*")
	var (
		secs   [3]float64
		events [3]int
		made   int
	)
	for i, profiles := range r.size.DupesProfiles {
		for ; made < profiles; made++ {
			if err := writeBenchHistory(ctx, js, n, fmt.Sprintf("player:%05d", made), r.size.DupesEvents); err != nil {
				return nil, err
			}
		}
		events[i] = profiles * r.size.DupesEvents
		r.printf("dupes over %d profiles, %d events", profiles, events[i])
		t0 := time.Now()
		rep, err := investigate.Dupes(ctx, st, pattern)
		if err != nil {
			return nil, err
		}
		secs[i] = time.Since(t0).Seconds()
		if len(rep.Dupes) != 0 || rep.Profiles != profiles || rep.Values != events[i] {
			return nil, fmt.Errorf("dupes over the bench store: %d profiles, %d values, %d dupes; want %d, %d, 0", rep.Profiles, rep.Values, len(rep.Dupes), profiles, events[i])
		}
	}
	var out []Result
	if want("dupes_100k_events_s") {
		note := "investigate.Dupes, /items/*, no snapshots:"
		for i := range secs {
			note += fmt.Sprintf(" %d events %.3f s (%.1f µs/event);", events[i], secs[i], secs[i]*1e6/float64(events[i]))
		}
		note += fmt.Sprintf(" time ×%.2f for events ×%.2f", secs[2]/secs[0], float64(events[2])/float64(events[0]))
		out = append(out, result("dupes_100k_events_s", secs[2], UnitSeconds, 0, "%s", note))
	}
	if want("export_vs_raw_read") {
		stream, err := js.Stream(ctx, n.Stream)
		if err != nil {
			return nil, err
		}
		var bestExport, bestRaw float64
		var exported, read int
		for range max(r.size.Rounds/2, 2) {
			t0 := time.Now()
			res, err := investigate.Export(ctx, js, name, io.Discard, investigate.ExportOptions{})
			if err != nil {
				return nil, err
			}
			exported = res.Events
			bestExport = max(bestExport, float64(res.Events)/time.Since(t0).Seconds())
			t0 = time.Now()
			if read, err = rawRead(ctx, stream, n.EventsPrefix()+"*"); err != nil {
				return nil, err
			}
			bestRaw = max(bestRaw, float64(read)/time.Since(t0).Seconds())
		}
		if exported != events[2]+r.size.DupesProfiles[2] || read != exported {
			return nil, fmt.Errorf("export wrote %d events, the raw read %d; want %d", exported, read, events[2]+r.size.DupesProfiles[2])
		}
		out = append(out, result("export_vs_raw_read", bestExport, UnitRate, bestRaw,
			"%d events of %d profiles, JSON Lines to io.Discard vs an ordered consumer reading the same messages, best of %d alternating rounds each",
			exported, r.size.DupesProfiles[2], max(r.size.Rounds/2, 2)))
	}
	return out, nil
}

// writeBenchHistory writes a profile's history straight to its subject: a
// session.started and then events, each adding a unique item.
func writeBenchHistory(ctx context.Context, js jetstream.JetStream, n names.Names, key string, events int) error {
	tok, err := keys.Encode(key)
	if err != nil {
		return err
	}
	subject := n.Events(tok)
	session := uuid.NewString()
	now := time.Now().UTC()
	evs := make([]ledger.Event, 0, events+1)
	evs = append(evs, ledger.Event{V: ledger.FormatVersion, ID: uuid.NewString(), Type: ledger.TypeSessionStarted, Session: session, Epoch: 1, Time: now,
		Meta: map[string]string{ledger.MetaNode: "bench"},
		Ops:  []ledger.Op{{Op: "add", Path: "", Value: json.RawMessage(`{"coins":0,"name":"","items":[]}`)}}})
	for i := range events {
		item, _ := json.Marshal(key + "/item-" + strconv.Itoa(i))
		evs = append(evs, ledger.Event{V: ledger.FormatVersion, ID: uuid.NewString(), Type: "loot", Session: session, Epoch: 1, Time: now,
			Ops: []ledger.Op{{Op: "add", Path: "/items/-", Value: item}}})
	}
	for i := range evs {
		data, err := evs[i].Encode()
		if err != nil {
			return err
		}
		if _, err := js.PublishAsync(subject, data); err != nil {
			return err
		}
	}
	select {
	case <-js.PublishAsyncComplete():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// rawRead reads every message on filter with an ordered consumer, decoding
// nothing, and returns how many it read.
func rawRead(ctx context.Context, stream jetstream.Stream, filter string) (int, error) {
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		return 0, err
	}
	read := 0
	for {
		batch, err := cons.FetchNoWait(1024)
		if err != nil {
			return read, err
		}
		done := false
		var merr error
		for m := range batch.Messages() {
			if done || merr != nil {
				continue // drain the batch, so that its fetch ends
			}
			read++
			meta, err := m.Metadata()
			if err != nil {
				merr = err
				continue
			}
			done = meta.NumPending == 0
		}
		if merr != nil || done {
			return read, merr
		}
		if err := batch.Error(); err != nil {
			return read, err
		}
		if ctx.Err() != nil {
			return read, ctx.Err()
		}
	}
}
