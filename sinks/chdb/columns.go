package chdb

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"math"
	"reflect"
	"time"

	"github.com/orderflow/orderflow/sinks"
)

// InsertColumns writes a batch given column by column: data[j] holds the
// values of columns[j] for every row, as a typed slice, so no value is boxed.
// Slices encoded directly: []int64, []int32, []uint64, []uint32, []uint8,
// []string (String, LowCardinality(String), Decimal as exact text), [][]byte
// (String),
// []time.Time and sinks.Micros (DateTime64), sinks.Cents (Decimal of scale
// 2 or more, up to 18 digits), and []sql.Null[int64],
// []sql.Null[string], []sql.Null[time.Time], sinks.NullMicros for Nullable
// columns (Valid false is NULL). Any
// other slice, or a slice that does not match the column's type, goes
// through Insert's per-value conversions: the block is byte for byte the one
// Insert builds from the same values (sql.Null as nil or its value).
func (e *Engine) InsertColumns(ctx context.Context, table string, columns []string, data []any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(columns) == 0 {
		return fmt.Errorf("insert %s: an explicit column list is required", table)
	}
	if len(data) != len(columns) {
		return fmt.Errorf("insert %s: %d columns of data for %d column names", table, len(data), len(columns))
	}
	n, err := columnLen(data[0])
	if err != nil {
		return fmt.Errorf("insert %s column %s: %w", table, columns[0], err)
	}
	for j := range data {
		m, err := columnLen(data[j])
		if err != nil {
			return fmt.Errorf("insert %s column %s: %w", table, columns[j], err)
		}
		if m != n {
			return fmt.Errorf("insert %s: column %s has %d values, column %s has %d", table, columns[j], m, columns[0], n)
		}
	}
	if n == 0 {
		return nil
	}
	qt := sinks.QualifiedTable(e.db, table)
	types, err := e.columnTypes(ctx, table, qt, columns)
	if err != nil {
		return fmt.Errorf("insert %s: %w", table, err)
	}
	raw, err := encodeColumns(e.getBuf(n*len(columns)*8), types, columns, data, n)
	if err != nil {
		return fmt.Errorf("insert %s: %w", table, err)
	}
	err = e.insertBlock(ctx, table, qt, columns, raw, n)
	e.putBuf(raw)
	return err
}

// columnLen is the number of values in a column's slice.
func columnLen(col any) (int, error) {
	switch x := col.(type) {
	case []int64:
		return len(x), nil
	case []string:
		return len(x), nil
	case []any:
		return len(x), nil
	}
	rv := reflect.ValueOf(col)
	if rv.Kind() != reflect.Slice {
		return 0, fmt.Errorf("want a slice of values, got %T", col)
	}
	return rv.Len(), nil
}

// encodeColumns is encodeNative for a batch given column by column.
func encodeColumns(b []byte, types []*chType, columns []string, data []any, n int) ([]byte, error) {
	b = binary.AppendUvarint(b, uint64(len(columns)))
	b = binary.AppendUvarint(b, uint64(n))
	for j, name := range columns {
		b = appendString(b, name)
		b = appendString(b, nativeTypeName(types[j]))
		var err error
		var at int
		if b, at, err = appendTypedColumn(b, types[j], data[j]); err != nil {
			return nil, fmt.Errorf("row %d column %s (%s): %w", at, name, types[j].raw, err)
		}
	}
	return b, nil
}

