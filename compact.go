package profileledger

import "reflect"

// compact reallocates every slice reachable from v whose capacity exceeds
// its length (encoding/json grows them by doubling while it decodes) to
// its length, so that a held profile costs what its data needs. It is
// called once per load, on data nothing else refers to yet.
func compact(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			compact(v.Elem())
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if f := v.Field(i); f.CanSet() {
				compact(f)
			}
		}
	case reflect.Array:
		for i := range v.Len() {
			compact(v.Index(i))
		}
	case reflect.Slice:
		if v.IsNil() {
			return
		}
		if v.Cap() > v.Len() && v.CanSet() {
			exact := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
			reflect.Copy(exact, v)
			v.Set(exact)
		}
		for i := range v.Len() {
			compact(v.Index(i))
		}
	case reflect.Map:
		// Map values are not addressable; a map's own memory is the
		// runtime's to size.
	}
}
