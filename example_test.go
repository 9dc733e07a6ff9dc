package profileledger_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger"
)

// PlayerData is a game's profile type: anything encoding/json round-trips.
type PlayerData struct {
	Coins     int      `json:"coins"`
	Inventory []string `json:"inventory"`
}

// This is the README's quick start: open a store, start a session (the one
// live owner of the profile), mutate it durably, end it, read it back.
func Example() {
	ctx := context.Background()

	// An embedded NATS server with JetStream (use your own in production).
	dir, _ := os.MkdirTemp("", "profileledger-example")
	defer os.RemoveAll(dir)
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		log.Fatal(err)
	}
	ns.Start()
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	if !ns.ReadyForConnections(5e9) {
		log.Fatal("nats-server did not start")
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)

	// A store of PlayerData; new profiles start as the template.
	st, err := profileledger.Open(ctx, js, "players", PlayerData{Coins: 100, Inventory: []string{}})
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close(ctx)

	s, err := st.StartSession(ctx, "user:42")
	if err != nil {
		log.Fatal(err)
	}
	// Mutate returns once the event is durable in JetStream.
	err = s.Mutate(ctx, "quest.completed", func(p *PlayerData) error {
		p.Coins += 50
		p.Inventory = append(p.Inventory, "sword")
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Explicit ops are an alternative to a function.
	if err := s.Apply(ctx, "shop.bought", profileledger.Inc("/coins", -30), profileledger.Add("/inventory/-", "shield")); err != nil {
		log.Fatal(err)
	}
	fmt.Println(s.Data().Coins, s.Data().Inventory)
	if err := s.End(ctx); err != nil {
		log.Fatal(err)
	}

	// Any process can read a profile without holding it.
	v, err := st.Get(ctx, "user:42")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(v.Data.Coins, v.Data.Inventory)
	// Output:
	// 120 [sword shield]
	// 120 [sword shield]
}
