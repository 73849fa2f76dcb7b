package sinks

import "database/sql"

// Column slices an engine's columnar insert (chdb.Engine.InsertColumns)
// takes for timestamps in the unit DateTime64(6) stores, with no time.Time
// per value (24 bytes with a pointer, converted twice). Given to Insert's
// per-value path they are the time.Time values (UTC) they stand for.

// Micros is a DateTime64 column as microseconds since 1970-01-01 UTC.
type Micros []int64

// NullMicros is a Nullable(DateTime64) column as microseconds since
// 1970-01-01 UTC; Valid false is NULL.
type NullMicros []sql.Null[int64]
