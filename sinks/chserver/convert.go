package chserver

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"
)

// colType is the part of a ClickHouse column type the converter needs.
type colType struct {
	raw  string
	base string   // Int32, String, DateTime64, Decimal, Enum8, ...
	elem *colType // Nullable / Array / LowCardinality element
}

func parseColType(s string) *colType {
	s = strings.TrimSpace(s)
	t := &colType{raw: s, base: s}
	if i := strings.IndexByte(s, '('); i >= 0 && strings.HasSuffix(s, ")") {
		t.base = s[:i]
		switch t.base {
		case "Nullable", "Array", "LowCardinality":
			t.elem = parseColType(s[i+1 : len(s)-1])
		}
	}
	if strings.HasPrefix(t.base, "Decimal") {
		t.base = "Decimal"
	}
	return t
}

var (
	tTime    = reflect.TypeFor[time.Time]()
	tDecimal = reflect.TypeFor[decimal.Decimal]()
	tUUID    = reflect.TypeFor[uuid.UUID]()
)

// goType is the Go element type clickhouse-go's column Append takes for t.
func (t *colType) goType() (reflect.Type, error) {
	switch t.base {
	case "Nullable":
		et, err := t.elem.goType()
		if err != nil {
			return nil, err
		}
		return reflect.PointerTo(et), nil
	case "LowCardinality":
		return t.elem.goType()
	case "Array":
		et, err := t.elem.goType()
		if err != nil {
			return nil, err
		}
		return reflect.SliceOf(et), nil
	case "Int8":
		return reflect.TypeFor[int8](), nil
	case "Int16":
		return reflect.TypeFor[int16](), nil
	case "Int32":
		return reflect.TypeFor[int32](), nil
	case "Int64":
		return reflect.TypeFor[int64](), nil
	case "UInt8":
		return reflect.TypeFor[uint8](), nil
	case "UInt16":
		return reflect.TypeFor[uint16](), nil
	case "UInt32":
		return reflect.TypeFor[uint32](), nil
	case "UInt64":
		return reflect.TypeFor[uint64](), nil
	case "Float32":
		return reflect.TypeFor[float32](), nil
	case "Float64":
		return reflect.TypeFor[float64](), nil
	case "Bool":
		return reflect.TypeFor[bool](), nil
	case "String", "FixedString", "Enum8", "Enum16":
		return reflect.TypeFor[string](), nil
	case "Date", "Date32", "DateTime", "DateTime64":
		return tTime, nil
	case "Decimal":
		return tDecimal, nil
	case "UUID":
		return tUUID, nil
	}
	return nil, fmt.Errorf("column type %s is not supported by the server sink's Insert", t.raw)
}

// columnSlice converts one column's Go values into the typed slice that
// clickhouse-go's column Append takes ([]int32, []*string, [][]string, ...).
// It runs once per batch; retries reuse the slices.
func columnSlice(t *colType, vals []any) (any, int, error) {
	if s, ok := fastSlice(t, vals); ok {
		return s, 0, nil
	}
	gt, err := t.goType()
	if err != nil {
		return nil, 0, err
	}
	out := reflect.MakeSlice(reflect.SliceOf(gt), len(vals), len(vals))
	for i, v := range vals {
		cv, err := convert(t, gt, v)
		if err != nil {
			return nil, i, err
		}
		out.Index(i).Set(cv)
	}
	return out.Interface(), 0, nil
}

