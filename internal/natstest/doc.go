// Package natstest starts embedded NATS servers with JetStream for tests.
//
// Every server listens on 127.0.0.1 on a port the kernel picks, keeps its
// JetStream store in a t.TempDir, logs nothing to the terminal and is shut
// down by a t.Cleanup. The server's log lines are kept in memory and written
// with t.Log only if the test fails.
//
//	func TestSomething(t *testing.T) {
//		srv := natstest.Run(t, natstest.SyncAlways())
//		nc, js := natstest.Connect(t, srv.URL())
//		...
//		srv.Restart(t) // same port, same store: data survives
//	}
//
// RunCluster starts n clustered servers in one process (3 for R3 streams)
// and returns once the JetStream meta group has a leader. A member is stopped
// with Server.Shutdown and brought back with Server.Restart.
package natstest