// appendTypedColumn appends one column from a typed slice; a slice without
// a direct encoding for t goes through appendColumn value by value.
func appendTypedColumn(b []byte, t *chType, col any) ([]byte, int, error) {
	base := t
	if base.kind == kLowCardinality {
		base = base.elem
	}
	switch x := col.(type) {
	case []int64:
		if base.kind == kInt64 {
			for _, v := range x {
				b = binary.LittleEndian.AppendUint64(b, uint64(v))
			}
			return b, 0, nil
		}
	case []int32:
		if base.kind == kInt32 {
			for _, v := range x {
				b = binary.LittleEndian.AppendUint32(b, uint32(v))
			}
			return b, 0, nil
		}
	case []uint64:
		if base.kind == kUInt64 {
			for _, v := range x {
				b = binary.LittleEndian.AppendUint64(b, v)
			}
			return b, 0, nil
		}
	case []uint32:
		if base.kind == kUInt32 {
			for _, v := range x {
				b = binary.LittleEndian.AppendUint32(b, v)
			}
			return b, 0, nil
		}
	case []uint8:
		if base.kind == kUInt8 {
			return append(b, x...), 0, nil
		}
	case []string:
		switch base.kind {
		case kString:
			for _, s := range x {
				b = binary.AppendUvarint(b, uint64(len(s)))
				b = append(b, s...)
			}
			return b, 0, nil
		case kDecimal:
			var err error
			for i, s := range x {
				if b, err = appendDecimalText(b, base, s); err != nil {
					return nil, i, err
				}
			}
			return b, 0, nil
		}
	case [][]byte:
		if base.kind == kString {
			for _, v := range x {
				b = binary.AppendUvarint(b, uint64(len(v)))
				b = append(b, v...)
			}
			return b, 0, nil
		}
	case []time.Time:
		if base.kind == kDateTime64 {
			for _, v := range x {
				b = appendDateTime64(b, base, v)
			}
			return b, 0, nil
		}
	case sinks.Micros:
		if base.kind == kDateTime64 {
			for _, v := range x {
				b = appendMicros(b, base, v)
			}
			return b, 0, nil
		}
	case sinks.Cents:
		if base.kind == kDecimal && base.width <= 8 && base.scale >= 2 {
			mul := pow10(base.scale - 2)
			lo, hi := int64(math.MinInt64)/mul, int64(math.MaxInt64)/mul
			if base.width == 4 {
				lo, hi = math.MinInt32/mul, math.MaxInt32/mul
			}
			for i, v := range x {
				if v < lo || v > hi {
					return nil, i, fmt.Errorf("%s overflows %s", sinks.CentsText(v), base.String())
				}
				b = appendLE(b, uint64(v*mul), uint(base.width))
			}
			return b, 0, nil
		}
	case sinks.NullMicros:
		if base.kind == kNullable && base.elem.kind == kDateTime64 {
			b = appendNullMap(b, x)
			for _, v := range x {
				if !v.Valid {
					b = append(b, 0, 0, 0, 0, 0, 0, 0, 0)
					continue
				}
				b = appendMicros(b, base.elem, v.V)
			}
			return b, 0, nil
		}
	case []sql.Null[int64]:
		if base.kind == kNullable && base.elem.kind == kInt64 {
			b = appendNullMap(b, x)
			for _, v := range x {
				if !v.Valid {
					v.V = 0 // the default under a NULL
				}
				b = binary.LittleEndian.AppendUint64(b, uint64(v.V))
			}
			return b, 0, nil
		}
	case []sql.Null[string]:
		if base.kind == kNullable && (base.elem.kind == kString || base.elem.kind == kLowCardinality && base.elem.elem.kind == kString) {
			b = appendNullMap(b, x)
			for _, v := range x {
				if !v.Valid {
					b = append(b, 0) // empty string: the default
					continue
				}
				b = binary.AppendUvarint(b, uint64(len(v.V)))
				b = append(b, v.V...)
			}
			return b, 0, nil
		}
	case []sql.Null[time.Time]:
		if base.kind == kNullable && base.elem.kind == kDateTime64 {
			b = appendNullMap(b, x)
			for _, v := range x {
				if !v.Valid {
					b = append(b, 0, 0, 0, 0, 0, 0, 0, 0)
					continue
				}
				b = appendDateTime64(b, base.elem, v.V)
			}
			return b, 0, nil
		}
	case []any:
		return appendColumn(b, t, x)
	}
	vals, err := boxColumn(col)
	if err != nil {
		return nil, 0, err
	}
	return appendColumn(b, t, vals)
}

func appendNullMap[T any](b []byte, x []sql.Null[T]) []byte {
	for _, v := range x {
		if v.Valid {
			b = append(b, 0)
		} else {
			b = append(b, 1)
		}
	}
	return b
}

// appendDateTime64 is appendValue's encoding of a time.Time.
func appendDateTime64(b []byte, t *chType, x time.Time) []byte {
	n := x.Unix()*pow10(t.scale) + int64(x.Nanosecond())/pow10(9-t.scale)
	return binary.LittleEndian.AppendUint64(b, uint64(n))
}

// appendMicros is appendDateTime64 of time.UnixMicro(us).
func appendMicros(b []byte, t *chType, us int64) []byte {
	if t.scale == 6 {
		return binary.LittleEndian.AppendUint64(b, uint64(us))
	}
	return appendDateTime64(b, t, time.UnixMicro(us).UTC())
}

// boxColumn turns a typed slice into the values Insert takes (sql.Null as
// nil or its value, sinks.Micros as time.Time).
func boxColumn(col any) ([]any, error) {
	switch x := col.(type) {
	case sinks.Micros:
		out := make([]any, len(x))
		for i, v := range x {
			out[i] = time.UnixMicro(v).UTC()
		}
		return out, nil
	case sinks.NullMicros:
		out := make([]any, len(x))
		for i, v := range x {
			if v.Valid {
				out[i] = time.UnixMicro(v.V).UTC()
			}
		}
		return out, nil
	case sinks.Cents:
		out := make([]any, len(x))
		for i, v := range x {
			out[i] = sinks.CentsText(v)
		}
		return out, nil
	}
	rv := reflect.ValueOf(col)
	if rv.Kind() != reflect.Slice {
		return nil, fmt.Errorf("want a slice of values, got %T", col)
	}
	out := make([]any, rv.Len())
	for i := range out {
		out[i] = unNull(rv.Index(i).Interface())
	}
	return out, nil
}

// unNull maps the sql.Null values InsertColumns accepts to nil or their value.
func unNull(v any) any {
	switch x := v.(type) {
	case sql.Null[int64]:
		if x.Valid {
			return x.V
		}
		return nil
	case sql.Null[string]:
		if x.Valid {
			return x.V
		}
		return nil
	case sql.Null[time.Time]:
		if x.Valid {
			return x.V
		}
		return nil
	}
	return v
}
