package chmigrate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/orderflow/orderflow/internal/testenv"
	"github.com/orderflow/orderflow/sinks"
	"github.com/orderflow/orderflow/sinks/chdb"
	"github.com/orderflow/orderflow/sinks/chschema"
	"github.com/orderflow/orderflow/sinks/chserver"
)

func TestLoadRejectsBadSets(t *testing.T) {
	ok := "CREATE TABLE IF NOT EXISTS a (x Int32) ENGINE = Memory"
	for name, tc := range map[string]struct {
		fs   fstest.MapFS
		want string
	}{
		"gap":       {fstest.MapFS{"0001_a.sql": {Data: []byte(ok)}, "0003_c.sql": {Data: []byte(ok)}}, "gap"},
		"duplicate": {fstest.MapFS{"0001_a.sql": {Data: []byte(ok)}, "0001_b.sql": {Data: []byte(ok)}}, "share version 1"},
		"start":     {fstest.MapFS{"0002_a.sql": {Data: []byte(ok)}}, "want 1"},
		"badname":   {fstest.MapFS{"1_a.sql": {Data: []byte(ok)}}, "NNNN_name.sql"},
		"empty":     {fstest.MapFS{"0001_a.sql": {Data: []byte("-- nothing\n;")}}, "no statement"},
	} {
		if _, err := Load(tc.fs); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", name, err, tc.want)
		}
	}
	ms, err := Load(fstest.MapFS{"0002_b.sql": {Data: []byte(ok)}, "0001_a.sql": {Data: []byte(ok)}, "README.md": {Data: []byte("x")}})
	if err != nil || len(ms) != 2 || ms[0].Name != "0001_a.sql" || ms[1].Version != 2 {
		t.Fatalf("Load = %+v, %v", ms, err)
	}
}

// The orderflow schema itself loads: numbered without gaps.
func TestLoadOrderflowSchema(t *testing.T) {
	ms, err := Load(chschema.Migrations)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 {
		t.Fatal("no migrations")
	}
}

func TestStatements(t *testing.T) {
	got := Statements(`-- header; with a semicolon
CREATE TABLE a (s String DEFAULT 'x;y') ENGINE = Memory; /* c; */
INSERT INTO a VALUES ('it''s; fine', "q;", ` + "`b;`" + `);
-- trailing comment only
`)
	want := []string{
		"-- header; with a semicolon\nCREATE TABLE a (s String DEFAULT 'x;y') ENGINE = Memory",
		"/* c; */\nINSERT INTO a VALUES ('it''s; fine', \"q;\", `b;`)",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Statements =\n%q\nwant\n%q", got, want)
	}
}

var testMigrations = fstest.MapFS{
	"0001_events.sql": {Data: []byte("-- events\nCREATE TABLE IF NOT EXISTS events (id Int64, v UInt64) ENGINE = ReplacingMergeTree(v) ORDER BY id")},
	"0002_more.sql": {Data: []byte("CREATE TABLE IF NOT EXISTS more (id Int64) ENGINE = MergeTree ORDER BY id;\n" +
		"CREATE TABLE IF NOT EXISTS more2 (id Int64) ENGINE = MergeTree ORDER BY id;")},
}

