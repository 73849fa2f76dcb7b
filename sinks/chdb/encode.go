package chdb

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"strconv"
	"strings"
	"time"
)

func (t *chType) String() string {
	if len(t.args) == 0 {
		return t.name
	}
	return t.name + "(" + strings.Join(t.args, ", ") + ")"
}

func appendValue(b []byte, t *chType, v any) ([]byte, error) {
	// fast paths: the Go types the pipeline produces
	switch x := v.(type) {
	case int64:
		if t.kind == kInt64 {
			return binary.LittleEndian.AppendUint64(b, uint64(x)), nil
		}
	case string:
		if t.kind == kString || t.kind == kLowCardinality && t.elem.kind == kString {
			b = binary.AppendUvarint(b, uint64(len(x)))
			return append(b, x...), nil
		}
	case uint64:
		if t.kind == kUInt64 {
			return binary.LittleEndian.AppendUint64(b, x), nil
		}
	case time.Time:
		if t.kind == kDateTime64 {
			n := x.Unix()*pow10(t.scale) + int64(x.Nanosecond())/pow10(9-t.scale)
			return binary.LittleEndian.AppendUint64(b, uint64(n)), nil
		}
	case uint8:
		if t.kind == kUInt8 {
			return append(b, x), nil
		}
	}
	switch t.kind {
	case kNullable:
		if isNil(v) {
			return append(b, 1), nil
		}
		return appendValue(append(b, 0), t.elem, deref(v))
	case kLowCardinality:
		return appendValue(b, t.elem, v)
	}
	if isNil(v) {
		return nil, fmt.Errorf("NULL in a non-Nullable column")
	}
	v = deref(v)
	switch t.kind {
	case kInt8, kInt16, kInt32, kInt64:
		n, err := toInt64(v)
		if err != nil {
			return nil, err
		}
		bits := intBits(t.kind)
		if bits < 64 && (n < -(1<<(bits-1)) || n >= 1<<(bits-1)) {
			return nil, fmt.Errorf("%d overflows %s", n, t.name)
		}
		return appendLE(b, uint64(n), bits/8), nil
	case kUInt8, kUInt16, kUInt32, kUInt64:
		n, err := toUint64(v)
		if err != nil {
			return nil, err
		}
		bits := intBits(t.kind)
		if bits < 64 && n >= 1<<bits {
			return nil, fmt.Errorf("%d overflows %s", n, t.name)
		}
		return appendLE(b, n, bits/8), nil
	case kFloat32, kFloat64:
		f, err := toFloat64(v)
		if err != nil {
			return nil, err
		}
		if t.kind == kFloat32 {
			return binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(f))), nil
		}
		return binary.LittleEndian.AppendUint64(b, math.Float64bits(f)), nil
	case kBool:
		x, ok := v.(bool)
		if !ok {
			return nil, fmt.Errorf("want bool, got %T", v)
		}
		if x {
			return append(b, 1), nil
		}
		return append(b, 0), nil
	case kString:
		s, err := toString(v)
		if err != nil {
			return nil, err
		}
		b = binary.AppendUvarint(b, uint64(len(s)))
		return append(b, s...), nil
	case kFixedString:
		s, err := toString(v)
		if err != nil {
			return nil, err
		}
		if len(s) > t.width {
			return nil, fmt.Errorf("%d bytes do not fit %s", len(s), t.name+"("+t.args[0]+")")
		}
		b = append(b, s...)
		for i := len(s); i < t.width; i++ {
			b = append(b, 0)
		}
		return b, nil
	case kUUID:
		s, err := toString(v)
		if err != nil {
			return nil, err
		}
		u, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
		if err != nil || len(u) != 16 {
			return nil, fmt.Errorf("%q is not a UUID", s)
		}
		for i := 7; i >= 0; i-- {
			b = append(b, u[i])
		}
		for i := 15; i >= 8; i-- {
			b = append(b, u[i])
		}
		return b, nil
	case kDate, kDate32:
		tm, err := toTime(v, time.UTC)
		if err != nil {
			return nil, err
		}
		days := time.Date(tm.Year(), tm.Month(), tm.Day(), 0, 0, 0, 0, time.UTC).Unix() / 86400
		if t.kind == kDate {
			if days < 0 || days > math.MaxUint16 {
				return nil, fmt.Errorf("%s is outside Date's range (1970-01-01..2149-06-06)", tm.Format("2006-01-02"))
			}
			return binary.LittleEndian.AppendUint16(b, uint16(days)), nil
		}
		return binary.LittleEndian.AppendUint32(b, uint32(int32(days))), nil
	case kDateTime:
		tm, err := toTime(v, t.loc)
		if err != nil {
			return nil, err
		}
		s := tm.Unix()
		if s < 0 || s > math.MaxUint32 {
			return nil, fmt.Errorf("%s is outside DateTime's range", tm)
		}
		return binary.LittleEndian.AppendUint32(b, uint32(s)), nil
	case kDateTime64:
		tm, err := toTime(v, t.loc)
		if err != nil {
			return nil, err
		}
		n := tm.Unix()*pow10(t.scale) + int64(tm.Nanosecond())/pow10(9-t.scale)
		return binary.LittleEndian.AppendUint64(b, uint64(n)), nil
	case kDecimal:
		return appendDecimal(b, t, v)
	case kEnum8, kEnum16:
		var n int64
		if s, ok := v.(string); ok {
			e, ok := t.enum[s]
			if !ok {
				return nil, fmt.Errorf("%q is not a value of %s", s, t.String())
			}
			n = int64(e)
		} else {
			var err error
			if n, err = toInt64(v); err != nil {
				return nil, err
			}
		}
		if t.kind == kEnum8 {
			return append(b, byte(int8(n))), nil
		}
		return binary.LittleEndian.AppendUint16(b, uint16(int16(n))), nil
	case kArray:
		switch x := v.(type) {
		case []string:
			b = binary.AppendUvarint(b, uint64(len(x)))
			var err error
			for _, e := range x {
				if b, err = appendValue(b, t.elem, e); err != nil {
					return nil, err
				}
			}
			return b, nil
		case []any:
			b = binary.AppendUvarint(b, uint64(len(x)))
			var err error
			for _, e := range x {
				if b, err = appendValue(b, t.elem, e); err != nil {
					return nil, err
				}
			}
			return b, nil
		}
		rv := reflect.ValueOf(v)
		if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
			return nil, fmt.Errorf("want a slice, got %T", v)
		}
		b = binary.AppendUvarint(b, uint64(rv.Len()))
		var err error
		for i := 0; i < rv.Len(); i++ {
			if b, err = appendValue(b, t.elem, rv.Index(i).Interface()); err != nil {
				return nil, err
			}
		}
		return b, nil
	}
	return nil, fmt.Errorf("column type %s is not supported by the embedded engine's Insert", t.String())
}

