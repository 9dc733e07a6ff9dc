package ledger_test

import (
	"errors"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger/internal/jserr"
	"github.com/profileledger/profileledger/ledger"
)

func TestParseAckReadsTheSequenceOrTheError(t *testing.T) {
	ok := map[string]uint64{
		`{"stream":"PL_PLAYERS","seq":42}`:                            42,
		`{"stream":"PL_PLAYERS","seq":7,"duplicate":true}`:            7,
		`{"stream":"PL_PLAYERS","seq":9,"domain":"hub"}`:              9,
		`{"stream":"PL_PLAYERS","seq":12,"batch":"b1","count":2}`:     12,
		`{"stream":"PL_PLAYERS","seq":18446744073709551615}`:          18446744073709551615,
		`{"seq":5,"stream":"PL_PLAYERS"}`:                             5, // another order: encoding/json
		`{ "stream" : "PL_PLAYERS" , "seq" : 6 }`:                     6,
		`{"stream":"PL\u005fPLAYERS","seq":3}`:                        3,
		`{"stream":"PL_PLAYERS","domain":"hub","seq":4,"extra":[1]}`:  4,
		`{"stream":"PL_PLAYERS","seq":8,"val":"1","extra":{"a":"}"}}`: 8,
	}
	for data, want := range ok {
		got, err := ledger.ParseAck([]byte(data))
		if err != nil || got != want {
			t.Errorf("ParseAck(%s) = %d, %v; want %d", data, got, err, want)
		}
	}
	bad := []string{
		``, `{`, `null`, `{}`, `{"stream":"PL_PLAYERS"}`, `{"stream":"PL_PLAYERS","seq":0}`, `{"stream":"","seq":4}`,
		`{"stream":"PL_PLAYERS","seq":-1}`, `{"stream":"PL_PLAYERS","seq":1.5}`, `{"stream":"PL_PLAYERS","seq":18446744073709551616}`,
		`{"stream":"PL_PLAYERS","seq":12`, `{"stream":"PL_PLAYERS","seq":"12"}`,
	}
	for _, data := range bad {
		if seq, err := ledger.ParseAck([]byte(data)); err == nil {
			t.Errorf("ParseAck(%s) = %d, nil; want an error", data, seq)
		} else if !errors.Is(err, jetstream.ErrInvalidJSAck) {
			t.Errorf("ParseAck(%s): %v, want it to match ErrInvalidJSAck", data, err)
		}
	}
	_, err := ledger.ParseAck([]byte(`{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 3"}}`))
	if !jserr.IsWrongLastSequence(err) {
		t.Errorf("an error ack gave %v, want the API error 10071", err)
	}
}
