package audit_test

import (
	"encoding/json"
	"fmt"

	"github.com/profileledger/profileledger/audit"
	"github.com/profileledger/profileledger/ledger"
	"github.com/profileledger/profileledger/snapshots"
)

func ExampleCheckProfile() {
	recs := []ledger.Record{
		{Seq: 1, Event: ledger.Event{V: 1, ID: "a", Type: ledger.TypeSessionStarted, Session: "s1", Epoch: 1,
			Ops: []ledger.Op{{Op: "replace", Path: "", Value: json.RawMessage(`{"coins":10}`)}}}},
		{Seq: 4, Event: ledger.Event{V: 1, ID: "b", Type: "quest", Session: "s1", Epoch: 1,
			Ops: []ledger.Op{{Op: "inc", Path: "/coins", Value: json.RawMessage(`5`)}}}},
		{Seq: 9, Event: ledger.Event{V: 1, ID: "c", Type: "shop", Session: "s1", Epoch: 1,
			Ops: []ledger.Op{{Op: "inc", Path: "/gems", Value: json.RawMessage(`1`)}}}}, // no /gems
	}
	good, _ := snapshots.Encode(snapshots.Snapshot{Key: "user:1", Version: 4, Epoch: 1, State: json.RawMessage(`{"coins":15}`)})
	wrong, _ := snapshots.Encode(snapshots.Snapshot{Key: "user:1", Version: 1, Epoch: 1, State: json.RawMessage(`{"coins":99}`)})
	snaps := []audit.StoredSnapshot{{Revision: 1, Data: wrong}, {Revision: 2, Data: good}, {Revision: 3, Data: []byte("bit rot")}}

	for _, v := range audit.CheckProfile("user:1", recs, snaps) {
		fmt.Println(v)
	}
	// Output:
	// profile "user:1" seq 0: snapshot-intact: snapshot revision 3: snapshots: corrupt snapshot: no header line in 7 bytes
	// profile "user:1" seq 1: snapshot-equals-fold: snapshot revision 1 at version 1 differs from the fold of the log: the snapshot has replace /coins 99
	// profile "user:1" seq 9: event-folds: event c ("shop", session s1) does not fold: projector: op 0 (inc /gems): projector: path not found: no value at /gems
}
