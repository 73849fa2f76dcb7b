package pipeline

import (
	"database/sql"
	"fmt"
	"time"

	"github.com/orderflow/orderflow/sinks"
)

// colKind is the Go type an output column's values are buffered as.
type colKind uint8

const (
	kI64      colKind = iota // int64
	kI32                     // int32
	kU64                     // uint64
	kU32                     // uint32
	kU8                      // uint8
	kStr                     // string (also decimals, as exact text)
	kTime                    // microseconds (non-Nullable DateTime64), sinks.Micros
	kNullI64                 // sql.Null[int64]
	kNullStr                 // sql.Null[string]
	kNullTime                // sql.Null[int64] of microseconds, sinks.NullMicros
	kBytes                   // []byte (String): text referenced, not copied
	kMoney                   // hundredths (Decimal(18, 2)), sinks.Cents
)

// column is one output column's values; only the slice of its kind is used.
type column struct {
	kind colKind
	i64  []int64
	i32  []int32
	u64  []uint64
	u32  []uint32
	u8   []uint8
	str  []string
	tm   []int64
	ni64 []sql.Null[int64]
	nstr []sql.Null[string]
	ntm  []sql.Null[int64]
	byt  [][]byte
	cts  []int64
}

func (c *column) reset() {
	c.i64, c.i32, c.u64, c.u32, c.u8 = c.i64[:0], c.i32[:0], c.u64[:0], c.u32[:0], c.u8[:0]
	clear(c.str) // no references kept to the strings of a written batch
	c.str = c.str[:0]
	c.tm = c.tm[:0]
	c.ni64 = c.ni64[:0]
	clear(c.nstr)
	c.nstr = c.nstr[:0]
	c.ntm = c.ntm[:0]
	clear(c.byt)
	c.byt = c.byt[:0]
	c.cts = c.cts[:0]
}

// data is the column's typed slice.
func (c *column) data() any {
	switch c.kind {
	case kI64:
		return c.i64
	case kI32:
		return c.i32
	case kU64:
		return c.u64
	case kU32:
		return c.u32
	case kU8:
		return c.u8
	case kStr:
		return c.str
	case kTime:
		return sinks.Micros(c.tm)
	case kNullI64:
		return c.ni64
	case kNullStr:
		return c.nstr
	case kNullTime:
		return sinks.NullMicros(c.ntm)
	case kBytes:
		return c.byt
	case kMoney:
		return sinks.Cents(c.cts)
	}
	panic("pipeline: unknown column kind")
}

// columnData is the table's columns as typed slices (InsertColumns' data).
func (t *tableBuf) columnData() []any {
	t.materialize()
	out := make([]any, len(t.cols))
	for j := range t.cols {
		out[j] = t.cols[j].data()
	}
	return out
}

// rowValues is the table's rows as values, NULL as nil: what Insert takes.
func (t *tableBuf) rowValues() [][]any { return rowsOf(t.columnData()) }

// rowsOf turns typed column slices (the kinds above) into rows of values.
func rowsOf(data []any) [][]any {
	if len(data) == 0 {
		return nil
	}
	n := sliceLen(data[0])
	rows := make([][]any, n)
	vals := make([]any, n*len(data))
	for i := range rows {
		rows[i] = vals[i*len(data) : (i+1)*len(data) : (i+1)*len(data)]
	}
	for j, d := range data {
		for i := range rows {
			rows[i][j] = valueAt(d, i)
		}
	}
	return rows
}

func sliceLen(d any) int {
	switch x := d.(type) {
	case []int64:
		return len(x)
	case []int32:
		return len(x)
	case []uint64:
		return len(x)
	case []uint32:
		return len(x)
	case []uint8:
		return len(x)
	case []string:
		return len(x)
	case sinks.Micros:
		return len(x)
	case []sql.Null[int64]:
		return len(x)
	case []sql.Null[string]:
		return len(x)
	case sinks.NullMicros:
		return len(x)
	case [][]byte:
		return len(x)
	case sinks.Cents:
		return len(x)
	}
	panic(fmt.Sprintf("pipeline: unknown column type %T", d))
}

func valueAt(d any, i int) any {
	switch x := d.(type) {
	case []int64:
		return x[i]
	case []int32:
		return x[i]
	case []uint64:
		return x[i]
	case []uint32:
		return x[i]
	case []uint8:
		return x[i]
	case []string:
		return x[i]
	case sinks.Micros:
		return time.UnixMicro(x[i]).UTC()
	case []sql.Null[int64]:
		if x[i].Valid {
			return x[i].V
		}
	case []sql.Null[string]:
		if x[i].Valid {
			return x[i].V
		}
	case sinks.NullMicros:
		if x[i].Valid {
			return time.UnixMicro(x[i].V).UTC()
		}
	case [][]byte:
		return string(x[i])
	case sinks.Cents:
		return sinks.CentsText(x[i])
	default:
		panic(fmt.Sprintf("pipeline: unknown column type %T", d))
	}
	return nil
}

// rowW writes one row's values, in column order, into a table's columns:
// appended for a new key, in place for a coalesced one, or nowhere for a
// row older than its key's buffered one.
type rowW struct {
	t    *tableBuf
	i, j int
	app  bool
	skip bool
}

func (r rowW) col(k colKind) *column {
	if r.j < len(r.t.cols) && r.t.cols[r.j].kind == k {
		return &r.t.cols[r.j]
	}
	panic(r.badColumn(k))
}