func intBits(k kind) uint {
	switch k {
	case kInt8, kUInt8:
		return 8
	case kInt16, kUInt16:
		return 16
	case kInt32, kUInt32:
		return 32
	}
	return 64
}

func appendLE(b []byte, v uint64, n uint) []byte {
	for i := uint(0); i < n; i++ {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}

func pow10(n int) int64 {
	p := int64(1)
	for ; n > 0; n-- {
		p *= 10
	}
	return p
}

// appendDecimal encodes a decimal given as exact text (or an integer, or a
// float formatted shortest) scaled by the column's scale.
func appendDecimal(b []byte, t *chType, v any) ([]byte, error) {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case float64:
		s = strconv.FormatFloat(x, 'f', -1, 64)
	case float32:
		s = strconv.FormatFloat(float64(x), 'f', -1, 32)
	case json.Number:
		s = x.String()
	case fmt.Stringer: // e.g. shopspring/decimal.Decimal
		s = x.String()
	default:
		n, err := toInt64(v)
		if err != nil {
			return nil, fmt.Errorf("want decimal text, got %T", v)
		}
		s = strconv.FormatInt(n, 10)
	}
	return appendDecimalText(b, t, s)
}

// appendDecimalText encodes decimal text s scaled by the column's scale.
func appendDecimalText(b []byte, t *chType, s string) ([]byte, error) {
	if t.width <= 8 {
		if n, ok := parseDecimal64(s, t.scale); ok {
			if t.width == 4 && (n < math.MinInt32 || n > math.MaxInt32) {
				return nil, fmt.Errorf("%s overflows %s", s, t.String())
			}
			return appendLE(b, uint64(n), uint(t.width)), nil
		}
	}
	n, err := parseDecimal(s, t.scale)
	if err != nil {
		return nil, err
	}
	bits := t.width * 8
	lim := new(big.Int).Lsh(big.NewInt(1), uint(bits-1))
	if n.CmpAbs(lim) >= 0 {
		return nil, fmt.Errorf("%s overflows %s", s, t.String())
	}
	if t.width <= 8 {
		return appendLE(b, uint64(n.Int64()), uint(t.width)), nil
	}
	// two's complement, little-endian, width bytes
	if n.Sign() < 0 {
		n.Add(n, new(big.Int).Lsh(big.NewInt(1), uint(bits)))
	}
	be := n.FillBytes(make([]byte, t.width))
	for i := len(be) - 1; i >= 0; i-- {
		b = append(b, be[i])
	}
	return b, nil
}

// parseDecimal64 is parseDecimal's fast path for results that fit 18 digits;
// ok is false when the text needs the slow path (or is invalid).
func parseDecimal64(s string, scale int) (int64, bool) {
	i, neg := 0, false
	if i < len(s) && (s[i] == '-' || s[i] == '+') {
		neg = s[i] == '-'
		i++
	}
	var n int64
	digits, frac, seenDot := 0, 0, false
	for ; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.' && !seenDot:
			seenDot = true
			continue
		case c < '0' || c > '9':
			return 0, false
		}
		if seenDot {
			frac++
			if frac > scale {
				return 0, false
			}
		}
		n = n*10 + int64(c-'0')
		if digits++; digits > 18 {
			return 0, false
		}
	}
	if digits == 0 {
		return 0, false
	}
	for ; frac < scale; frac++ {
		if digits++; digits > 18 {
			return 0, false
		}
		n *= 10
	}
	if neg {
		n = -n
	}
	return n, true
}

