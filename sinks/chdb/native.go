package chdb

import (
	"encoding/binary"
	"fmt"
	"reflect"
)

// encodeNative appends rows as one block of ClickHouse's Native format
// (column-oriented), which the engine parses an order of magnitude faster
// than any row format (measured on libchdb 26.5.3: 100k 20-column rows in
// 15 ms as Native, 440 ms as RowBinary, 650 ms as TSV). LowCardinality(T)
// columns are declared as T; the engine converts on insert.
func encodeNative(b []byte, types []*chType, columns []string, rows [][]any) ([]byte, error) {
	for i, row := range rows {
		if len(row) != len(types) {
			return nil, fmt.Errorf("row %d has %d values for %d columns", i, len(row), len(types))
		}
	}
	b = binary.AppendUvarint(b, uint64(len(columns)))
	b = binary.AppendUvarint(b, uint64(len(rows)))
	vals := make([]any, len(rows))
	for j, name := range columns {
		b = appendString(b, name)
		b = appendString(b, nativeTypeName(types[j]))
		for i, row := range rows {
			vals[i] = row[j]
		}
		var err error
		var at int
		if b, at, err = appendColumn(b, types[j], vals); err != nil {
			return nil, fmt.Errorf("row %d column %s (%s): %w", at, name, types[j].raw, err)
		}
	}
	return b, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// nativeTypeName is the type a column is declared with in the block:
// the column's own type with LowCardinality removed.
func nativeTypeName(t *chType) string {
	switch t.kind {
	case kLowCardinality:
		return nativeTypeName(t.elem)
	case kNullable:
		return "Nullable(" + nativeTypeName(t.elem) + ")"
	case kArray:
		return "Array(" + nativeTypeName(t.elem) + ")"
	}
	return t.raw
}

// appendColumn appends one column's values; on error it returns the index of
// the offending value.
func appendColumn(b []byte, t *chType, vals []any) ([]byte, int, error) {
	var err error
	switch t.kind {
	case kLowCardinality:
		return appendColumn(b, t.elem, vals)
	case kNullable:
		for _, v := range vals {
			if isNil(v) {
				b = append(b, 1)
			} else {
				b = append(b, 0)
			}
		}
		for i, v := range vals {
			if isNil(v) {
				b = appendDefault(b, t.elem)
				continue
			}
			if b, err = appendValue(b, t.elem, deref(v)); err != nil {
				return nil, i, err
			}
		}
		return b, 0, nil
	case kArray:
		var flat []any
		var off uint64
		for i, v := range vals {
			if isNil(v) {
				return nil, i, fmt.Errorf("NULL in a non-Nullable column")
			}
			switch x := deref(v).(type) {
			case []string:
				for _, s := range x {
					flat = append(flat, s)
				}
				off += uint64(len(x))
			case []any:
				flat = append(flat, x...)
				off += uint64(len(x))
			default:
				rv := reflect.ValueOf(x)
				if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
					return nil, i, fmt.Errorf("want a slice, got %T", v)
				}
				for k := 0; k < rv.Len(); k++ {
					flat = append(flat, rv.Index(k).Interface())
				}
				off += uint64(rv.Len())
			}
			b = binary.LittleEndian.AppendUint64(b, off)
		}
		b, at, err := appendColumn(b, t.elem, flat)
		if err != nil {
			return nil, rowOfElement(vals, at), err
		}
		return b, 0, nil
	}
	for i, v := range vals {
		if b, err = appendValue(b, t, v); err != nil {
			return nil, i, err
		}
	}
	return b, 0, nil
}

// rowOfElement maps an index into the flattened elements of array values
// back to the row holding it.
func rowOfElement(vals []any, at int) int {
	n := 0
	for i, v := range vals {
		n += reflect.ValueOf(deref(v)).Len()
		if at < n {
			return i
		}
	}
	return len(vals) - 1
}

// appendDefault appends the default value of t, which the Native format
// stores under a NULL of a Nullable column.
func appendDefault(b []byte, t *chType) []byte {
	switch t.kind {
	case kInt8, kUInt8, kBool, kEnum8:
		return append(b, 0)
	case kInt16, kUInt16, kDate, kEnum16:
		return append(b, 0, 0)
	case kInt32, kUInt32, kFloat32, kDate32, kDateTime:
		return append(b, 0, 0, 0, 0)
	case kInt64, kUInt64, kFloat64, kDateTime64:
		return append(b, 0, 0, 0, 0, 0, 0, 0, 0)
	case kDecimal, kFixedString:
		return append(b, make([]byte, t.width)...)
	case kUUID:
		return append(b, make([]byte, 16)...)
	case kLowCardinality:
		return appendDefault(b, t.elem)
	}
	return append(b, 0) // String: empty
}
