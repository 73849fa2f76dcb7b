package chserver

import (
	"context"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/internal/testenv"
	"github.com/orderflow/orderflow/sinks"
)

func openEngine(t testing.TB) *Engine {
	t.Helper()
	return openAt(t, testenv.ClickHouseServerAddr(t))
}

func openAt(t testing.TB, addr string) *Engine {
	t.Helper()
	db := testenv.Name("t")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := Open(ctx, Options{Addr: addr, Database: db})
	if err != nil {
		t.Fatalf("open server engine: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Exec(context.Background(), "DROP DATABASE IF EXISTS "+sinks.QuoteIdent(db)); err != nil {
			t.Logf("drop database %s: %v", db, err)
		}
		_ = e.Close()
	})
	return e
}

func mustExec(t testing.TB, e sinks.Engine, q string) {
	t.Helper()
	if err := e.Exec(context.Background(), q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func query(t testing.TB, e sinks.Engine, q string) *sinks.Result {
	t.Helper()
	r, err := e.Query(context.Background(), q, nil)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return r
}

// Issue 2 smoke test: the 18.16 server takes a clickhouse-go batch insert
// with an explicit column list and returns the count.
func TestSmokeBatchInsertCount(t *testing.T) {
	e := openEngine(t)
	v, err := e.ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("server version %s", v)
	mustExec(t, e, "CREATE TABLE orders (id Int64, status String, total Decimal(18, 2), placed_at DateTime) ENGINE = MergeTree ORDER BY id")
	rows := make([][]any, 1000)
	at := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	for i := range rows {
		rows[i] = []any{int64(i + 1), "paid", "10.25", at}
	}
	if err := e.Insert(context.Background(), "orders", []string{"id", "status", "total", "placed_at"}, rows); err != nil {
		t.Fatal(err)
	}
	r := query(t, e, "SELECT count(), sum(id), toString(sum(total)), max(placed_at) FROM orders")
	want := []any{uint64(1000), int64(500500), "10250.00", at}
	if !reflect.DeepEqual(r.Rows[0][:3], want[:3]) || !r.Rows[0][3].(time.Time).Equal(at) {
		t.Fatalf("got %v, want %v", r.Rows[0], want)
	}
}

// Every type the 18.16 server has (no Bool, Date32, DateTime64, LowCardinality
// there; chdb's test covers those on the current engine).
func TestRoundTripTypes(t *testing.T) {
	e := openEngine(t)
	mustExec(t, e, `CREATE TABLE all_types (
		i8 Int8, i16 Int16, i32 Int32, i64 Int64, u8 UInt8, u16 UInt16, u32 UInt32, u64 UInt64,
		f32 Float32, f64 Float64, s String, fs FixedString(4), d Date, dt DateTime,
		dec Decimal(18, 2), dec9 Decimal(9, 4), dec38 Decimal(38, 10),
		ni Nullable(Int64), ns Nullable(String), ndt Nullable(DateTime),
		arr Array(String), arri Array(Int32), en Enum8('a' = 1, 'b' = 2), id UUID
	) ENGINE = MergeTree ORDER BY i64`)
	ts := time.Date(2024, 3, 5, 6, 7, 8, 0, time.UTC)
	cols := []string{"i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "f32", "f64", "s", "fs", "d", "dt",
		"dec", "dec9", "dec38", "ni", "ns", "ndt", "arr", "arri", "en", "id"}
	rows := [][]any{
		{int8(-8), int16(-16), int32(-32), int64(math.MinInt64), uint8(255), uint16(65535), uint32(4294967295), uint64(math.MaxUint64),
			float32(1.5), 2.25, "tab\there 'q' \\ é", "ab", ts, ts,
			"12345.67", "-1.5", "-1234567890123456789.0123456789",
			nil, "x", nil, []string{"a", "b'c"}, []any{int32(1), int64(-2)}, "b", "123e4567-e89b-12d3-a456-426614174000"},
		{int64(1), 2, int64(3), int64(4), 5, 6, 7, uint64(8),
			9.0, float32(10), "", "abcd", "2024-01-31", "2024-01-31 10:11:12",
			int64(3), 0.5, "0", int64(42), nil, ts, []string{}, []int32{7}, "a", "00000000-0000-0000-0000-000000000001"},
	}
	if err := e.Insert(context.Background(), "all_types", cols, rows); err != nil {
		t.Fatal(err)
	}
	r := query(t, e, "SELECT "+strings.Join(cols, ", ")+" FROM all_types ORDER BY i64")
	want := [][]any{
		{int64(-8), int64(-16), int64(-32), int64(math.MinInt64), uint64(255), uint64(65535), uint64(4294967295), uint64(math.MaxUint64),
			1.5, 2.25, "tab\there 'q' \\ é", "ab\x00\x00", time.Date(2024, 3, 5, 0, 0, 0, 0, time.UTC), ts,
			"12345.67", "-1.5", "-1234567890123456789.0123456789",
			nil, "x", nil, []any{"a", "b'c"}, []any{int64(1), int64(-2)}, "b", "123e4567-e89b-12d3-a456-426614174000"},
		{int64(1), int64(2), int64(3), int64(4), uint64(5), uint64(6), uint64(7), uint64(8),
			9.0, 10.0, "", "abcd", time.Date(2024, 1, 31, 0, 0, 0, 0, time.UTC), time.Date(2024, 1, 31, 10, 11, 12, 0, time.UTC),
			"3", "0.5", "0", int64(42), nil, ts, []any{}, []any{int64(7)}, "a", "00000000-0000-0000-0000-000000000001"},
	}
	if len(r.Rows) != 2 {
		t.Fatalf("rows = %d", len(r.Rows))
	}
	for k := range want {
		for i, c := range cols {
			got := r.Rows[k][i]
			if gt, ok := got.(time.Time); ok {
				if wt, ok := want[k][i].(time.Time); !ok || !gt.Equal(wt) {
					t.Errorf("row %d %s = %v, want %v", k, c, gt, want[k][i])
				}
				continue
			}
			if !reflect.DeepEqual(got, want[k][i]) {
				t.Errorf("row %d %s (%s) = %#v, want %#v", k, c, r.Types[i], got, want[k][i])
			}
		}
	}
}

func TestErrors(t *testing.T) {
	e := openEngine(t)
	ctx := context.Background()
	err := e.Exec(ctx, "SELEC 1")
	var ex *sinks.Exception
	if !errors.As(err, &ex) || ex.Code != 62 {
		t.Fatalf("syntax error: %v", err)
	}
	if sinks.Retryable(err) {
		t.Error("syntax error is retryable")
	}
	err = e.Insert(ctx, "missing", []string{"a"}, [][]any{{1}})
	if !errors.As(err, &ex) || ex.Code != 60 {
		t.Fatalf("missing table: %v", err)
	}
	mustExec(t, e, "CREATE TABLE t (a Int32, s String) ENGINE = Memory")
	for _, tc := range []struct {
		cols []string
		row  []any
		want string
	}{
		{[]string{"nope"}, []any{1}, "nope"},
		{[]string{"a"}, []any{"x"}, `"x" is not an integer`},
		{[]string{"a"}, []any{int64(1 << 40)}, "overflows Int32"},
		{[]string{"a"}, []any{nil}, "NULL in a non-Nullable column"},
		{[]string{"a", "s"}, []any{1}, "row 0 has 1 values for 2 columns"},
	} {
		err := e.Insert(ctx, "t", tc.cols, [][]any{tc.row})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("insert %v %v: err = %v, want %q", tc.cols, tc.row, err, tc.want)
		}
	}
	if r := query(t, e, "SELECT count() FROM t"); r.Rows[0][0] != uint64(0) {
		t.Errorf("failed inserts wrote %v rows", r.Rows[0][0])
	}
}

func TestQueryReadOnly(t *testing.T) {
	e := openEngine(t)
	mustExec(t, e, "CREATE TABLE t (a Int32) ENGINE = Memory")
	ctx := context.Background()
	if err := e.Insert(ctx, "t", []string{"a"}, [][]any{{4}}); err != nil {
		t.Fatal(err)
	}
	r, err := sinks.QueryReadOnly(ctx, e, "SELECT sum(a) FROM t", nil)
	if err != nil || r.Rows[0][0] != int64(4) {
		t.Fatalf("read-only SELECT: %v %v", r, err)
	}
	for _, q := range []string{"INSERT INTO t VALUES (5)", "DROP TABLE t", "CREATE TABLE u (a Int32) ENGINE = Memory"} {
		_, err := sinks.QueryReadOnly(ctx, e, q, nil)
		var ex *sinks.Exception
		if !errors.As(err, &ex) || ex.Code != 164 {
			t.Errorf("%s: err = %v, want READONLY (164)", q, err)
		}
	}
	if r := query(t, e, "SELECT count() FROM t"); r.Rows[0][0] != uint64(1) {
		t.Errorf("count = %v after refused writes", r.Rows[0][0])
	}
}

// 18.16 has no query parameters: the error says so instead of running a
// query with the placeholder spliced in.
func TestParametersNeedCurrentServer(t *testing.T) {
	e := openEngine(t)
	_, err := e.Query(context.Background(), "SELECT {x:Int32}", map[string]any{"x": 1})
	if err == nil {
		t.Skip("server supports query parameters")
	}
	t.Logf("18.16 refuses query parameters: %v", err)
}

// Nothing listening: Open fails within its ~10 s wait, naming the address.
func TestOpenUnreachable(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the open backoff")
	}
	start := time.Now()
	_, err := Open(context.Background(), Options{Addr: "127.0.0.1:1", Database: "x", DialTimeout: 200 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("took %v", d)
	}
}
