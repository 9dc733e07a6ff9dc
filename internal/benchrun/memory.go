package benchrun

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"strings"
	"time"
)

// benchIdleHeap: idle_session_heap_bytes. The heap in use (after GC) before
// and after starting many sessions of 1 KiB profiles that then sit idle,
// divided by their number. With the embedded server the process's heap
// holds the server's share too (leases, subjects, cached blocks); the note
// splits the growth between the server's code and the rest by the heap
// profile (sampled, so approximate).
func benchIdleHeap(ctx context.Context, r *benchRun, _ func(string) bool) ([]Result, error) {
	_, js, err := r.env.connect("idle")
	if err != nil {
		return nil, err
	}
	tmpl := newBenchProfile(1 << 10)
	st, err := r.env.openStore(ctx, js, "idle", "bench", tmpl)
	if err != nil {
		return nil, err
	}
	defer func() {
		t0 := time.Now()
		closeStore(st)
		r.printf("closed the sessions in %v", time.Since(t0).Round(time.Millisecond))
	}()
	// Warm-up sessions first, started the same way and left open, so that
	// what grows once and then stays (the Store's pooled reply
	// subscriptions, the server's block buffers) is not counted per session.
	n := r.size.IdleSessions
	warm := make([]string, max(n/10, 4*AggregateWorkers))
	for i := range warm {
		warm[i] = fmt.Sprintf("warm-%06d", i)
	}
	if _, err := startSessions(ctx, st, warm, AggregateWorkers); err != nil {
		return nil, err
	}
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("idle-%06d", i)
	}
	before := measureHeap()
	t0 := time.Now()
	sessions, err := startSessions(ctx, st, keys, AggregateWorkers)
	if err != nil {
		return nil, err
	}
	r.printf("%d sessions started in %v", n, time.Since(t0).Round(time.Millisecond))
	after := measureHeap()
	runtime.KeepAlive(sessions)

	per := (float64(after.heap) - float64(before.heap)) / float64(n)
	note := fmt.Sprintf("%d sessions of %d-byte profiles (after %d warm-up sessions); heap %.1f → %.1f MiB", n, len(mustJSON(tmpl)), len(warm), mib(before.heap), mib(after.heap))
	if r.env.ns != nil {
		srv := (after.server - before.server) / float64(n)
		note += fmt.Sprintf("; embedded server included: by the sampled heap profile about %.0f B per session is nats-server's, %.0f B the rest (profileledger, nats.go, runtime)",
			srv, (after.other-before.other)/float64(n))
	}
	return []Result{result("idle_session_heap_bytes", math.Round(per), UnitBytes, 0, "%s", note)}, nil
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// heapState is the heap in use, and its split by the heap profile between
// allocations made by nats-server code and the others.
type heapState struct {
	heap          uint64
	server, other float64
}

// measureHeap collects garbage and returns the heap in use. The heap profile
// is as of the last completed collection; two make it current.
func measureHeap() heapState {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	h := heapState{heap: ms.HeapAlloc}
	h.server, h.other = heapSplit()
	return h
}

// heapSplit returns the bytes in use by the heap profile, scaled up for
// sampling as pprof does, of allocations with nats-server code on their
// stack, and of the others.
func heapSplit() (server, other float64) {
	n, _ := runtime.MemProfile(nil, false)
	var recs []runtime.MemProfileRecord
	for {
		recs = make([]runtime.MemProfileRecord, n+64)
		var ok bool
		if n, ok = runtime.MemProfile(recs, false); ok {
			recs = recs[:n]
			break
		}
	}
	rate := float64(runtime.MemProfileRate)
	for _, rec := range recs {
		count, bytes := float64(rec.InUseObjects()), float64(rec.InUseBytes())
		if count == 0 || bytes == 0 {
			continue
		}
		if rate > 1 {
			bytes /= 1 - math.Exp(-bytes/count/rate)
		}
		if allocatedByServer(rec.Stack()) {
			server += bytes
		} else {
			other += bytes
		}
	}
	return server, other
}

func allocatedByServer(stack []uintptr) bool {
	frames := runtime.CallersFrames(stack)
	for {
		f, more := frames.Next()
		if strings.HasPrefix(f.Function, "github.com/nats-io/nats-server/") {
			return true
		}
		if !more {
			return false
		}
	}
}
