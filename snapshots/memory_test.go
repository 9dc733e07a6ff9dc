package snapshots_test

import (
	"testing"

	"github.com/profileledger/profileledger/snapshots"
	"github.com/profileledger/profileledger/snapshots/snapshotstest"
)

func TestMemoryConformance(t *testing.T) {
	snapshotstest.Run(t, func(t *testing.T) snapshotstest.Target {
		return snapshots.NewMemory(3)
	})
}
