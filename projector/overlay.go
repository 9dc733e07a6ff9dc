package projector

// Overlay returns known with the object members of stored that known lacks
// put back, recursively: the document a program's type sees (known, the
// JSON form of its typed value) laid over the document the log holds
// (stored), so that fields a newer program wrote and this one's type does
// not know survive. Where both hold a member, known's value wins (it is the
// typed data, normalised); known's members that stored lacks are kept.
// Arrays are laid over element by element when both have the same length
// (an array decoded into a typed slice keeps its length); otherwise known's
// array is taken as it is.
//
// It is pure and never changes its arguments: the result shares unchanged
// parts with known and with stored, as Apply's results do.
func Overlay(stored, known any) any {
	v, _ := overlay(stored, known)
	return v
}

// overlay returns Overlay's result and whether it differs from known.
func overlay(stored, known any) (any, bool) {
	switch k := known.(type) {
	case map[string]any:
		s, ok := stored.(map[string]any)
		if !ok || k == nil {
			return known, false
		}
		var out map[string]any // copied from k at the first difference
		for name, sv := range s {
			kv, has := k[name]
			if has {
				if kv, has = overlay(sv, kv); !has {
					continue
				}
			} else {
				kv = sv
			}
			if out == nil {
				out = make(map[string]any, len(k)+len(s))
				for n, v := range k {
					out[n] = v
				}
			}
			out[name] = kv
		}
		if out == nil {
			return known, false
		}
		return out, true
	case []any:
		s, ok := stored.([]any)
		if !ok || len(s) != len(k) {
			return known, false
		}
		var out []any
		for i := range k {
			v, changed := overlay(s[i], k[i])
			if !changed {
				continue
			}
			if out == nil {
				out = append([]any(nil), k...)
			}
			out[i] = v
		}
		if out == nil {
			return known, false
		}
		return out, true
	}
	return known, false
}
