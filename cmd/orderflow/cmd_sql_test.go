package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/internal/testenv"
	"github.com/orderflow/orderflow/queries/querytest"
	"github.com/orderflow/orderflow/sinks/chdb"
)

// TestSQLCommandMaxRows: `orderflow sql` prints at most --sql-max-rows rows
// (or ORDERFLOW_SQL_MAX_ROWS) and says when it cut: the table's last line,
// JSON's "truncated", and a warning on stderr.
func TestSQLCommandMaxRows(t *testing.T) {
	lib := testenv.ChdbLib(t)
	dir := t.TempDir()
	ctx := context.Background()
	e, err := chdb.Open(ctx, chdb.Options{Lib: lib, Path: dir, Database: "orderflow"})
	if err != nil {
		t.Fatal(err)
	}
	if err := querytest.ApplySchema(ctx, e); err != nil {
		t.Fatal(err)
	}
	if err := querytest.Load(ctx, e); err != nil {
		t.Fatal(err)
	}
	_ = e.Close()
	envMaxRows := ""
	env := func(k string) string {
		switch k {
		case "ORDERFLOW_CHDB_LIB":
			return lib
		case "ORDERFLOW_CHDB_PATH":
			return dir
		case "ORDERFLOW_SQL_MAX_ROWS":
			return envMaxRows
		}
		return ""
	}
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := Main(ctx, args, &out, &errb, env)
		return code, out.String(), errb.String()
	}
	const q = "SELECT order_id FROM customer_orders FINAL ORDER BY order_id"

	code, out, errOut := run("sql", q, "--sql-max-rows", "3")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != exitOK || len(lines) != 2+3+1 || lines[5] != "(3 rows; TRUNCATED: the result has more rows than the limit of 3)" ||
		!strings.Contains(errOut, "result truncated to the first 3 rows") {
		t.Fatalf("table, cap 3: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	envMaxRows = "5"
	code, out, errOut = run("sql", "--format", "json", q)
	var jr struct {
		Rows      []map[string]any `json:"rows"`
		MaxRows   int              `json:"max_rows"`
		Truncated bool             `json:"truncated"`
	}
	if code != exitOK || json.Unmarshal([]byte(out), &jr) != nil || len(jr.Rows) != 5 || jr.MaxRows != 5 || !jr.Truncated ||
		!strings.Contains(errOut, "result truncated to the first 5 rows") {
		t.Fatalf("json, ORDERFLOW_SQL_MAX_ROWS=5: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	// the default cap (10,000) leaves the 15 orders alone
	envMaxRows = ""
	code, out, errOut = run("sql", q)
	if code != exitOK || !strings.HasSuffix(out, "(15 rows)\n") || strings.Contains(errOut, "truncated") {
		t.Fatalf("default cap: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	code, _, errOut = run("sql", q, "--sql-max-rows", "0")
	if code != exitUsage || !strings.Contains(errOut, "--sql-max-rows must be positive") {
		t.Fatalf("--sql-max-rows 0: exit %d, stderr %q", code, errOut)
	}
}