func convert(t *colType, gt reflect.Type, v any) (reflect.Value, error) {
	if t.base == "LowCardinality" {
		return convert(t.elem, gt, v)
	}
	rv := reflect.ValueOf(v)
	if v == nil || rv.Kind() == reflect.Pointer && rv.IsNil() {
		if t.base == "Nullable" {
			return reflect.Zero(gt), nil
		}
		return reflect.Value{}, fmt.Errorf("NULL in a non-Nullable column")
	}
	if rv.Kind() == reflect.Pointer {
		v = rv.Elem().Interface()
		rv = rv.Elem()
	}
	switch t.base {
	case "Nullable":
		ev, err := convert(t.elem, gt.Elem(), v)
		if err != nil {
			return reflect.Value{}, err
		}
		p := reflect.New(gt.Elem())
		p.Elem().Set(ev)
		return p, nil
	case "Array":
		if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
			return reflect.Value{}, fmt.Errorf("want a slice, got %T", v)
		}
		out := reflect.MakeSlice(gt, rv.Len(), rv.Len())
		for i := 0; i < rv.Len(); i++ {
			ev, err := convert(t.elem, gt.Elem(), rv.Index(i).Interface())
			if err != nil {
				return reflect.Value{}, fmt.Errorf("element %d: %w", i, err)
			}
			out.Index(i).Set(ev)
		}
		return out, nil
	case "Int8", "Int16", "Int32", "Int64":
		n, err := toInt64(v)
		if err != nil {
			return reflect.Value{}, err
		}
		out := reflect.New(gt).Elem()
		if out.OverflowInt(n) {
			return reflect.Value{}, fmt.Errorf("%d overflows %s", n, t.base)
		}
		out.SetInt(n)
		return out, nil
	case "UInt8", "UInt16", "UInt32", "UInt64":
		n, err := toUint64(v)
		if err != nil {
			return reflect.Value{}, err
		}
		out := reflect.New(gt).Elem()
		if out.OverflowUint(n) {
			return reflect.Value{}, fmt.Errorf("%d overflows %s", n, t.base)
		}
		out.SetUint(n)
		return out, nil
	case "Float32", "Float64":
		f, err := toFloat64(v)
		if err != nil {
			return reflect.Value{}, err
		}
		out := reflect.New(gt).Elem()
		out.SetFloat(f)
		return out, nil
	case "Bool":
		b, ok := v.(bool)
		if !ok {
			return reflect.Value{}, fmt.Errorf("want bool, got %T", v)
		}
		return reflect.ValueOf(b), nil
	case "String", "FixedString", "Enum8", "Enum16":
		switch x := v.(type) {
		case string:
			return reflect.ValueOf(x), nil
		case []byte:
			return reflect.ValueOf(string(x)), nil
		}
		return reflect.Value{}, fmt.Errorf("want a string, got %T", v)
	case "Date", "Date32", "DateTime", "DateTime64":
		switch x := v.(type) {
		case time.Time:
			if t.base == "Date" || t.base == "Date32" {
				// the calendar date the caller wrote, whatever its zone
				x = time.Date(x.Year(), x.Month(), x.Day(), 0, 0, 0, 0, time.UTC)
			}
			return reflect.ValueOf(x), nil
		case string:
			for _, l := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999", "2006-01-02"} {
				if tm, err := time.ParseInLocation(l, x, time.UTC); err == nil {
					return reflect.ValueOf(tm), nil
				}
			}
			return reflect.Value{}, fmt.Errorf("%q is not a time (want RFC 3339 or 2006-01-02 15:04:05)", x)
		}
		return reflect.Value{}, fmt.Errorf("want time.Time, got %T", v)
	case "Decimal":
		var s string
		switch x := v.(type) {
		case string:
			s = x
		case decimal.Decimal:
			return reflect.ValueOf(x), nil
		case float64:
			return reflect.ValueOf(decimal.NewFromFloat(x)), nil
		case json.Number:
			s = x.String()
		default:
			n, err := toInt64(v)
			if err != nil {
				return reflect.Value{}, fmt.Errorf("want decimal text, got %T", v)
			}
			return reflect.ValueOf(decimal.NewFromInt(n)), nil
		}
		d, err := decimal.NewFromString(s)
		if err != nil {
			return reflect.Value{}, fmt.Errorf("%q is not a decimal", s)
		}
		return reflect.ValueOf(d), nil
	case "UUID":
		s, ok := v.(string)
		if !ok {
			if u, ok := v.(uuid.UUID); ok {
				return reflect.ValueOf(u), nil
			}
			return reflect.Value{}, fmt.Errorf("want a UUID string, got %T", v)
		}
		u, err := uuid.Parse(s)
		if err != nil {
			return reflect.Value{}, fmt.Errorf("%q is not a UUID", s)
		}
		return reflect.ValueOf(u), nil
	}
	return reflect.Value{}, fmt.Errorf("column type %s is not supported", t.raw)
}

