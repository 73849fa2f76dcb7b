package sinks

import (
	"database/sql"
	"strconv"
)

// Column slices an engine's columnar insert (chdb.Engine.InsertColumns)
// takes for timestamps in the unit DateTime64(6) stores, with no time.Time
// per value (24 bytes with a pointer, converted twice). Given to Insert's
// per-value path they are the time.Time values (UTC) they stand for.

// Micros is a DateTime64 column as microseconds since 1970-01-01 UTC.
type Micros []int64

// NullMicros is a Nullable(DateTime64) column as microseconds since
// 1970-01-01 UTC; Valid false is NULL.
type NullMicros []sql.Null[int64]

// Cents is a Decimal column as hundredths (scale 2): 1234 is 12.34. Given to
// Insert's per-value path its values are that exact text (CentsText).
type Cents []int64

// CentsText is v hundredths as decimal text with two fraction digits
// ("-0.50", "12.34").
func CentsText(v int64) string {
	neg := v < 0
	u := uint64(v)
	if neg {
		u = -u
	}
	buf := make([]byte, 0, 24)
	if neg {
		buf = append(buf, '-')
	}
	buf = strconv.AppendUint(buf, u/100, 10)
	buf = append(buf, '.', byte('0'+u%100/10), byte('0'+u%10))
	return string(buf)
}
