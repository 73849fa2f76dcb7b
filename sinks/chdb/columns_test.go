package chdb

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/sinks"
)

// columnsCase is a table and typed column data covering the direct
// encodings and the per-value fallback (slices that do not match their
// column's type).
func columnsCase(n int, seed uint64) (ddl string, cols []string, types []string, data []any) {
	r := rand.New(rand.NewPCG(seed, 7))
	spec := []struct {
		name, typ string
		gen       func(i int) any // a typed slice of n values
	}{
		{"id", "Int64", func(int) any { return r.Int64() }},
		{"line", "Int32", func(int) any { return int32(r.Int32()) }},
		{"ver", "UInt64", func(int) any { return r.Uint64() }},
		{"cnt", "UInt32", func(int) any { return r.Uint32() }},
		{"del", "UInt8", func(int) any { return uint8(r.IntN(2)) }},
		{"name", "String", func(i int) any { return strings.Repeat("é", i%5) + fmt.Sprint(r.IntN(1000)) }},
		{"seg", "LowCardinality(String)", func(i int) any { return []string{"gold", "silver", ""}[i%3] }},
		{"json", "String", func(i int) any { return []byte(fmt.Sprintf(`{"id":%d}`, r.IntN(1000))[:i%9]) }},
		{"price", "Decimal(18, 2)", func(int) any { return fmt.Sprintf("%d.%02d", r.IntN(1e6)-5e5, r.IntN(100)) }},
		{"at", "DateTime64(6, 'UTC')", func(int) any { return time.UnixMicro(r.Int64N(4e15)).UTC() }},
		{"at3", "DateTime64(3, 'UTC')", func(int) any { return time.UnixMicro(r.Int64N(4e15) - 2e15).UTC() }},
		{"camp", "Nullable(Int64)", func(int) any { return sql.Null[int64]{V: r.Int64(), Valid: r.IntN(3) > 0} }},
		{"phone", "Nullable(String)", func(int) any { return sql.Null[string]{V: fmt.Sprint(r.IntN(1e6)), Valid: r.IntN(2) > 0} }},
		{"paid", "Nullable(DateTime64(6, 'UTC'))", func(int) any {
			return sql.Null[time.Time]{V: time.UnixMicro(r.Int64N(4e15)).UTC(), Valid: r.IntN(2) > 0}
		}},
		{"at_us", "DateTime64(6, 'UTC')", func(int) any { return r.Int64N(4e15) - 2e15 }},
		{"at3_us", "DateTime64(3, 'UTC')", func(int) any { return r.Int64N(4e15) - 2e15 }},
		{"paid_us", "Nullable(DateTime64(6, 'UTC'))", func(int) any { return sql.Null[int64]{V: r.Int64N(4e15) - 2e15, Valid: r.IntN(2) > 0} }},
		{"paid3_us", "Nullable(DateTime64(3, 'UTC'))", func(int) any { return sql.Null[int64]{V: r.Int64N(4e15) - 2e15, Valid: r.IntN(2) > 0} }},
		{"price_cents", "Decimal(18, 2)", func(int) any { return r.Int64N(2e12) - 1e12 }},
		{"rate_cents", "Decimal(18, 4)", func(int) any { return r.Int64N(2e9) - 1e9 }},
		{"small_cents", "Decimal(9, 2)", func(int) any { return r.Int64N(2e8) - 1e8 }},
		{"wide_cents", "Decimal(38, 2)", func(int) any { return r.Int64() }},
		{"city", "LowCardinality(Nullable(String))", func(int) any { return sql.Null[string]{V: "Berlin", Valid: r.IntN(2) > 0} }},
		// fallbacks: Go type and column type differ
		{"u64_from_i64", "UInt64", func(int) any { return r.Int64N(1 << 40) }},
		{"text_from_us", "String", func(int) any { return r.Int64N(4e15) }},
		{"nullable_text_from_us", "Nullable(String)", func(int) any { return sql.Null[int64]{V: r.Int64N(4e15), Valid: r.IntN(2) > 0} }},
		{"i64_from_text", "Int64", func(int) any { return fmt.Sprint(r.Int64N(1 << 40)) }},
		{"dec_from_i64", "Decimal(18, 2)", func(int) any { return r.Int64N(1e9) }},
		{"any", "Nullable(Int32)", func(i int) any {
			if i%2 == 0 {
				return nil
			}
			return int32(i)
		}},
	}
	var defs []string
	for _, c := range spec {
		cols = append(cols, c.name)
		types = append(types, c.typ)
		defs = append(defs, c.name+" "+c.typ)
		first := c.gen(0)
		var col reflect.Value
		if first == nil || c.name == "any" {
			col = reflect.ValueOf(make([]any, n))
		} else {
			col = reflect.MakeSlice(reflect.SliceOf(reflect.TypeOf(first)), n, n)
		}
		for i := 0; i < n; i++ {
			if v := c.gen(i); v != nil {
				col.Index(i).Set(reflect.ValueOf(v))
			}
		}
		d := col.Interface()
		switch x := d.(type) { // microsecond columns: sinks.Micros, sinks.NullMicros; sinks.Cents
		case []int64:
			if strings.HasSuffix(c.name, "_us") {
				d = sinks.Micros(x)
			}
			if strings.HasSuffix(c.name, "_cents") {
				d = sinks.Cents(x)
			}
		case []sql.Null[int64]:
			if strings.HasSuffix(c.name, "_us") {
				d = sinks.NullMicros(x)
			}
		}
		data = append(data, d)
	}
	ddl = "CREATE TABLE %s (" + strings.Join(defs, ", ") + ") ENGINE = MergeTree ORDER BY id"
	return ddl, cols, types, data
}

