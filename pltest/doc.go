// Package pltest is for testing code that uses profileledger: embedded
// NATS servers and clusters, faults between a client and NATS, the auditor
// as a test assertion, and a random workload that checks every
// acknowledged write landed exactly once. It is to profileledger what
// net/http/httptest is to net/http.
//
// Everything runs in the test's process on 127.0.0.1: servers keep their
// JetStream store in a t.TempDir, log nothing to the terminal (their log
// lines are written with t.Log if the test fails), and are shut down by a
// t.Cleanup, as are connections, stores and proxies. Helpers take a
// testing.TB and call t.Helper.
//
//	func TestBuyingASword(t *testing.T) {
//		st := pltest.Store(t, PlayerData{Coins: 100}) // a fresh server and an open Store; audited at cleanup
//		s, err := st.StartSession(t.Context(), "user:42")
//		...
//	}
//
// The pieces, smallest first:
//
//   - Run starts a server (SyncAlways, MemoryStorage, Port); a Server can
//     Stop, Kill (as near to a crash as one process allows), Start and
//     Restart on the same port and directory.
//   - RunCluster starts n clustered servers; StreamLeader finds the member
//     that leads a stream, and each member stops and starts on its own.
//   - Connect connects to a server and is closed at cleanup; OpenStore is
//     one game server (a connection and a Store); Store is the one-liner.
//   - Proxy puts a FaultProxy between a client and its server: Freeze and
//     Thaw, Cut and Heal, Reset, Latency, and DropNextReply, which loses
//     the acknowledgement of one publish in flight.
//   - Audit fails the test with every violation of the log's invariants;
//     ReadLog returns one profile's log.
//   - Workload runs random starts, hand-overs, steals, mutations and trades
//     of your own profile type and mutation functions across several
//     Stores, then checks that every acknowledged one is in the log exactly
//     once, that nothing rejected is, and that the log replays to the data.
//     OutcomeOf says what a Mutate or Trade error means for the log.
package pltest
