package pltest_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/profileledger/profileledger/pltest"
)

// Account is the profile type of the workload tests.
type Account struct {
	Coins int      `json:"coins"`
	Items []string `json:"items"`
}

var errTooPoor = errors.New("not enough coins")

func accountWorkload() pltest.Workload[Account] {
	return pltest.Workload[Account]{
		Template: Account{Coins: 100, Items: []string{}},
		Mutations: []pltest.Mutation[Account]{
			{Name: "reward", Fn: func(a *Account) error { a.Coins += 10; return nil }},
			{Name: "buy", Fn: func(a *Account) error {
				if a.Coins < 30 {
					return errTooPoor
				}
				a.Coins -= 30
				a.Items = append(a.Items, fmt.Sprintf("sword-%d", len(a.Items)))
				return nil
			}},
		},
		Trades: []pltest.Trade[Account]{
			{Name: "gift", Fn: func(a, b *Account) error {
				if a.Coins < 5 {
					return errTooPoor
				}
				a.Coins, b.Coins = a.Coins-5, b.Coins+5
				return nil
			}},
		},
		Calls: 120,
		Check: func(accounts map[string]Account) error {
			for k, a := range accounts {
				if a.Coins < 0 {
					return fmt.Errorf("%s has %d coins", k, a.Coins)
				}
			}
			return nil
		},
	}
}

func TestWorkloadFindsNothingWrongWithACorrectStore(t *testing.T) {
	rep := accountWorkload().Run(t)
	if rep.Acknowledged == 0 || rep.Trades == 0 || rep.Starts == 0 {
		t.Errorf("the workload did too little to check anything: %+v", rep)
	}
}

func TestWorkloadOnTwoServersThroughAProxy(t *testing.T) {
	srv := pltest.Run(t)
	p := pltest.Proxy(t, srv.URL())
	w := accountWorkload()
	w.URLs = []string{srv.URL(), p.URL()}
	w.Calls = 60
	p.Latency(2e6, 1e6) // 2 ms ± 1 ms each way
	w.Run(t)
}

// recorder is a testing.TB that keeps the errors reported to it instead
// of failing the test.
type recorder struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recorder) Error(args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprint(args...))
}

func (r *recorder) Errorf(format string, args ...any) { r.Error(fmt.Sprintf(format, args...)) }

func (r *recorder) all() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.errs, "\n")
}

func TestWorkloadReportsAFunctionThatIsNotDeterministic(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	w := accountWorkload()
	w.Trades = nil
	w.Calls = 30
	w.Mutations = []pltest.Mutation[Account]{{Name: "lucky", Fn: func(a *Account) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		a.Coins += calls // depends on more than the profile
		return nil
	}}}
	r := &recorder{TB: t}
	w.Run(r)
	if got := r.all(); !strings.Contains(got, "replaying the landed calls' functions") {
		t.Fatalf("the workload did not report a function it cannot replay; it reported:\n%s", got)
	}
}

func TestWorkloadReportsAMutationThatChangesNothing(t *testing.T) {
	w := accountWorkload()
	w.Trades = nil
	w.Calls = 20
	w.Mutations = []pltest.Mutation[Account]{{Name: "look", Fn: func(*Account) error { return nil }}}
	r := &recorder{TB: t}
	w.Run(r)
	if got := r.all(); !strings.Contains(got, "acknowledged, is missing") {
		t.Fatalf("the workload did not report acknowledged mutations missing from the log; it reported:\n%s", got)
	}
}
