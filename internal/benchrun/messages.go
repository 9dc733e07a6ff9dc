package benchrun

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/internal/retry"
)

// messageWarmup is how many messages go before the delivery samples.
const messageWarmup = 20

// messageStall is how long a delivery sample waits for the handler: a
// message not handled by then is a stall, counted at this bound.
const messageStall = 250 * time.Millisecond

// handledAt is one message's handler run: the message's number (its
// payload) and when the handler ran.
type handledAt struct {
	n  int
	at time.Time
}

// benchMessages: message_delivery_p50_us, message_delivery_p99_us and
// message_handled_tput. A holder Store holds a profile and handles its
// messages; a sender Store, on another connection, sends them
// (Store.Message).
//
// Delivery: one message at a time, each sent once the previous one's event
// is in the log (an idle holder); the time is from Message returning to
// the handler running (the handler takes time.Now and hands it over on a
// channel). The holder may run the handler before the sender has the
// server's acknowledgement: such a sample counts as 0 (the note says how
// many). A message not handled within messageStall is a stall, counted
// at that bound; the note says how many.
//
// Throughput: a burst of messages waits in the inbox of a held profile
// (sent before the holder sets its handler); the time is from
// HandleMessages to the last message's event being in the log. Each
// message is one fenced append: pending messages are read in one batch and
// handled one at a time, in order.
func benchMessages(ctx context.Context, r *benchRun, _ func(string) bool) ([]Result, error) {
	limit := profileledger.WithInboxLimit(max(1000, r.size.Burst))
	_, jsH, err := r.env.connect("messages-holder")
	if err != nil {
		return nil, err
	}
	holder, err := r.env.openStore(ctx, jsH, "messages", "holder", newBenchProfile(512), limit)
	if err != nil {
		return nil, err
	}
	defer closeStore(holder)
	_, jsS, err := r.env.connect("messages-sender")
	if err != nil {
		return nil, err
	}
	sender, err := r.env.openStore(ctx, jsS, "messages", "sender", newBenchProfile(512), limit)
	if err != nil {
		return nil, err
	}
	defer closeStore(sender)

	// Delivery latency.
	s, err := holder.StartSession(ctx, "live")
	if err != nil {
		return nil, err
	}
	// Room for every sample: a handler that ran twice (its append failed
	// and it was offered again) must not block the delivery loop.
	runs := make(chan handledAt, r.size.Messages+64)
	s.HandleMessages(func(p *benchProfile, m profileledger.Message) error {
		at := time.Now()
		n, _ := strconv.Atoi(string(m.Payload))
		p.Coins++
		select {
		case runs <- handledAt{n, at}:
		default:
		}
		return nil
	})
	n, early, stalled := 0, 0, 0
	var sends latencies // how long Message itself took
	deliver := func(ctx context.Context) (time.Duration, error) {
		n++
		version := s.Version()
		ts := time.Now()
		if err := sender.Message(ctx, "live", []byte(strconv.Itoa(n))); err != nil {
			return 0, err
		}
		t0 := time.Now()
		if n > messageWarmup {
			sends = append(sends, t0.Sub(ts))
		}
		stall := time.NewTimer(messageStall)
		defer stall.Stop()
		var d time.Duration
		for got := false; !got; {
			select {
			case h := <-runs:
				if h.n == n {
					d, got = h.at.Sub(t0), true
				}
			case <-stall.C:
				// Not handled yet: the holder missed this message's wake-up
				// and waits for the next one. Count the stall at its bound
				// (the message would wait for ever, or for the next message,
				// which this sample's successor is).
				if n > messageWarmup {
					stalled++
				}
				return messageStall, nil
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
		if d < 0 {
			d = 0
			if n > messageWarmup {
				early++
			}
		}
		// Let the event land, so that the next message finds the holder idle.
		wait, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		for s.Version() == version {
			if !retry.Sleep(wait, 20*time.Microsecond) {
				return 0, fmt.Errorf("message %d: its event did not land: %w", n, wait.Err())
			}
		}
		return d, nil
	}
	ls, err := alternate(ctx, messageWarmup, r.size.Messages, sampler{"message", deliver})
	if err != nil {
		return nil, err
	}
	if err := s.End(ctx); err != nil {
		return nil, err
	}
	lat := ls[0]

	// Handled messages per second: bursts drained from the inbox.
	var drained rate
	var sent rate
	for round := range r.size.Bursts {
		key := fmt.Sprintf("burst-%d", round)
		hs, err := holder.StartSession(ctx, key)
		if err != nil {
			return nil, err
		}
		t0 := time.Now()
		for i := range r.size.Burst {
			if err := sender.Message(ctx, key, []byte(strconv.Itoa(i))); err != nil {
				return nil, fmt.Errorf("burst %d, message %d: %w", round, i, err)
			}
		}
		sent.ops += r.size.Burst
		sent.elapsed += time.Since(t0)
		cpu := processCPU()
		t0 = time.Now()
		hs.HandleMessages(func(p *benchProfile, m profileledger.Message) error { p.Coins++; return nil })
		wait, cancel := context.WithTimeout(ctx, time.Minute)
		for hs.Data().Coins < r.size.Burst {
			if !retry.Sleep(wait, 100*time.Microsecond) {
				cancel()
				return nil, fmt.Errorf("burst %d: %d of %d messages handled: %w", round, hs.Data().Coins, r.size.Burst, wait.Err())
			}
		}
		cancel()
		drained.elapsed += time.Since(t0)
		drained.cpu += processCPU() - cpu
		drained.ops += r.size.Burst
		if err := hs.End(ctx); err != nil {
			return nil, err
		}
	}

	note := fmt.Sprintf("%s; %d messages one at a time to an idle holder on another connection; %d handled before Message returned (counted as 0), %d stalled: not handled within %v (counted as %v); Message itself: %s",
		lat.summary(), len(lat.latencies), early, stalled, messageStall, messageStall, sends.summary())
	return []Result{
		result("message_delivery_p50_us", lat.µs(0.5), UnitMicros, 0, "%s", note),
		result("message_delivery_p99_us", lat.µs(0.99), UnitMicros, 0, "p50 %.0f µs, max %.0f µs; see message_delivery_p50_us", lat.µs(0.5), lat.µs(1)),
		result("message_handled_tput", drained.perSecond(), UnitRate, 0,
			"%d bursts of %d messages waiting in a held profile's inbox, drained by its handler: %s (one fenced append each); sending them: %.0f /s (Message, one sender)",
			r.size.Bursts, r.size.Burst, drained, sent.perSecond()),
	}, nil
}
