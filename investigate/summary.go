package investigate

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/ledger"
)

// maxSummaryValue is the most of a value a summary shows.
const maxSummaryValue = 40

// SummarizeOps returns a compact, one-line account of ops:
// `/coins +50`, `/items/- add "sword#91"`, `/name = "x"`, `/old remove`.
func SummarizeOps(ops []profileledger.EventOp) string {
	if len(ops) == 0 {
		return "-"
	}
	parts := make([]string, len(ops))
	for i, o := range ops {
		parts[i] = summarizeOp(o.Op, o.Path, o.From, string(o.Value))
	}
	return strings.Join(parts, "; ")
}

func summarizeOp(op, path, from, value string) string {
	if path == "" {
		path = "/"
	}
	v := shorten(value)
	switch op {
	case "inc":
		if strings.HasPrefix(v, "-") {
			return path + " " + v
		}
		return path + " +" + v
	case "replace":
		return path + " = " + v
	case "add":
		return path + " add " + v
	case "remove":
		return path + " remove"
	case "move", "copy":
		return path + " " + op + " from " + from
	default:
		return path + " " + op + " " + v
	}
}

func shorten(s string) string {
	if len(s) <= maxSummaryValue {
		return s
	}
	cut := maxSummaryValue
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// How says how an event came about, for people: "trade T with K" (T the
// trade id's first 8 characters),
// "message M", "rollback to version N", "session start (node N)", or
// "mutation TYPE".
func How(ev profileledger.Event) string {
	switch {
	case ev.Meta[ledger.MetaTrade] != "":
		id := ev.Meta[ledger.MetaTrade]
		if len(id) > 8 {
			id = id[:8]
		}
		return fmt.Sprintf("trade %s with %q", id, ev.Meta[ledger.MetaWith])
	case ev.Type == ledger.TypeMessage:
		s := "message " + strconv.Quote(ev.Meta[ledger.MetaMsgID])
		if seq := ev.Meta[ledger.MetaMsgSeq]; seq != "" {
			s += " (inbox seq " + seq + ")"
		}
		if a := ev.Meta[profileledger.MetaActor]; a != "" {
			s += " from " + strconv.Quote(a)
		}
		return s
	case ev.Type == ledger.TypeRollback:
		return "rollback to version " + ev.Meta[ledger.MetaRollbackTo]
	case ev.Type == ledger.TypeSessionStarted:
		return "session start on " + ev.Meta[ledger.MetaNode]
	case ev.Type == ledger.TypeErased:
		return "erasure"
	default:
		return "mutation " + ev.Type
	}
}

// Touches reports whether any of ops changes something at or under the
// JSON pointer prefix, or a parent of it ("" touches everything).
func Touches(ops []profileledger.EventOp, prefix string) bool {
	if prefix == "" {
		return len(ops) > 0
	}
	for _, o := range ops {
		if related(o.Path, prefix) || (o.From != "" && related(o.From, prefix)) {
			return true
		}
	}
	return false
}

// related reports whether pointers a and b are equal or one is under the
// other. An array append ("/items/-") is related to every element.
func related(a, b string) bool {
	if under(a, b) || under(b, a) {
		return true
	}
	if dir, ok := strings.CutSuffix(a, "/-"); ok {
		return under(b, dir)
	}
	return false
}

// under reports whether pointer a is b or inside it.
func under(a, b string) bool {
	return a == b || b == "" || strings.HasPrefix(a, b+"/")
}