func toInt64(v any) (int64, error) {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int(), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if rv.Uint() > math.MaxInt64 {
			return 0, fmt.Errorf("%d overflows int64", rv.Uint())
		}
		return int64(rv.Uint()), nil
	case reflect.Bool:
		if rv.Bool() {
			return 1, nil
		}
		return 0, nil
	case reflect.Float32, reflect.Float64:
		f := rv.Float()
		if f != math.Trunc(f) || math.Abs(f) > 1<<53 {
			return 0, fmt.Errorf("%v is not an integer", f)
		}
		return int64(f), nil
	case reflect.String:
		n, err := strconv.ParseInt(rv.String(), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not an integer", rv.String())
		}
		return n, nil
	}
	return 0, fmt.Errorf("want an integer, got %T", v)
}

func toUint64(v any) (uint64, error) {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return rv.Uint(), nil
	case reflect.String:
		n, err := strconv.ParseUint(rv.String(), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not an unsigned integer", rv.String())
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
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Float32, reflect.Float64:
		return rv.Float(), nil
	case reflect.String:
		f, err := strconv.ParseFloat(rv.String(), 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a number", rv.String())
		}
		return f, nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return float64(rv.Uint()), nil
	}
	n, err := toInt64(v)
	if err != nil {
		return 0, fmt.Errorf("want a number, got %T", v)
	}
	return float64(n), nil
}

// normalize turns a scanned value into the Go types sinks.Result promises:
// int64, uint64, float64, string, bool, time.Time, nil, []any.
func normalize(v any) any {
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return nil
		}
		rv = rv.Elem()
	}
	if !rv.IsValid() {
		return nil
	}
	switch x := rv.Interface().(type) {
	case time.Time:
		return x
	case decimal.Decimal:
		return x.String()
	case uuid.UUID:
		return x.String()
	case big.Int:
		return x.String()
	case fmt.Stringer:
		if rv.Kind() == reflect.Struct || rv.Kind() == reflect.Array {
			return x.String()
		}
	}
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return rv.Uint()
	case reflect.Float32:
		return float64(float32(rv.Float()))
	case reflect.Float64:
		return rv.Float()
	case reflect.String:
		return rv.String()
	case reflect.Bool:
		return rv.Bool()
	case reflect.Slice, reflect.Array:
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = normalize(rv.Index(i).Interface())
		}
		return out
	}
	return rv.Interface()
}

// fastSlice builds the column slice without reflection when every value
// already has the Go type the column takes (the common case for the
// pipeline's rows); ok is false otherwise.
func fastSlice(t *colType, vals []any) (any, bool) {
	switch t.base {
	case "LowCardinality":
		return fastSlice(t.elem, vals)
	case "Int64":
		return same[int64](vals)
	case "UInt64":
		return same[uint64](vals)
	case "UInt32":
		return same[uint32](vals)
	case "UInt8":
		return same[uint8](vals)
	case "Float64":
		return same[float64](vals)
	case "String":
		return same[string](vals)
	case "DateTime", "DateTime64":
		return same[time.Time](vals)
	case "Nullable":
		switch t.elem.base {
		case "Int64":
			return sameOrNil[int64](vals)
		case "String":
			return sameOrNil[string](vals)
		case "DateTime", "DateTime64":
			return sameOrNil[time.Time](vals)
		}
	}
	return nil, false
}

func same[T any](vals []any) (any, bool) {
	out := make([]T, len(vals))
	for i, v := range vals {
		x, ok := v.(T)
		if !ok {
			return nil, false
		}
		out[i] = x
	}
	return out, true
}

func sameOrNil[T any](vals []any) (any, bool) {
	out := make([]*T, len(vals))
	for i, v := range vals {
		switch x := v.(type) {
		case nil:
		case T:
			out[i] = &x
		default:
			return nil, false
		}
	}
	return out, true
}
