// Package gameshop is a game's shop written the way a user of
// profileledger writes one. It is here for its tests (shop_test.go),
// which show how such code is tested with pltest from a module of its
// own.
package gameshop

import (
	"context"
	"errors"
	"slices"

	"github.com/profileledger/profileledger"
)

// Player is a player's profile.
type Player struct {
	Coins     int      `json:"coins"`
	Inventory []string `json:"inventory"`
	Receipts  []string `json:"receipts"` // purchases made, by receipt id
}

// NewPlayer is the profile a new player starts with.
func NewPlayer() Player { return Player{Coins: 100, Inventory: []string{}, Receipts: []string{}} }

// ErrNotEnoughCoins is returned by Buy and Gift when a player cannot pay.
var ErrNotEnoughCoins = errors.New("gameshop: not enough coins")

// Buy buys item for price. The receipt identifies the purchase: buying
// again with the same receipt changes nothing, so a client may send a
// purchase whose outcome it does not know again, to whichever server holds
// the player by then.
func Buy(ctx context.Context, s *profileledger.Session[Player], receipt, item string, price int) error {
	return s.Mutate(ctx, "shop.bought", Purchase(receipt, item, price))
}

// Purchase is Buy's change to the profile.
func Purchase(receipt, item string, price int) func(*Player) error {
	return func(p *Player) error {
		if slices.Contains(p.Receipts, receipt) {
			return nil
		}
		if p.Coins < price {
			return ErrNotEnoughCoins
		}
		p.Coins -= price
		p.Inventory = append(p.Inventory, item)
		p.Receipts = append(p.Receipts, receipt)
		return nil
	}
}

// Reward gives a player coins for a quest.
func Reward(coins int) func(*Player) error {
	return func(p *Player) error {
		p.Coins += coins
		return nil
	}
}

// Gift moves coins from one player to another, both held by this server:
// both change or neither does.
func Gift(ctx context.Context, from, to *profileledger.Session[Player], coins int) error {
	return profileledger.Trade(ctx, "shop.gift", from, to, Transfer(coins))
}

// Transfer is Gift's change to the two profiles.
func Transfer(coins int) func(from, to *Player) error {
	return func(from, to *Player) error {
		if from.Coins < coins {
			return ErrNotEnoughCoins
		}
		from.Coins -= coins
		to.Coins += coins
		return nil
	}
}
