package snapshots_test

import (
	"context"
	"fmt"

	"github.com/profileledger/profileledger/snapshots"
)

func Example() {
	ctx := context.Background()
	st := snapshots.NewMemory(5)

	_ = st.Save(ctx, snapshots.Snapshot{Key: "user:123", Version: 7, Epoch: 1, State: []byte(`{"coins":3}`)})
	_ = st.Save(ctx, snapshots.Snapshot{Key: "user:123", Version: 9, Epoch: 1, State: []byte(`{"coins":5}`)})
	_ = st.PutRaw(ctx, "user:123", []byte("bit rot")) // a damaged newest value

	l, err := st.Load(ctx, "user:123", 0)
	if err != nil {
		panic(err)
	}
	for _, sk := range l.Skipped {
		fmt.Println("skipped:", sk.Err)
	}
	fmt.Println(l.Found, l.Snapshot.Version, string(l.Snapshot.State))

	l, _ = st.Load(ctx, "user:123", 8) // as of version 8
	fmt.Println(l.Found, l.Snapshot.Version, string(l.Snapshot.State))
	// Output:
	// skipped: snapshots: corrupt snapshot: no header line in 7 bytes
	// true 9 {"coins":5}
	// true 7 {"coins":3}
}
