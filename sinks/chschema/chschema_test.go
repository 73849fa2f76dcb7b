package chschema

import (
	"context"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/internal/testenv"
	"github.com/orderflow/orderflow/sinks/chdb"
)

var fileRE = regexp.MustCompile(`^(\d{4})_[a-z0-9_]+\.sql$`)

func files(t *testing.T) []string {
	t.Helper()
	names, err := fs.Glob(Migrations, "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	return names
}

// TestNumbering fails on gaps, duplicates or badly named files.
func TestNumbering(t *testing.T) {
	names := files(t)
	if len(names) == 0 {
		t.Fatal("no migrations embedded")
	}
	for i, n := range names {
		m := fileRE.FindStringSubmatch(n)
		if m == nil {
			t.Fatalf("%s: want NNNN_name.sql", n)
		}
		if got, _ := strconv.Atoi(m[1]); got != i+1 {
			t.Fatalf("%s: number %d, want %d (gap or duplicate)", n, got, i+1)
		}
		b, _ := fs.ReadFile(Migrations, n)
		if !strings.Contains(string(b), "CREATE TABLE IF NOT EXISTS") && !strings.Contains(string(b), "ADD COLUMN") {
			t.Errorf("%s: want an idempotent CREATE TABLE IF NOT EXISTS or an ALTER TABLE ... ADD COLUMN (which chmigrate skips when the column exists)", n)
		}
	}
}

// TestApplyOnChdb runs every migration twice on the embedded engine (current
// ClickHouse) and checks the versioned tables' engines.
func TestApplyOnChdb(t *testing.T) {
	lib := testenv.ChdbLib(t)
	dir := t.TempDir()
	ctx := context.Background()
	e, err := chdb.Open(ctx, chdb.Options{Lib: lib, Path: dir, Database: testenv.Name("s")})
	if err != nil {
		t.Fatalf("open chdb: %v", err)
	}
	defer e.Close()
	for round := 0; round < 2; round++ {
		for _, n := range files(t) {
			b, _ := fs.ReadFile(Migrations, n)
			if round == 1 && strings.Contains(string(b), "ADD COLUMN") {
				continue // made idempotent by the runner (TestAddColumnHalfApplied in sinks/chmigrate)
			}
			if err := e.Exec(ctx, string(b)); err != nil {
				t.Fatalf("%s: %v", n, err)
			}
		}
	}
	res, err := e.Query(ctx, "SELECT name, engine_full FROM system.tables WHERE database = currentDatabase() ORDER BY name", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range res.Rows {
		got[fmt.Sprint(r[0])] = fmt.Sprint(r[1])
	}
	for _, tbl := range []string{"raw_customers", "raw_products", "raw_campaigns", "raw_orders", "raw_order_items", "customers", "products", "campaigns", "customer_orders", "order_lines"} {
		if !strings.HasPrefix(got[tbl], "ReplacingMergeTree(_version, _is_deleted)") {
			t.Errorf("%s: engine %q", tbl, got[tbl])
		}
	}
	if !strings.HasPrefix(got["change_log"], "ReplacingMergeTree") || !strings.HasPrefix(got["customer_history"], "ReplacingMergeTree(_version)") {
		t.Errorf("change_log %q, customer_history %q", got["change_log"], got["customer_history"])
	}
}
