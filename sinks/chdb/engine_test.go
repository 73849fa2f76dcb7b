package chdb

import (
	"context"
	"errors"
	"math"
	"os"
	"os/signal"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/orderflow/orderflow/internal/testenv"
	"github.com/orderflow/orderflow/sinks"
)

// dataDir is the one chDB data directory of this test process (libchdb
// binds a process to one directory); each test gets its own database in it.
var dataDir string

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "orderflow-chdb-test-")
	if err != nil {
		panic(err)
	}
	dataDir = d
	code := m.Run()
	_ = os.RemoveAll(d)
	os.Exit(code)
}

func openEngine(t testing.TB) *Engine {
	t.Helper()
	lib := testenv.ChdbLib(t)
	db := testenv.Name("t")
	e, err := Open(context.Background(), Options{Lib: lib, Path: dataDir, Database: db})
	if err != nil {
		t.Fatalf("open chdb: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Exec(context.Background(), "DROP DATABASE IF EXISTS "+sinks.QuoteIdent(db)); err != nil {
			t.Errorf("drop database: %v", err)
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

func query(t testing.TB, e sinks.Engine, q string, ps map[string]any) *sinks.Result {
	t.Helper()
	r, err := e.Query(context.Background(), q, ps)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return r
}

// Inserts skip the replacing merge of each block (optimize_on_insert = 0):
// two rows of one key in one insert both reach the part, and FINAL still
// reads the newest.
func TestInsertLeavesReplacingToFinal(t *testing.T) {
	e := openEngine(t)
	mustExec(t, e, `CREATE TABLE facts (id Int64, status LowCardinality(String), _version UInt64, _is_deleted UInt8)
		ENGINE = ReplacingMergeTree(_version, _is_deleted) ORDER BY id`)
	cols := []string{"id", "status", "_version", "_is_deleted"}
	rows := [][]any{{int64(1), "placed", uint64(10), uint8(0)}, {int64(1), "paid", uint64(20), uint8(0)}, {int64(2), "placed", uint64(15), uint8(0)}}
	if err := e.Insert(context.Background(), "facts", cols, rows); err != nil {
		t.Fatal(err)
	}
	if got := query(t, e, "SELECT count() FROM facts", nil).Rows[0][0]; got != uint64(3) {
		t.Fatalf("rows in the part = %v, want 3 (the block not collapsed on insert)", got)
	}
	r := query(t, e, "SELECT id, status FROM facts FINAL ORDER BY id", nil)
	if want := [][]any{{int64(1), "paid"}, {int64(2), "placed"}}; !reflect.DeepEqual(r.Rows, want) {
		t.Fatalf("FINAL rows = %v, want %v", r.Rows, want)
	}
}

// Issue 2 smoke test: a ReplacingMergeTree(_version, _is_deleted) table keeps
// the newest version of a row, read with FINAL.
func TestSmokeReplacingMergeTreeFinal(t *testing.T) {
	e := openEngine(t)
	mustExec(t, e, `CREATE TABLE customers (id Int64, segment LowCardinality(String), _version UInt64, _is_deleted UInt8)
		ENGINE = ReplacingMergeTree(_version, _is_deleted) ORDER BY id`)
	ctx := context.Background()
	cols := []string{"id", "segment", "_version", "_is_deleted"}
	if err := e.Insert(ctx, "customers", cols, [][]any{{int64(7), "retail", uint64(100), uint8(0)}}); err != nil {
		t.Fatal(err)
	}
	if err := e.Insert(ctx, "customers", cols, [][]any{{int64(7), "wholesale", uint64(200), uint8(0)}}); err != nil {
		t.Fatal(err)
	}
	// a replayed older version must not win
	if err := e.Insert(ctx, "customers", cols, [][]any{{int64(7), "stale", uint64(150), uint8(0)}}); err != nil {
		t.Fatal(err)
	}
	r := query(t, e, "SELECT count() FROM customers", nil)
	if got := r.Rows[0][0]; got != uint64(3) {
		t.Fatalf("raw row count = %v, want 3 (three parts before merge)", got)
	}
	r = query(t, e, "SELECT id, segment, _version FROM customers FINAL", nil)
	want := [][]any{{int64(7), "wholesale", uint64(200)}}
	if !reflect.DeepEqual(r.Rows, want) {
		t.Fatalf("FINAL rows = %v, want %v", r.Rows, want)
	}
	// a delete (newer version, _is_deleted = 1) hides the row under FINAL
	if err := e.Insert(ctx, "customers", cols, [][]any{{int64(7), "wholesale", uint64(300), uint8(1)}}); err != nil {
		t.Fatal(err)
	}
	r = query(t, e, "SELECT count() FROM customers FINAL", nil)
	if got := r.Rows[0][0]; got != uint64(0) {
		t.Fatalf("count FINAL after delete = %v, want 0", got)
	}
}

func TestRoundTripTypes(t *testing.T) {
	e := openEngine(t)
	mustExec(t, e, `CREATE TABLE all_types (
		i8 Int8, i16 Int16, i32 Int32, i64 Int64,
		u8 UInt8, u16 UInt16, u32 UInt32, u64 UInt64,
		f32 Float32, f64 Float64, b Bool, s String, fs FixedString(4),
		lc LowCardinality(String), lcn LowCardinality(Nullable(String)),
		d Date, d32 Date32, dt DateTime, dtz DateTime('Asia/Tokyo'), dt64 DateTime64(3), dt64z DateTime64(6, 'UTC'),
		dec Decimal(18, 2), dec9 Decimal(9, 4), dec38 Decimal(38, 10),
		ni Nullable(Int64), ns Nullable(String), ndt Nullable(DateTime64(3)),
		arr Array(String), arri Array(Int32), en Enum8('a' = 1, 'b' = 2), id UUID
	) ENGINE = MergeTree ORDER BY i64`)
	ts := time.Date(2024, 3, 5, 6, 7, 8, 123456789, time.UTC)
	row := []any{
		int8(-8), int16(-16), int32(-32), int64(math.MinInt64),
		uint8(255), uint16(65535), uint32(4294967295), uint64(math.MaxUint64),
		float32(1.5), 2.25, true, "tab\there \"quoted\" 'single' \\ é", "ab",
		"low", nil,
		time.Date(2024, 3, 5, 0, 0, 0, 0, time.UTC), time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC), ts, ts, ts, ts,
		"12345.67", "-1.5", "-12345678901234567890.0123456789",
		nil, "x", nil,
		[]string{"a", "b'c"}, []any{int32(1), int64(-2)}, "b", "123e4567-e89b-12d3-a456-426614174000",
	}
	cols := []string{"i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "f32", "f64", "b", "s", "fs", "lc", "lcn",
		"d", "d32", "dt", "dtz", "dt64", "dt64z", "dec", "dec9", "dec38", "ni", "ns", "ndt", "arr", "arri", "en", "id"}
	if err := e.Insert(context.Background(), "all_types", cols, [][]any{row}); err != nil {
		t.Fatal(err)
	}
	r := query(t, e, "SELECT "+strings.Join(cols, ", ")+" FROM all_types", nil)
	want := []any{
		int64(-8), int64(-16), int64(-32), int64(math.MinInt64),
		uint64(255), uint64(65535), uint64(4294967295), uint64(math.MaxUint64),
		1.5, 2.25, true, "tab\there \"quoted\" 'single' \\ é", "ab\x00\x00",
		"low", nil,
		time.Date(2024, 3, 5, 0, 0, 0, 0, time.UTC), time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC),
		ts.Truncate(time.Second), ts.Truncate(time.Second), ts.Truncate(time.Millisecond), ts.Truncate(time.Microsecond),
		"12345.67", "-1.5", "-12345678901234567890.0123456789",
		nil, "x", nil,
		[]any{"a", "b'c"}, []any{int64(1), int64(-2)}, "b", "123e4567-e89b-12d3-a456-426614174000",
	}
	if len(r.Rows) != 1 {
		t.Fatalf("rows = %d, want 1", len(r.Rows))
	}
	for i, c := range cols {
		got := r.Rows[0][i]
		if gt, ok := got.(time.Time); ok {
			if !gt.Equal(want[i].(time.Time)) {
				t.Errorf("%s = %v, want %v", c, gt, want[i])
			}
			continue
		}
		if !reflect.DeepEqual(got, want[i]) {
			t.Errorf("%s (%s) = %#v, want %#v", c, r.Types[i], got, want[i])
		}
	}
	if r.Types[21] != "Decimal(18, 2)" || r.Columns[0] != "i8" {
		t.Errorf("meta: columns %v types %v", r.Columns, r.Types)
	}
}

func TestQueryParameters(t *testing.T) {
	e := openEngine(t)
	mustExec(t, e, "CREATE TABLE p (id Int64, name String, at DateTime64(3, 'UTC')) ENGINE = MergeTree ORDER BY id")
	at := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	rows := [][]any{{int64(1), "alice", at}, {int64(2), "bob'); DROP TABLE p; --", at.Add(time.Hour)}, {int64(3), "carol", at.Add(48 * time.Hour)}}
	if err := e.Insert(context.Background(), "p", []string{"id", "name", "at"}, rows); err != nil {
		t.Fatal(err)
	}
	r := query(t, e, "SELECT id FROM p WHERE name = {name:String} ORDER BY id", map[string]any{"name": "bob'); DROP TABLE p; --"})
	if !reflect.DeepEqual(r.Rows, [][]any{{int64(2)}}) {
		t.Fatalf("string param rows = %v", r.Rows)
	}
	r = query(t, e, "SELECT id FROM p WHERE at >= {from:DateTime64(3)} AND at < {to:Date} AND id IN {ids:Array(Int64)} ORDER BY id",
		map[string]any{"from": at.Add(time.Minute), "to": "2024-01-05", "ids": []int64{1, 2, 3}})
	if !reflect.DeepEqual(r.Rows, [][]any{{int64(2)}, {int64(3)}}) {
		t.Fatalf("time/array params rows = %v", r.Rows)
	}
	r = query(t, e, "SELECT {s:String} AS s, {a:Array(String)} AS a, {n:Nullable(Int32)} AS n", map[string]any{"s": "a\tb\\c\nd", "a": []string{"x'y", "z\\"}, "n": nil})
	if want := [][]any{{"a\tb\\c\nd", []any{"x'y", "z\\"}, nil}}; !reflect.DeepEqual(r.Rows, want) {
		t.Fatalf("escaping: got %#v want %#v", r.Rows, want)
	}
	r = query(t, e, "SELECT {e:String} = '', length({e:String})", map[string]any{"e": ""})
	if want := [][]any{{uint64(1), uint64(0)}}; !reflect.DeepEqual(r.Rows, want) {
		t.Fatalf("empty string param: %#v", r.Rows)
	}
	if _, err := e.Query(context.Background(), "  ", nil); err == nil || !strings.Contains(err.Error(), "empty query") {
		t.Fatalf("empty query: %v", err)
	}
	if _, err := e.Query(context.Background(), "SELECT {x:Int32}", map[string]any{"x": "not a number"}); err == nil {
		t.Fatal("bad parameter value: no error")
	}
	if _, err := e.Query(context.Background(), "SELECT {x:Int32}", nil); err == nil || !strings.Contains(err.Error(), "UNKNOWN_QUERY_PARAMETER") {
		t.Fatalf("missing parameter: err = %v", err)
	}
	r = query(t, e, "SELECT count() FROM p", nil)
	if r.Rows[0][0] != uint64(3) {
		t.Fatalf("count = %v", r.Rows[0][0])
	}
}

func TestDatabaseBinding(t *testing.T) {
	a, b := openEngine(t), openEngine(t)
	mustExec(t, a, "CREATE TABLE t (x Int32) ENGINE = Memory")
	mustExec(t, b, "CREATE TABLE t (x Int32) ENGINE = Memory")
	ctx := context.Background()
	if err := a.Insert(ctx, "t", []string{"x"}, [][]any{{int32(1)}}); err != nil {
		t.Fatal(err)
	}
	if err := b.Insert(ctx, "t", []string{"x"}, [][]any{{int32(2)}, {int32(3)}}); err != nil {
		t.Fatal(err)
	}
	// a statement that switches the session's database does not leak into
	// the next statement
	mustExec(t, a, "USE system")
	ra := query(t, a, "SELECT currentDatabase(), sum(x) FROM t", nil)
	rb := query(t, b, "SELECT currentDatabase(), sum(x) FROM t", nil)
	if ra.Rows[0][0] != a.Database() || ra.Rows[0][1] != int64(1) {
		t.Errorf("engine a: %v", ra.Rows)
	}
	if rb.Rows[0][0] != b.Database() || rb.Rows[0][1] != int64(5) {
		t.Errorf("engine b: %v", rb.Rows)
	}
}

func TestErrors(t *testing.T) {
	e := openEngine(t)
	ctx := context.Background()
	err := e.Exec(ctx, "SELEC 1")
	var ex *sinks.Exception
	if !errors.As(err, &ex) || ex.Code != 62 || ex.Name != "SYNTAX_ERROR" {
		t.Fatalf("syntax error: %v (%#v)", err, ex)
	}
	if sinks.Retryable(err) {
		t.Error("syntax error is retryable")
	}
	err = e.Insert(ctx, "missing", []string{"a"}, [][]any{{1}})
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("missing table: %v", err)
	}
	mustExec(t, e, "CREATE TABLE t (a Int32, s String) ENGINE = Memory")
	for _, tc := range []struct {
		cols []string
		row  []any
		want string
	}{
		{[]string{"nope"}, []any{1}, `has no column "nope"`},
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
	r := query(t, e, "SELECT count() FROM t", nil)
	if r.Rows[0][0] != uint64(0) {
		t.Errorf("failed inserts wrote %v rows", r.Rows[0][0])
	}
	// a batch the engine rejects (type mismatch found by the engine, not the
	// encoder) leaves no spool file behind
	if err := e.Insert(ctx, "missing_too", []string{"a"}, [][]any{{1}}); err == nil {
		t.Error("insert into a missing table succeeded")
	}
	if err := e.Insert(ctx, "t", []string{"a", "s"}, [][]any{{1, "ok"}}); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(e.spool); len(left) != 0 {
		t.Errorf("spool files left: %v", left)
	}
}

func TestQueryReadOnly(t *testing.T) {
	e := openEngine(t)
	mustExec(t, e, "CREATE TABLE t (a Int32) ENGINE = MergeTree ORDER BY a")
	if err := e.Insert(context.Background(), "t", []string{"a"}, [][]any{{int32(4)}}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r, err := sinks.QueryReadOnly(ctx, e, "SELECT sum(a) FROM t WHERE a > {min:Int32}", map[string]any{"min": 1})
	if err != nil || r.Rows[0][0] != int64(4) {
		t.Fatalf("read-only SELECT: %v %v", r, err)
	}
	for _, q := range []string{
		"INSERT INTO t VALUES (5)",
		"ALTER TABLE t DELETE WHERE 1",
		"DROP TABLE t",
		"CREATE TABLE u (a Int32) ENGINE = Memory",
		"SET readonly = 0",
		"SELECT 1 SETTINGS readonly = 0",
		"SELECT * FROM file('/etc/passwd', 'LineAsString')",
		"INSERT INTO FUNCTION file('/tmp/orderflow-ro.tsv', 'TSV', 'a Int32') VALUES (1)",
	} {
		_, err := sinks.QueryReadOnly(ctx, e, q, nil)
		var ex *sinks.Exception
		if !errors.As(err, &ex) || ex.Code != 164 {
			t.Errorf("%s: err = %v, want READONLY (164)", q, err)
		}
	}
	// the USE of one analyst query does not change where the next one runs
	if _, err := sinks.QueryReadOnly(ctx, e, "USE system", nil); err != nil {
		t.Fatal(err)
	}
	r, err = sinks.QueryReadOnly(ctx, e, "SELECT count() FROM t", nil)
	if err != nil || r.Rows[0][0] != uint64(1) {
		t.Fatalf("after USE: %v %v", r, err)
	}
	// the read-write session is unaffected
	if err := e.Insert(ctx, "t", []string{"a"}, [][]any{{int32(5)}}); err != nil {
		t.Fatal(err)
	}
}

// The Go runtime keeps its own signal handlers after chDB is loaded: a nil
// dereference is still a recoverable Go panic.
func TestGoSignalHandlersSurvive(t *testing.T) {
	_ = openEngine(t)
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	var p *int
	_ = *p //nolint:govet // deliberate nil dereference
}

// Engines on one process run statements concurrently; each Engine
// serializes its own.
func TestConcurrentEngines(t *testing.T) {
	engines := []*Engine{openEngine(t), openEngine(t), openEngine(t)}
	ctx := context.Background()
	for _, e := range engines {
		mustExec(t, e, "CREATE TABLE t (id Int64, s String) ENGINE = MergeTree ORDER BY id")
	}
	errc := make(chan error, 12)
	for w := 0; w < 12; w++ {
		e := engines[w%len(engines)]
		go func(w int) {
			for b := 0; b < 5; b++ {
				rows := make([][]any, 1000)
				for i := range rows {
					rows[i] = []any{int64(w*100000 + b*1000 + i), "x"}
				}
				if err := e.Insert(ctx, "t", []string{"id", "s"}, rows); err != nil {
					errc <- err
					return
				}
				if _, err := e.Query(ctx, "SELECT count() FROM t WHERE id >= {from:Int64}", map[string]any{"from": w * 100000}); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}(w)
	}
	for w := 0; w < 12; w++ {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range engines {
		r := query(t, e, "SELECT count(), uniqExact(id) FROM t", nil)
		if r.Rows[0][0] != uint64(20000) || r.Rows[0][1] != uint64(20000) {
			t.Errorf("%s: count, uniq = %v, want 20000", e.Database(), r.Rows[0])
		}
	}
}

// A column list in any order, leaving out columns with defaults.
func TestInsertColumnSubsetAndOrder(t *testing.T) {
	e := openEngine(t)
	mustExec(t, e, "CREATE TABLE d (a Int32, b String DEFAULT 'def', c LowCardinality(String), at DateTime64(3) DEFAULT now64(3)) ENGINE = MergeTree ORDER BY a")
	if err := e.Insert(context.Background(), "d", []string{"c", "a"}, [][]any{{"x", int32(2)}, {"y", int32(1)}}); err != nil {
		t.Fatal(err)
	}
	r := query(t, e, "SELECT a, b, c, at > now64(3) - INTERVAL 1 MINUTE FROM d ORDER BY a", nil)
	want := [][]any{{int64(1), "def", "y", uint64(1)}, {int64(2), "def", "x", uint64(1)}}
	if !reflect.DeepEqual(r.Rows, want) {
		t.Fatalf("rows %#v, want %#v", r.Rows, want)
	}
}

// SIGINT and SIGTERM still reach signal.Notify after chDB is loaded, so
// cmd/orderflow's graceful shutdown works with the embedded engine.
func TestShutdownSignalsReachGo(t *testing.T) {
	_ = openEngine(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, sig)
		if err := syscall.Kill(os.Getpid(), sig); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-ch:
			if got != sig {
				t.Errorf("got %v, want %v", got, sig)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("%v not delivered to Go", sig)
		}
		signal.Stop(ch)
	}
}