func testMigrate(t *testing.T, e sinks.Engine) {
	ctx := context.Background()
	done, err := Migrate(ctx, e, testMigrations, nil)
	if err != nil || !reflect.DeepEqual(done, []int{1, 2}) {
		t.Fatalf("first run: applied %v, %v", done, err)
	}
	done, err = Migrate(ctx, e, testMigrations, nil)
	if err != nil || len(done) != 0 {
		t.Fatalf("second run: applied %v, %v (want nothing)", done, err)
	}
	res, err := e.Query(ctx, "SELECT name FROM system.tables WHERE database = currentDatabase() ORDER BY name", nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range res.Rows {
		names = append(names, r[0].(string))
	}
	if want := []string{"events", "more", "more2", VersionTable}; !reflect.DeepEqual(names, want) {
		t.Fatalf("tables %v, want %v", names, want)
	}
	// a third file is applied alone
	next := fstest.MapFS{"0003_third.sql": {Data: []byte("CREATE TABLE IF NOT EXISTS third (id Int64) ENGINE = Memory")}}
	for k, v := range testMigrations {
		next[k] = v
	}
	if done, err = Migrate(ctx, e, next, nil); err != nil || !reflect.DeepEqual(done, []int{3}) {
		t.Fatalf("third run: applied %v, %v", done, err)
	}
	// an applied file that changed is refused
	changed := fstest.MapFS{"0001_events.sql": {Data: []byte("CREATE TABLE IF NOT EXISTS events (id Int64) ENGINE = Memory")}}
	changed["0002_more.sql"], changed["0003_third.sql"] = next["0002_more.sql"], next["0003_third.sql"]
	if _, err = Migrate(ctx, e, changed, nil); err == nil || !strings.Contains(err.Error(), "changed after it was applied") {
		t.Fatalf("changed file: err = %v", err)
	}
	// a database ahead of the binary is refused
	if _, err = Migrate(ctx, e, testMigrations, nil); err == nil || !strings.Contains(err.Error(), "does not have") {
		t.Fatalf("older binary: err = %v", err)
	}
	applied, err := Applied(ctx, e)
	if err != nil || len(applied) != 3 {
		t.Fatalf("Applied = %v, %v", applied, err)
	}
}

func openChdb(t *testing.T) *chdb.Engine {
	lib := testenv.ChdbLib(t)
	e, err := chdb.Open(context.Background(), chdb.Options{Lib: lib, Path: chdbDir, Database: testenv.Name("m")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

var chdbDir string

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "orderflow-chmigrate-")
	if err != nil {
		panic(err)
	}
	chdbDir = d
	code := m.Run()
	_ = os.RemoveAll(d)
	os.Exit(code)
}

func TestMigrateChdb(t *testing.T) { testMigrate(t, openChdb(t)) }

func TestMigrateServer(t *testing.T) {
	addr := testenv.ClickHouseServerAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := chserver.Open(ctx, chserver.Options{Addr: addr, Database: testenv.Name("m")})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	defer e.Exec(context.Background(), "DROP DATABASE IF EXISTS "+sinks.QuoteIdent(e.Database()))
	testMigrate(t, e)
}

// The orderflow schema applies through the runner on the current engine,
// twice without change.
func TestMigrateOrderflowSchemaChdb(t *testing.T) {
	e := openChdb(t)
	ctx := context.Background()
	done, err := Migrate(ctx, e, chschema.Migrations, nil)
	if err != nil {
		t.Fatal(err)
	}
	ms, _ := Load(chschema.Migrations)
	if len(done) != len(ms) {
		t.Fatalf("applied %d of %d", len(done), len(ms))
	}
	if done, err = Migrate(ctx, e, chschema.Migrations, nil); err != nil || len(done) != 0 {
		t.Fatalf("second run: %v %v", done, err)
	}
}

func TestAnalystStatements(t *testing.T) {
	sts, err := AnalystStatements("orderflow", AnalystUser{Password: "p'w\\d"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sts[0], "CREATE USER IF NOT EXISTS `analyst` IDENTIFIED WITH sha256_password BY 'p\\'w\\\\d' SETTINGS readonly = 1") {
		t.Errorf("create: %s", sts[0])
	}
	if sts[3] != "GRANT SELECT ON `orderflow`.* TO `analyst`" {
		t.Errorf("grant: %s", sts[3])
	}
	if _, err := AnalystStatements("orderflow", AnalystUser{}); err == nil {
		t.Error("empty password accepted")
	}
}

// 18.16 has no SQL users: EnsureAnalyst says to use users.xml.
func TestEnsureAnalystOn1816(t *testing.T) {
	addr := testenv.ClickHouseServerAddr(t)
	e, err := chserver.Open(context.Background(), chserver.Options{Addr: addr, Database: testenv.Name("m")})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	defer e.Exec(context.Background(), "DROP DATABASE IF EXISTS "+sinks.QuoteIdent(e.Database()))
	v, _ := e.ServerVersion()
	if !strings.HasPrefix(v, "18.") {
		t.Skipf("server %s has SQL access control", v)
	}
	err = EnsureAnalyst(context.Background(), e, AnalystUser{Password: "secret"})
	var ex *sinks.Exception
	if err == nil || !strings.Contains(err.Error(), "users.xml") || !errors.As(err, &ex) {
		t.Fatalf("err = %v", err)
	}
}

// The analyst SQL parses on the current engine (chDB 26.5). chDB's default
// user may not create users, so this checks the syntax (EXPLAIN AST), not
// the grant itself; executing it needs a current server.
func TestAnalystSQLParsesOnCurrentEngine(t *testing.T) {
	e := openChdb(t)
	sts, err := AnalystStatements(e.Database(), AnalystUser{Password: "s3cret'"})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range sts {
		r, err := e.Query(context.Background(), "EXPLAIN AST "+st, nil)
		if err != nil || len(r.Rows) == 0 {
			t.Errorf("%s: %v", st, err)
		}
	}
}

// An ALTER TABLE ... ADD COLUMN that ran before its migration was recorded
// (a crash in between) runs again without error on both engines (18.16 has
// no ADD COLUMN IF NOT EXISTS): the runner skips it and records the file.
func TestAddColumnHalfApplied(t *testing.T) {
	fsys := fstest.MapFS{
		"0001_t.sql":     {Data: []byte("CREATE TABLE IF NOT EXISTS t (a Int64) ENGINE = MergeTree ORDER BY a")},
		"0002_t_b.sql":   {Data: []byte("-- a new column\nALTER TABLE t ADD COLUMN b UInt8 DEFAULT 1")},
		"0003_after.sql": {Data: []byte("CREATE TABLE IF NOT EXISTS u (a Int64) ENGINE = MergeTree ORDER BY a")},
	}
	check := func(t *testing.T, e sinks.Engine) {
		ctx := context.Background()
		if err := e.Exec(ctx, "CREATE TABLE IF NOT EXISTS t (a Int64) ENGINE = MergeTree ORDER BY a"); err != nil {
			t.Fatal(err)
		}
		if err := e.Exec(ctx, "ALTER TABLE t ADD COLUMN b UInt8 DEFAULT 1"); err != nil {
			t.Fatal(err)
		}
		done, err := Migrate(ctx, e, fsys, nil)
		if err != nil || fmt.Sprint(done) != "[1 2 3]" {
			t.Fatalf("migrate after a half-applied ADD COLUMN: applied %v, err %v", done, err)
		}
		res, err := e.Query(ctx, "SELECT name FROM system.columns WHERE database = "+sinks.QuoteString(e.Database())+" AND table = 't' ORDER BY name", nil)
		if err != nil || fmt.Sprint(res.Rows) != "[[a] [b]]" {
			t.Fatalf("columns of t: %v %v", res, err)
		}
	}
	t.Run("chdb", func(t *testing.T) { check(t, openChdb(t)) })
	t.Run("server", func(t *testing.T) {
		addr := testenv.ClickHouseServerAddr(t)
		e, err := chserver.Open(context.Background(), chserver.Options{Addr: addr, Database: testenv.Name("m")})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		defer e.Exec(context.Background(), "DROP DATABASE IF EXISTS "+sinks.QuoteIdent(e.Database()))
		check(t, e)
	})
}
