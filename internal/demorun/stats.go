package demorun

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/profileledger/profileledger"
)

// runStats counts what the players saw. Its methods are safe for concurrent
// use.
type runStats struct {
	mu               sync.Mutex
	sessions         int
	fresh            int // starts with no live holder
	handovers        []time.Duration
	steals           int
	takeovers        []time.Duration
	otherStarts      int // the previous session was already gone in some other way
	otherNotes       []string
	startsOnCrashed  int // starts cut short by the crash
	startErrors      int // starts that failed on a live server
	startErrorNotes  []string
	ends             int
	endErrors        []string
	outcomes         [numOutcomes]int
	onCrashed        int // mutations that failed because their server crashed under them
	unexplainedErrs  []string
	stragglers       int
	stragglerRejects int
	trades           TradeStats
}

const maxSamples = 10

func sample(list []string, s string) []string {
	if len(list) < maxSamples {
		list = append(list, s)
	}
	return list
}

// startKind is how a session came to hold its profile.
type startKind int

const (
	startFresh    startKind = iota // nobody held it
	startHandover                  // a live holder handed it over on request
	startSteal                     // taken at once with Steal
	startTakeover                  // the holder was on the crashed server: taken when its lease expired
	startOther                     // the previous session was gone some other way
)

func (st *runStats) started(k startKind, took time.Duration, note string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.sessions++
	switch k {
	case startFresh:
		st.fresh++
	case startHandover:
		st.handovers = append(st.handovers, took)
	case startSteal:
		st.steals++
	case startTakeover:
		st.takeovers = append(st.takeovers, took)
	case startOther:
		st.otherStarts++
		st.otherNotes = sample(st.otherNotes, note)
	}
}

func (st *runStats) startFailed(srv *gameServer, key string, err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if srv.crashed.Load() {
		st.startsOnCrashed++
		return
	}
	st.startErrors++
	st.startErrorNotes = sample(st.startErrorNotes, fmt.Sprintf("%s on %s: %v", key, srv.name, err))
}

func (st *runStats) ended(srv *gameServer, key string, err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.ends++
	if err != nil && !srv.crashed.Load() && !errors.Is(err, profileledger.ErrSessionLost) {
		st.endErrors = sample(st.endErrors, fmt.Sprintf("%s on %s: %v", key, srv.name, err))
	}
}

func (st *runStats) mutated(srv *gameServer, key string, o outcome, loop bool, err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.outcomes[o]++
	if o == rejected && !loop {
		st.stragglerRejects++
	}
	if err != nil && srv.crashed.Load() {
		st.onCrashed++
		return
	}
	if o == unexplained {
		st.unexplainedErrs = sample(st.unexplainedErrs, fmt.Sprintf("%s on %s: %v", key, srv.name, err))
	}
}