func rowsOf(data []any, n int) [][]any {
	rows := make([][]any, n)
	for i := range rows {
		rows[i] = make([]any, len(data))
		for j, c := range data {
			switch x := c.(type) {
			case sinks.Micros:
				rows[i][j] = time.UnixMicro(x[i]).UTC()
			case sinks.NullMicros:
				if x[i].Valid {
					rows[i][j] = time.UnixMicro(x[i].V).UTC()
				}
			case sinks.Cents:
				rows[i][j] = sinks.CentsText(x[i])
			default:
				rows[i][j] = unNull(reflect.ValueOf(c).Index(i).Interface())
			}
		}
	}
	return rows
}

// TestEncodeColumnsSameAsNative: the columnar encoder writes exactly the
// block Insert writes for the same values.
func TestEncodeColumnsSameAsNative(t *testing.T) {
	for _, n := range []int{1, 7, 500} {
		_, cols, typeNames, data := columnsCase(n, uint64(n))
		types := make([]*chType, len(typeNames))
		for j, s := range typeNames {
			var err error
			if types[j], err = parseType(s); err != nil {
				t.Fatal(err)
			}
		}
		got, err := encodeColumns(nil, types, cols, data, n)
		if err != nil {
			t.Fatal(err)
		}
		want, err := encodeNative(nil, types, cols, rowsOf(data, n))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("n=%d: columnar block differs from the row block (%d vs %d bytes)", n, len(got), len(want))
		}
	}
	// hundredths that overflow the column are an error naming row and column
	small, _ := parseType("Decimal(9, 2)")
	if _, err := encodeColumns(nil, []*chType{small}, []string{"c"}, []any{sinks.Cents{1, 1 << 40}}, 2); err == nil ||
		!strings.Contains(err.Error(), "row 1 column c") || !strings.Contains(err.Error(), "10995116277.76") {
		t.Errorf("overflowing cents: %v", err)
	}
	// errors name the row and the column, as Insert's do
	ty, _ := parseType("Decimal(18, 2)")
	if _, err := encodeColumns(nil, []*chType{ty}, []string{"d"}, []any{[]string{"1.00", "1.234"}}, 2); err == nil || !strings.Contains(err.Error(), "row 1 column d") {
		t.Errorf("bad decimal: %v", err)
	}
}

func TestInsertColumns(t *testing.T) {
	e := openEngine(t)
	ctx := context.Background()
	const n = 300
	ddl, cols, _, data := columnsCase(n, 42)
	mustExec(t, e, fmt.Sprintf(ddl, "by_rows"))
	mustExec(t, e, fmt.Sprintf(ddl, "by_cols"))
	if err := e.Insert(ctx, "by_rows", cols, rowsOf(data, n)); err != nil {
		t.Fatal(err)
	}
	if err := e.InsertColumns(ctx, "by_cols", cols, data); err != nil {
		t.Fatal(err)
	}
	sel := "SELECT * FROM %s ORDER BY id, ver"
	a, b := query(t, e, fmt.Sprintf(sel, "by_rows"), nil), query(t, e, fmt.Sprintf(sel, "by_cols"), nil)
	if len(a.Rows) != n || !reflect.DeepEqual(a.Rows, b.Rows) {
		t.Fatalf("InsertColumns stored other rows than Insert (%d vs %d rows)", len(b.Rows), len(a.Rows))
	}

	for name, c := range map[string]struct {
		cols []string
		data []any
	}{
		"length":      {[]string{"id", "line"}, []any{[]int64{1, 2}, []int32{1}}},
		"count":       {[]string{"id", "line"}, []any{[]int64{1}}},
		"not a slice": {[]string{"id"}, []any{int64(1)}},
		"column":      {[]string{"nope"}, []any{[]int64{1}}},
		"bad value":   {[]string{"price"}, []any{[]string{"1.234"}}},
	} {
		if err := e.InsertColumns(ctx, "by_cols", c.cols, c.data); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
	if r := query(t, e, "SELECT count() FROM by_cols", nil); r.Rows[0][0] != uint64(n) {
		t.Errorf("failed inserts wrote rows: %v", r.Rows[0][0])
	}
}
