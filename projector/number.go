package projector

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// decimal is a JSON number in canonical form: value = ±0.digits × 10^exp,
// with no leading or trailing zeros in digits. Zero has no digits.
type decimal struct {
	neg    bool
	digits string
	exp    int64
	bigExp *big.Int // used instead of exp when the exponent is huge
}

// parseDecimal parses s by the JSON number grammar
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? and reports whether it
// matched.
func parseDecimal(s string) (decimal, bool) {
	var d decimal
	i := 0
	if i < len(s) && s[i] == '-' {
		d.neg = true
		i++
	}
	intStart := i
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		i = skipDigits(s, i)
	default:
		return decimal{}, false
	}
	intPart := s[intStart:i]
	fracPart := ""
	if i < len(s) && s[i] == '.' {
		j := skipDigits(s, i+1)
		if j == i+1 {
			return decimal{}, false
		}
		fracPart = s[i+1 : j]
		i = j
	}
	expPart := ""
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		j := i + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		k := skipDigits(s, j)
		if k == j {
			return decimal{}, false
		}
		expPart = s[i+1 : k]
		i = k
	}
	if i != len(s) {
		return decimal{}, false
	}

	// value = 0.(intPart fracPart) × 10^(len(intPart) + exponent)
	var point int64
	if intPart == "0" {
		z := len(fracPart) - len(strings.TrimLeft(fracPart, "0"))
		d.digits = strings.TrimRight(fracPart[z:], "0")
		point = -int64(z)
	} else {
		d.digits = strings.TrimRight(intPart+fracPart, "0")
		point = int64(len(intPart))
	}
	if d.digits == "" {
		return decimal{}, true // zero, of either sign
	}
	if expPart == "" {
		d.exp = point
		return d, true
	}
	if e, err := strconv.ParseInt(expPart, 10, 64); err == nil && e > -1<<62 && e < 1<<62 {
		d.exp = e + point
		return d, true
	}
	e, ok := new(big.Int).SetString(strings.TrimPrefix(expPart, "+"), 10)
	if !ok {
		return decimal{}, false // cannot happen: expPart is [+-]?[0-9]+
	}
	d.bigExp = e.Add(e, big.NewInt(point))
	return d, true
}

func skipDigits(s string, i int) int {
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}

// equal reports whether d and e are the same number.
func (d decimal) equal(e decimal) bool {
	if d.digits != e.digits {
		return false
	}
	if d.digits == "" {
		return true // zero equals negative zero
	}
	if d.neg != e.neg {
		return false
	}
	if d.bigExp == nil && e.bigExp == nil {
		return d.exp == e.exp
	}
	return d.exponent().Cmp(e.exponent()) == 0
}

func (d decimal) exponent() *big.Int {
	if d.bigExp != nil {
		return d.bigExp
	}
	return big.NewInt(d.exp)
}

// equalNumbers compares two numbers by exact decimal value. Strings that are
// not JSON numbers are equal only to themselves.
func equalNumbers(a, b json.Number) bool {
	if a == b {
		return true
	}
	x, okA := parseDecimal(string(a))
	y, okB := parseDecimal(string(b))
	return okA && okB && x.equal(y)
}

// isNumber reports whether s is a JSON number.
func isNumber(s json.Number) bool {
	_, ok := parseDecimal(string(s))
	return ok
}

// addNumbers returns a + b. Two integers that fit int64 add exactly when the
// sum fits int64; everything else is added in float64, and a sum that is not
// finite is ErrOutOfRange. Both must be JSON numbers.
func addNumbers(a, b json.Number) (json.Number, error) {
	x, errX := strconv.ParseInt(string(a), 10, 64)
	y, errY := strconv.ParseInt(string(b), 10, 64)
	if errX == nil && errY == nil {
		if s := x + y; (s > x) == (y > 0) {
			return json.Number(strconv.FormatInt(s, 10)), nil
		}
	}
	// ParseFloat cannot fail on a JSON number except with ErrRange, and then
	// it returns ±Inf (caught below) or a correctly rounded tiny value.
	f, _ := strconv.ParseFloat(string(a), 64)
	g, _ := strconv.ParseFloat(string(b), 64)
	sum := f + g
	if math.IsInf(sum, 0) || math.IsNaN(sum) {
		return "", fmt.Errorf("%w: %s + %s is not a finite float64", ErrOutOfRange, a, b)
	}
	return json.Number(formatFloat(sum)), nil
}

// formatFloat formats f as encoding/json does: the shortest representation
// that round-trips, in exponent form only for very large or small numbers.
func formatFloat(f float64) string {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b := strconv.AppendFloat(nil, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9, as encoding/json does
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return string(b)
}
