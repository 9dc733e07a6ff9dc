package main

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestServeStartsAndStops(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- NewMain(&out, &errOut).Run(ctx, []string{"serve", "-listen", "127.0.0.1:0", "-data", t.TempDir()})
	}()

	urlRE := regexp.MustCompile(`nats://127\.0\.0\.1:\d+`)
	var url string
	for deadline := time.Now().Add(30 * time.Second); url == ""; {
		select {
		case code := <-done:
			t.Fatalf("serve exited early with %d; stderr:\n%s", code, errOut.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve printed no URL; stdout:\n%s", out.String())
		}
		url = urlRE.FindString(out.String())
		time.Sleep(10 * time.Millisecond)
	}

	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	defer scancel()
	st, err := js.CreateStream(sctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}})
	if err != nil {
		t.Fatalf("create stream: %v", err)
	}
	if _, err := js.Publish(sctx, "t.1", []byte("hello")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	if info, err := st.Info(sctx); err != nil || info.State.Msgs != 1 {
		t.Fatalf("stream info = %+v, %v; want 1 message", info, err)
	}
	nc.Close()

	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Fatalf("serve exited with %d after cancel, want 0; stderr:\n%s", code, errOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop after its context ended")
	}
	if !regexp.MustCompile(`-sync-always`).MatchString(errOut.String()) {
		t.Errorf("no durability warning without -sync-always; stderr:\n%s", errOut.String())
	}
}
