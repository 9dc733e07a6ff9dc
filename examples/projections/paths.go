package projections

import (
	"errors"
	"fmt"
	"math"

	"github.com/profileledger/profileledger/projector"
)

// ItemsAt returns an items function for ItemIndex over untyped profiles
// (map[string]any, as the profileledger command opens a store): the
// strings of the array at the JSON pointer path. A profile without the
// array, or with something else there, holds no items. It fails for a
// path that is not a JSON pointer.
func ItemsAt(path string) (func(*map[string]any) []string, error) {
	if err := checkPath(path); err != nil {
		return nil, err
	}
	return func(p *map[string]any) []string {
		v, err := projector.Get(*p, path)
		arr, ok := v.([]any)
		if err != nil || !ok {
			return nil
		}
		out := make([]string, 0, len(arr))
		for _, x := range arr {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}, nil
}

// NumberAt returns a balance function for Balances over untyped profiles:
// the number at the JSON pointer path, rounded toward zero (0 if there is
// none). It fails for a path that is not a JSON pointer.
func NumberAt(path string) (func(*map[string]any) int64, error) {
	if err := checkPath(path); err != nil {
		return nil, err
	}
	return func(p *map[string]any) int64 {
		v, err := projector.Get(*p, path)
		f, ok := v.(float64)
		if err != nil || !ok || math.IsNaN(f) {
			return 0
		}
		return int64(f)
	}, nil
}

func checkPath(path string) error {
	if path == "" {
		return fmt.Errorf("projections: empty path: name the field, e.g. /gems")
	}
	_, err := projector.Get(map[string]any{}, path)
	if errors.Is(err, projector.ErrInvalidPath) {
		return fmt.Errorf("projections: %w", err)
	}
	return nil
}