// parseDecimal parses "-123.45" into the integer 12345 (scale 2). More
// fractional digits than the scale is an error, not a silent rounding.
func parseDecimal(s string, scale int) (*big.Int, error) {
	txt := strings.TrimSpace(s)
	neg := strings.HasPrefix(txt, "-")
	txt = strings.TrimLeft(txt, "+-")
	ip, fp, _ := strings.Cut(txt, ".")
	fp = strings.TrimRight(fp, "0")
	if len(fp) > scale {
		return nil, fmt.Errorf("%q has more than %d fractional digits", s, scale)
	}
	digits := ip + fp + strings.Repeat("0", scale-len(fp))
	if ip == "" && fp == "" {
		return nil, fmt.Errorf("%q is not a decimal", s)
	}
	n, ok := new(big.Int).SetString(digits, 10)
	if !ok || strings.ContainsAny(digits, "+-") {
		return nil, fmt.Errorf("%q is not a decimal", s)
	}
	if neg {
		n.Neg(n)
	}
	return n, nil
}

func isNil(v any) bool {
	switch v.(type) {
	case nil:
		return true
	case string, int64, uint64, int32, uint32, uint8, int, float64, bool, time.Time, []string, []any:
		return false
	}
	if reflect.TypeOf(v).Kind() != reflect.Pointer {
		return false
	}
	return reflect.ValueOf(v).IsNil()
}

// deref turns a non-nil pointer (*string, *int64, ...) into its value.
func deref(v any) any {
	switch v.(type) {
	case string, int64, uint64, int32, uint32, uint8, int, float64, bool, time.Time, []string, []any:
		return v
	}
	if reflect.TypeOf(v).Kind() != reflect.Pointer {
		return v
	}
	if rv := reflect.ValueOf(v); !rv.IsNil() {
		return rv.Elem().Interface()
	}
	return v
}

func toInt64(v any) (int64, error) {
	switch x := v.(type) {
	case int:
		return int64(x), nil
	case int8:
		return int64(x), nil
	case int16:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case int64:
		return x, nil
	case uint:
		if uint64(x) > math.MaxInt64 {
			return 0, fmt.Errorf("%d overflows int64", x)
		}
		return int64(x), nil
	case uint8:
		return int64(x), nil
	case uint16:
		return int64(x), nil
	case uint32:
		return int64(x), nil
	case uint64:
		if x > math.MaxInt64 {
			return 0, fmt.Errorf("%d overflows int64", x)
		}
		return int64(x), nil
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > 1<<53 {
			return 0, fmt.Errorf("%v is not an integer", x)
		}
		return int64(x), nil
	case json.Number:
		return x.Int64()
	case string:
		n, err := strconv.ParseInt(x, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not an integer", x)
		}
		return n, nil
	}
	return 0, fmt.Errorf("want an integer, got %T", v)
}

func toUint64(v any) (uint64, error) {
	switch x := v.(type) {
	case uint:
		return uint64(x), nil
	case uint8:
		return uint64(x), nil
	case uint16:
		return uint64(x), nil
	case uint32:
		return uint64(x), nil
	case uint64:
		return x, nil
	case string:
		n, err := strconv.ParseUint(x, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not an unsigned integer", x)
		}
		return n, nil
	case json.Number:
		n, err := strconv.ParseUint(x.String(), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not an unsigned integer", x)
		}
		return n, nil
	}
	n, err := toInt64(v)
	if err != nil {
		return 0, err
	}
	if n < 0 {
		return 0, fmt.Errorf("%d is negative", n)
	}
	return uint64(n), nil
}

func toFloat64(v any) (float64, error) {
	switch x := v.(type) {
	case float64:
		return x, nil
	case float32:
		return float64(x), nil
	case json.Number:
		return x.Float64()
	case string:
		f, err := strconv.ParseFloat(x, 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a number", x)
		}
		return f, nil
	}
	n, err := toInt64(v)
	if err != nil {
		if u, uerr := toUint64(v); uerr == nil {
			return float64(u), nil
		}
		return 0, fmt.Errorf("want a number, got %T", v)
	}
	return float64(n), nil
}

func toString(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case []byte:
		return string(x), nil
	case fmt.Stringer:
		return x.String(), nil
	}
	return "", fmt.Errorf("want a string, got %T", v)
}

var timeLayouts = []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999", "2006-01-02"}

func toTime(v any, loc *time.Location) (time.Time, error) {
	switch x := v.(type) {
	case time.Time:
		return x, nil
	case string:
		for _, l := range timeLayouts {
			if t, err := time.ParseInLocation(l, x, loc); err == nil {
				return t, nil
			}
		}
		return time.Time{}, fmt.Errorf("%q is not a time (want RFC 3339 or 2006-01-02 15:04:05)", x)
	}
	return time.Time{}, fmt.Errorf("want time.Time, got %T", v)
}
