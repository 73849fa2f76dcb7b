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
	"github.com/orderflow/orderflow/sinks/chmigrate"
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
		if !strings.Contains(string(b), "CREATE TABLE IF NOT EXISTS") && !strings.Contains(string(b), "ADD COLUMN") &&
			!onlyModifySetting(string(b)) {
			t.Errorf("%s: want an idempotent CREATE TABLE IF NOT EXISTS, an ALTER TABLE ... ADD COLUMN (which chmigrate skips when the column exists) "+
				"or only ALTER TABLE ... MODIFY SETTING statements", n)
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
			for _, st := range chmigrate.Statements(string(b)) {
				if err := e.Exec(ctx, st); err != nil {
					t.Fatalf("%s: %v", n, err)
				}
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
	// 0018: the write-mostly tables merge less eagerly; the facts, read by
	// the reports with FINAL, keep the default
	for _, tbl := range []string{"change_log", "raw_customers", "raw_products", "raw_campaigns", "raw_orders", "raw_order_items"} {
		if !strings.Contains(got[tbl], "merge_selector_base = 20") {
			t.Errorf("%s: want merge_selector_base = 20 in %q", tbl, got[tbl])
		}
	}
	for _, tbl := range []string{"customer_orders", "order_lines", "customers", "products", "campaigns", "customer_history"} {
		if strings.Contains(got[tbl], "merge_selector_base") {
			t.Errorf("%s: want the default merge selector, got %q", tbl, got[tbl])
		}
	}
}

// onlyModifySetting reports whether every statement of sql is an ALTER
// TABLE ... MODIFY SETTING (idempotent: running it twice sets the same value).
func onlyModifySetting(sql string) bool {
	sts := chmigrate.Statements(sql)
	for _, st := range sts {
		if !modifySettingRE.MatchString(st) {
			return false
		}
	}
	return len(sts) > 0
}

var modifySettingRE = regexp.MustCompile(`(?is)^(\s*--[^\n]*\n)*\s*ALTER TABLE \S+ MODIFY SETTING [a-z_]+ = [0-9]+\s*$`)
