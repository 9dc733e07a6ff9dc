package projector_test

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/profileledger/profileledger/ledger"
	"github.com/profileledger/profileledger/projector"
)

func Example() {
	doc, err := projector.Decode([]byte(`{"coins":10,"bag":["sword"]}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	next, err := projector.Apply(doc, []ledger.Op{
		{Op: "inc", Path: "/coins", Value: json.RawMessage(`5`)},
		{Op: "add", Path: "/bag/-", Value: json.RawMessage(`"shield"`)},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	out, _ := projector.Encode(next)
	fmt.Println(string(out))
	old, _ := projector.Encode(doc)
	fmt.Println(string(old))

	_, err = projector.Apply(next, []ledger.Op{{Op: "inc", Path: "/bag", Value: json.RawMessage(`1`)}})
	fmt.Println(err)
	fmt.Println(errors.Is(err, projector.ErrTypeMismatch))
	// Output:
	// {"bag":["sword","shield"],"coins":15}
	// {"bag":["sword"],"coins":10}
	// projector: op 0 (inc /bag): projector: type mismatch: value at /bag is an array, not a number
	// true
}

func ExampleDiff() {
	a, _ := projector.Decode([]byte(`{"coins":10,"bag":["sword","bow"],"name":"ann"}`))
	b, _ := projector.Decode([]byte(`{"coins":12,"bag":["sword","shield","bow"],"title":"knight"}`))
	for _, op := range projector.Diff(a, b) {
		line, _ := json.Marshal(op)
		fmt.Println(string(line))
	}
	// Output:
	// {"op":"add","path":"/bag/1","value":"shield"}
	// {"op":"replace","path":"/coins","value":12}
	// {"op":"remove","path":"/name"}
	// {"op":"add","path":"/title","value":"knight"}
}

func ExampleFold() {
	events := []ledger.Event{
		{Seq: 1, ID: "a", Ops: []ledger.Op{{Op: "add", Path: "", Value: json.RawMessage(`{"coins":0}`)}}},
		{Seq: 2, ID: "b", Ops: []ledger.Op{{Op: "inc", Path: "/coins", Value: json.RawMessage(`3`)}}},
		{Seq: 3, ID: "c", Ops: []ledger.Op{{Op: "inc", Path: "/gems", Value: json.RawMessage(`1`)}}},
	}
	doc, err := projector.Fold(nil, events)
	out, _ := projector.Encode(doc)
	fmt.Println(string(out))
	fmt.Println(err)
	// Output:
	// {"coins":3}
	// projector: event 3 (id c): projector: op 0 (inc /gems): projector: path not found: no value at /gems
}
