package pltest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// payloadSize returns the payload size of a NATS operation that has one
// (PUB, HPUB, MSG, HMSG: the last field), and whether it has one.
func payloadSize(op string, f []string) (int, bool, error) {
	switch op {
	case "PUB", "HPUB", "MSG", "HMSG":
	default:
		return 0, false, nil
	}
	n, err := strconv.Atoi(f[len(f)-1])
	if err != nil || n < 0 {
		return 0, false, fmt.Errorf("pltest: proxy: bad %s line %q", op, strings.Join(f, " "))
	}
	return n, true, nil
}

// withoutConnectURLs returns an INFO line without the cluster's client
// URLs, or the line as it is if it has none or does not parse.
func withoutConnectURLs(line []byte) []byte {
	body, ok := bytes.CutPrefix(bytes.TrimRight(line, "\r\n"), []byte("INFO "))
	if !ok {
		return line
	}
	var info map[string]json.RawMessage
	if json.Unmarshal(body, &info) != nil {
		return line
	}
	_, a := info["connect_urls"]
	_, b := info["ws_connect_urls"]
	if !a && !b {
		return line
	}
	delete(info, "connect_urls")
	delete(info, "ws_connect_urls")
	out, err := json.Marshal(info)
	if err != nil {
		return line
	}
	return append(append([]byte("INFO "), out...), "\r\n"...)
}
