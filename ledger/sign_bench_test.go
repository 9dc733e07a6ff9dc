package ledger_test

import (
	"testing"

	"github.com/nats-io/nkeys"
	"github.com/profileledger/profileledger/ledger"
)

// BenchmarkSignature measures what signing each appended message with the
// writing node's nkey (Ed25519) would add to an append, and what checking
// it adds to an audit: the signature is over the message's 32-byte chain
// hash, so its cost does not grow with the event. Compare with
// BenchmarkAppend/events=1 (one whole fenced append on the embedded
// server) and with bench's mutate_p50_vs_raw. Run:
//
//	go test -run '^$' -bench 'Signature|Append/events=1$' ./ledger/
func BenchmarkSignature(b *testing.B) {
	kp, err := nkeys.CreateServer()
	if err != nil {
		b.Fatal(err)
	}
	h := ledger.ChainHash("1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", make([]byte, 479))
	b.Run("chain-hash", func(b *testing.B) {
		for b.Loop() {
			h = ledger.ChainHash("1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", make([]byte, 479))
		}
	})
	b.Run("sign", func(b *testing.B) {
		for b.Loop() {
			if _, err := kp.Sign(h[:]); err != nil {
				b.Fatal(err)
			}
		}
	})
	sig, _ := kp.Sign(h[:])
	pub, _ := kp.PublicKey()
	verifier, err := nkeys.FromPublicKey(pub)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("verify", func(b *testing.B) {
		for b.Loop() {
			if err := verifier.Verify(h[:], sig); err != nil {
				b.Fatal(err)
			}
		}
	})
}
