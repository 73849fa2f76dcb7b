package queries

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/internal/testenv"
	"github.com/orderflow/orderflow/sinks"
	"github.com/orderflow/orderflow/sinks/chdb"
	"github.com/orderflow/orderflow/sinks/chmigrate"
	"github.com/orderflow/orderflow/sinks/chschema"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// chdbDir is this test process's one embedded-engine data directory (libchdb
// binds a process to one); each test uses its own database in it.
var chdbDir string

func TestMain(m *testing.M) {
	flag.Parse()
	d, err := os.MkdirTemp("", "orderflow-queries-test-")
	if err != nil {
		panic(err)
	}
	chdbDir = d
	code := m.Run()
	_ = os.RemoveAll(d)
	os.Exit(code)
}

// openDB opens a fresh chDB database with the query-side schema applied.
func openDB(t testing.TB) *chdb.Engine {
	t.Helper()
	lib := testenv.ChdbLib(t)
	ctx := context.Background()
	e, err := chdb.Open(ctx, chdb.Options{Lib: lib, Path: chdbDir, Database: testenv.Name("q")})
	if err != nil {
		t.Fatalf("open chdb: %v", err)
	}
	t.Cleanup(func() {
		_ = e.Exec(context.Background(), "DROP DATABASE IF EXISTS "+sinks.QuoteIdent(e.Database()))
		_ = e.Close()
	})
	applySchema(t, e)
	return e
}

func applySchema(t testing.TB, e sinks.Engine) {
	t.Helper()
	if err := chmigrate.ApplyFiles(context.Background(), e, chschema.Migrations); err != nil {
		t.Fatal(err)
	}
}

// testLog is a logger writing to t.Log.
func testLog(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, nil))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
