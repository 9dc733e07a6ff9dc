package audit

// SetReadChunk makes Store read logs n messages per Log.Read call until
// the returned function restores the default.
func SetReadChunk(n int) (restore func()) {
	old := readChunk
	readChunk = n
	return func() { readChunk = old }
}
