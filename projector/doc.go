// Package projector is the pure fold of a profile's events into its JSON
// document: op application, the diff of two documents into ops, and the
// fold of an event log.
//
// A document is the generic tree encoding/json builds with UseNumber: nil,
// bool, json.Number, string, []any and map[string]any, nested. A new
// profile's document is nil (JSON null). Decode and Encode convert documents
// from and to JSON; Equal compares them as JSON values.
//
// Documents are values. Apply, Diff and Fold never modify their inputs, and
// the result of Apply shares every unchanged subtree with its input (only the
// containers on a changed path are copied), so a document must never be
// changed in place once it has been handed to or returned by this package.
//
// An op (ledger.Op) is an RFC 6902 JSON Patch operation — add, remove,
// replace, move, copy, test — with RFC 6901 pointers, or "inc", which adds a
// number to the number at its path. Apply applies a list of ops all or
// nothing; Fold applies events one by one. Both are deterministic: the same
// document and the same ops give the same result on every machine, which is
// what makes a snapshot at version v comparable with the fold of the log up
// to v. Diff computes ops that turn one document into another.
//
// The package has no goroutines, does no I/O and reads no clock.
//
//	doc, _ := projector.Decode([]byte(`{"coins":10}`))
//	doc, err := projector.Apply(doc, []ledger.Op{
//		{Op: "inc", Path: "/coins", Value: json.RawMessage(`5`)},
//	})
//	// doc is {"coins":15}; on error, doc is unchanged and err is an *OpError.
package projector
