// Package projections holds two projections of a store's events, as real
// code a trading backend can use or copy: an item-owner index that flags a
// dupe the moment one appears (ItemIndex), and per-profile balances
// written to a KV bucket a web page can read (Balances). Each is a
// profileledger.Handler: give its Handle method to Store.Project.
//
//	idx := projections.NewItemIndex(func(p *Player) []string { return p.Gems }, func(d projections.Dupe) {
//		slog.Error("dupe", "item", d.Item, "owners", d.Owners, "seq", d.Seq)
//	})
//	p, _ := st.Project("items", idx.Handle, profileledger.ProjectFromStart()) // the index lives in memory
//	go p.Run(ctx)
//
// Both are sequence-checked, so their effect is exactly once although a
// projection delivers at least once: each remembers, per profile, the
// stream sequence its state reflects and ignores an older event.
package projections
