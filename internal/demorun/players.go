package demorun

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/profileledger/profileledger"
)

// Player is the profile type of the demo's store.
type Player struct {
	Coins     int      `json:"coins"`
	Inventory []string `json:"inventory"`
	Gold      int      `json:"gold"`  // moved only by trades
	Gems      []string `json:"gems"`  // minted before play, moved only by trades
	Gifts     []string `json:"gifts"` // the gift shop's messages, one per handled message
}

// startingCoins is a new player's coins.
const startingCoins = 100

func newPlayer() Player {
	return Player{Coins: startingCoins, Inventory: []string{}, Gold: startingGold, Gems: []string{}, Gifts: []string{}}
}

// outcome is what a mutation's caller was told.
type outcome int

const (
	// acked: Mutate or Apply returned nil; the change must be in the log
	// exactly once.
	acked outcome = iota
	// rejected: the session was lost, ended or handed over, or the
	// context ended before the change was sent; it must not be in the log.
	rejected
	// uncertain: ErrUncertain; it may or may not be in the log, once.
	uncertain
	// unexplained: any other error; treated like uncertain and reported.
	unexplained
	numOutcomes
)

// classify maps a mutation's error to its outcome.
func classify(err error) outcome {
	switch {
	case err == nil:
		return acked
	case errors.Is(err, profileledger.ErrUncertain):
		return uncertain
	case errors.Is(err, profileledger.ErrSessionLost), errors.Is(err, profileledger.ErrSessionEnded):
		return rejected
	case err == context.Canceled || err == context.DeadlineExceeded:
		// Mutate returns ctx.Err() itself only when nothing was sent.
		return rejected
	}
	return unexplained
}

// mutation is one attempted change of a player. Every mutation adds its own
// item, unique in the run, and coins (possibly 0) in one event, so that the
// final data says exactly which mutations landed and how many times.
type mutation struct {
	item    string
	coins   int
	outcome outcome
	// ackOrder is n for the player loop's n-th acknowledged mutation; 0 for
	// others. A player's acknowledged loop mutations must appear in the
	// inventory in this order.
	ackOrder int
}

// player is one simulated player and the record of every mutation tried on
// its profile. Its methods are safe for concurrent use.
type player struct {
	key string
	n   int

	mu     sync.Mutex
	next   int
	acks   int
	muts   map[string]*mutation // by item
	order  []*mutation          // in the order they were tried
	cur    *profileledger.Session[Player]
	curSrv *gameServer
	// crashHeld: p's session was live on the server that crashed, and p
	// has not started a session since.
	crashHeld bool
}

// holding records that p's current session is s on srv.
func (p *player) holding(s *profileledger.Session[Player], srv *gameServer) {
	p.mu.Lock()
	p.cur, p.curSrv = s, srv
	p.mu.Unlock()
}

// markCrashHeld records that p's session is live on the server about to
// crash.
func (p *player) markCrashHeld() {
	p.mu.Lock()
	p.crashHeld = true
	p.mu.Unlock()
}

// takeCrashHeld reports whether p's last session was live on the crashed
// server at the crash, and forgets it.
func (p *player) takeCrashHeld() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	held := p.crashHeld
	p.crashHeld = false
	return held
}

// liveOn returns the server of p's current session if the session is live.
func (p *player) liveOn() *gameServer {
	p.mu.Lock()
	s, srv := p.cur, p.curSrv
	p.mu.Unlock()
	if s == nil || s.Err() != nil {
		return nil
	}
	return srv
}

func newPlayerRecord(n int) *player {
	return &player{key: fmt.Sprintf("player:%02d", n), n: n, muts: make(map[string]*mutation)}
}

// plan returns a new mutation with a fresh item.
func (p *player) plan(coins int) *mutation {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next++
	m := &mutation{item: fmt.Sprintf("item-%02d-%d", p.n, p.next), coins: coins, outcome: -1}
	p.muts[m.item] = m
	p.order = append(p.order, m)
	return m
}

// record stores m's outcome.
func (p *player) record(m *mutation, o outcome, loop bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m.outcome = o
	if o == acked && loop {
		p.acks++
		m.ackOrder = p.acks
	}
}
