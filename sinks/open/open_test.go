package open

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/internal/config"
	"github.com/orderflow/orderflow/internal/testenv"
	"github.com/orderflow/orderflow/sinks"
)

// The server engine opens and works while -chdb-lib names a file that does
// not exist: nothing loads libchdb on that path.
func TestServerWithoutLibchdb(t *testing.T) {
	addr := testenv.ClickHouseServerAddr(t)
	cfg := config.ClickHouse{Engine: "server", Addr: addr, Database: testenv.Name("t"), User: "default",
		ChdbLib: filepath.Join(t.TempDir(), "missing", "libchdb.so")}
	e, err := Open(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	defer e.Exec(context.Background(), "DROP DATABASE IF EXISTS "+sinks.QuoteIdent(cfg.Database))
	r, err := e.Query(context.Background(), "SELECT 1 + 1", nil)
	if err != nil || r.Rows[0][0] != uint64(2) {
		t.Fatalf("SELECT 1 + 1 = %v, %v", r, err)
	}
	if e.Database() != cfg.Database {
		t.Fatalf("database %q", e.Database())
	}
}

// Choosing chdb with a missing library is a clear error, not a panic.
func TestChdbMissingLibrary(t *testing.T) {
	cfg := config.ClickHouse{Engine: "chdb", Database: "x", ChdbPath: t.TempDir(),
		ChdbLib: filepath.Join(t.TempDir(), "missing", "libchdb.so")}
	_, err := Open(context.Background(), cfg, nil)
	if err == nil || !strings.Contains(err.Error(), "libchdb") || !strings.Contains(err.Error(), "make up") {
		t.Fatalf("err = %v", err)
	}
}

func TestUnknownEngine(t *testing.T) {
	if _, err := Open(context.Background(), config.ClickHouse{Engine: "duckdb"}, nil); err == nil || !strings.Contains(err.Error(), "duckdb") {
		t.Fatalf("err = %v", err)
	}
}

func TestChdb(t *testing.T) {
	cfg := config.ClickHouse{Engine: "chdb", Database: testenv.Name("t"), ChdbPath: t.TempDir(), ChdbLib: testenv.ChdbLib(t)}
	e, err := Open(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	r, err := e.Query(context.Background(), "SELECT currentDatabase()", nil)
	if err != nil || r.Rows[0][0] != cfg.Database {
		t.Fatalf("currentDatabase = %v, %v", r, err)
	}
}

// Linking sinks/open pulls in no cgo and loads nothing at init: a program
// importing it runs where libchdb.so is absent.
func TestBinaryRunsWithoutLibchdb(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program")
	}
	dir := t.TempDir()
	src := `package main

import (
	"fmt"

	_ "github.com/orderflow/orderflow/sinks/open"
)

func main() { fmt.Println("ok") }
`
	main := filepath.Join(dir, "main.go")
	if err := os.WriteFile(main, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "prog")
	build := exec.Command("go", "build", "-o", bin, main)
	build.Dir = testenv.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	run := exec.Command(bin)
	run.Env = append(os.Environ(), "ORDERFLOW_CHDB_LIB=/nonexistent/libchdb.so", "LD_LIBRARY_PATH=")
	out, err := run.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("program: %v\n%s", err, out)
	}
}