//go:noinline
func (r rowW) badColumn(k colKind) string {
	if r.j >= len(r.t.cols) {
		return fmt.Sprintf("pipeline: %s row has more than %d values", r.t.spec.name, len(r.t.cols))
	}
	return fmt.Sprintf("pipeline: %s column %s is not of kind %d", r.t.spec.name, r.t.spec.cols[r.j], k)
}

func put[T any](s []T, app bool, i int, v T) []T {
	if app {
		return append(s, v)
	}
	s[i] = v
	return s
}

func (r rowW) i64(v int64) rowW {
	if !r.skip {
		c := r.col(kI64)
		c.i64 = put(c.i64, r.app, r.i, v)
	}
	r.j++
	return r
}

func (r rowW) i32(v int32) rowW {
	if !r.skip {
		c := r.col(kI32)
		c.i32 = put(c.i32, r.app, r.i, v)
	}
	r.j++
	return r
}

func (r rowW) u64(v uint64) rowW {
	if !r.skip {
		c := r.col(kU64)
		c.u64 = put(c.u64, r.app, r.i, v)
	}
	r.j++
	return r
}

func (r rowW) u32(v uint32) rowW {
	if !r.skip {
		c := r.col(kU32)
		c.u32 = put(c.u32, r.app, r.i, v)
	}
	r.j++
	return r
}

func (r rowW) u8(v uint8) rowW {
	if !r.skip {
		c := r.col(kU8)
		c.u8 = put(c.u8, r.app, r.i, v)
	}
	r.j++
	return r
}

func (r rowW) str(v string) rowW {
	if !r.skip {
		c := r.col(kStr)
		c.str = put(c.str, r.app, r.i, v)
	}
	r.j++
	return r
}

// bytes is a String column's value given as bytes, referenced until the
// batch is reset (record values: the Kafka client never reuses them).
func (r rowW) bytes(v []byte) rowW {
	if !r.skip {
		c := r.col(kBytes)
		c.byt = put(c.byt, r.app, r.i, v)
	}
	r.j++
	return r
}

// money is a decimal column's value, in hundredths.
func (r rowW) money(m Money) rowW {
	if !r.skip {
		c := r.col(kMoney)
		c.cts = put(c.cts, r.app, r.i, int64(m))
	}
	r.j++
	return r
}

// time is a non-Nullable timestamp (the epoch for NULL, as Micros.NotNull).
func (r rowW) time(m Micros) rowW {
	if !r.skip {
		if m == NullTime {
			m = 0 // the epoch, as Micros.NotNull
		}
		c := r.col(kTime)
		c.tm = put(c.tm, r.app, r.i, int64(m))
	}
	r.j++
	return r
}

func (r rowW) nullTime(m Micros) rowW {
	if !r.skip {
		c := r.col(kNullTime)
		v := sql.Null[int64]{}
		if m != NullTime {
			v = sql.Null[int64]{V: int64(m), Valid: true}
		}
		c.ntm = put(c.ntm, r.app, r.i, v)
	}
	r.j++
	return r
}

func (r rowW) nullInt(n NullInt) rowW {
	if !r.skip {
		c := r.col(kNullI64)
		c.ni64 = put(c.ni64, r.app, r.i, sql.Null[int64]{V: n.V, Valid: n.Valid})
	}
	r.j++
	return r
}

func (r rowW) nullStr(n NullString) rowW {
	if !r.skip {
		c := r.col(kNullStr)
		c.nstr = put(c.nstr, r.app, r.i, sql.Null[string]{V: n.S, Valid: n.Valid})
	}
	r.j++
	return r
}

// value writes v (of the column's Go type, or nil: NULL or the zero value).
func (r rowW) value(v any) rowW {
	if r.skip {
		r.j++
		return r
	}
	if r.j >= len(r.t.cols) {
		panic(fmt.Sprintf("pipeline: %s row has more than %d values", r.t.spec.name, len(r.t.cols)))
	}
	switch r.t.cols[r.j].kind {
	case kI64:
		x, _ := v.(int64)
		return r.i64(x)
	case kI32:
		x, _ := v.(int32)
		return r.i32(x)
	case kU64:
		x, _ := v.(uint64)
		return r.u64(x)
	case kU32:
		x, _ := v.(uint32)
		return r.u32(x)
	case kU8:
		x, _ := v.(uint8)
		return r.u8(x)
	case kStr:
		x, _ := v.(string)
		return r.str(x)
	case kTime:
		x, _ := v.(time.Time)
		c := r.col(kTime)
		c.tm = put(c.tm, r.app, r.i, x.UnixMicro())
	case kNullI64:
		x, ok := v.(int64)
		return r.nullInt(NullInt{V: x, Valid: ok})
	case kNullStr:
		x, ok := v.(string)
		return r.nullStr(NullString{S: x, Valid: ok})
	case kNullTime:
		x, ok := v.(time.Time)
		c := r.col(kNullTime)
		c.ntm = put(c.ntm, r.app, r.i, sql.Null[int64]{V: x.UnixMicro(), Valid: ok})
	case kBytes:
		x, _ := v.(string)
		return r.bytes([]byte(x))
	case kMoney:
		var m Money
		switch x := v.(type) {
		case Money:
			m = x
		case string:
			var err error
			if m, err = ParseMoney(x); err != nil {
				panic(fmt.Sprintf("pipeline: %s column %s: %v", r.t.spec.name, r.t.spec.cols[r.j], err))
			}
		}
		return r.money(m)
	}
	r.j++
	return r
}

// end checks that the row got a value for every column.
func (r rowW) end() {
	if r.j != len(r.t.cols) {
		panic(fmt.Sprintf("pipeline: %s row has %d values for %d columns", r.t.spec.name, r.j, len(r.t.cols)))
	}
}
