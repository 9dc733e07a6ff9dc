package ledger

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// The hash chain. Every message appended to a profile's event subject
// carries the header ChainHeader = "<seq>:<hash>": the sequence and the
// chain hash (unpadded base64url, 43 characters) of the message before it
// on the same subject (sequence 0 and a zero hash for the first). The
// chain hash of a stored message is
//
//	sha256("profileledger chain v1\n" || its ChainHeader value || "\n" || its data)
//
// so it commits to the message's own bytes and, through the header, to
// every message before it. A message written before the chain existed has
// no ChainHeader; its hash is taken with an empty header value, so that the
// first chained message can name it. Deleting, altering, inserting or
// reordering a message breaks a link, which the auditor reports at the
// sequence where it breaks. An unkeyed chain does not stop a writer who
// recomputes it: that would need signatures (SignatureHeader, reserved;
// not written: see the README's "Signed events").
//
// The writer knows its predecessor's hash without asking: the fence it
// appends on is a Head (sequence and hash), taken from what it appended or
// read last. A retry sends the same bytes, header included.
const (
	// ChainHeader names the previous message on the subject:
	// "<seq>:<sha256, unpadded base64url>". Base64 rather than hex: the
	// server scans every header of every message for its own, and a
	// shorter one costs Mutate less (bench mutate_p50_vs_raw).
	ChainHeader = "Pl-Prev"
	// SignatureHeader is reserved for "<nkey public key>:<base64url
	// signature>", a writing node's Ed25519 signature of the message's
	// chain hash. Nothing writes it yet (measured too dear per append);
	// reads report it as Record.Signature.
	SignatureHeader = "Pl-Sig"
)

const chainDomain = "profileledger chain v1\n"

// Head is where a subject's chain ends: the sequence of its last message
// and that message's chain hash. The zero Head is an empty subject. It is
// the fence an append is made on.
type Head struct {
	Seq  uint64
	Hash [32]byte
}

// String is the head as ChainHeader writes it: "<seq>:<base64url hash>".
func (h Head) String() string {
	var b [20 + 1 + 43]byte
	out := strconv.AppendUint(b[:0], h.Seq, 10)
	out = append(out, ':')
	out = base64.RawURLEncoding.AppendEncode(out, h.Hash[:])
	return string(out)
}

// ParseHead reads a ChainHeader value.
func ParseHead(v string) (Head, error) {
	seqText, hashText, ok := strings.Cut(v, ":")
	if !ok {
		return Head{}, fmt.Errorf("chain link %q is not <seq>:<hash>", v)
	}
	seq, err := strconv.ParseUint(seqText, 10, 64)
	if err != nil {
		return Head{}, fmt.Errorf("chain link %q: bad sequence: %v", v, err)
	}
	var h Head
	h.Seq = seq
	if len(hashText) != 43 {
		return Head{}, fmt.Errorf("chain link %q: the hash is not 43 base64url characters", v)
	}
	if n, err := base64.RawURLEncoding.Decode(h.Hash[:], []byte(hashText)); err != nil || n != 32 {
		return Head{}, fmt.Errorf("chain link %q: the hash is not 43 base64url characters", v)
	}
	return h, nil
}

// ChainHash is the chain hash of a stored message whose ChainHeader value
// is link ("" if it has none) and whose data is data.
func ChainHash(link string, data []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(chainDomain))
	h.Write([]byte(link))
	h.Write([]byte{'\n'})
	h.Write(data)
	var out [32]byte
	h.Sum(out[:0])
	return out
}
