package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/internal/testenv"
	"github.com/orderflow/orderflow/queries/querytest"
	"github.com/orderflow/orderflow/sinks/chdb"
)

// TestReportAndSQLCommands runs `orderflow report` and `orderflow sql` on an
// embedded engine holding the queries fixture.
func TestReportAndSQLCommands(t *testing.T) {
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
	if err := querytest.Settle(ctx, e); err != nil { // no merge changes which rollup months are current
		t.Fatal(err)
	}
	_ = e.Close()
	env := func(k string) string {
		switch k {
		case "ORDERFLOW_CHDB_LIB":
			return lib
		case "ORDERFLOW_CHDB_PATH":
			return dir
		}
		return ""
	}
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := Main(ctx, args, &out, &errb, env)
		return code, out.String(), errb.String()
	}

	code, out, errOut := run("report", "--list")
	if code != exitOK || !strings.Contains(out, "rfm_segmentation") || !strings.Contains(out, "--param n= (UInt32, default 10)") {
		t.Fatalf("report --list: %d %q %q", code, out, errOut)
	}
	// flags after the report name
	code, out, errOut = run("report", "segment_performance", "--from", "2025-01-01", "--to=2025-04-30", "--format", "csv")
	if code != exitOK || !strings.HasPrefix(out, "segment,revenue,orders,customers,avg_order_value,orders_per_customer\nsilver,195.50,7,2,27.93,3.5\n") {
		t.Fatalf("report csv: %d %q %q", code, out, errOut)
	}
	code, out, _ = run("report", "--from", "2025-01-01", "--to", "2025-04-30", "top_products", "--param", "n=1")
	if code != exitOK || !strings.Contains(out, "GO-BOOK") || strings.Contains(out, "KAFKA-BOOK") || !strings.Contains(out, "(1 rows)") {
		t.Fatalf("report table: %d %q", code, out)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"report", "top_products", "--param", "n=many"}, `parameter "n"`},
		{[]string{"report", "top_products", "--from", "01/02/2025"}, `parameter "from"`},
		{[]string{"report", "campaign_impact"}, `parameter "campaign": required`},
		{[]string{"report", "top_products", "--param", "bogus=1"}, `parameter "bogus"`},
		{[]string{"report", "nope"}, `unknown report "nope"`},
		{[]string{"report", "daily_sales", "--format", "xml"}, `--format "xml"`},
		{[]string{"sql"}, "give the SQL"},
	} {
		code, _, errOut := run(c.args...)
		if code != exitUsage || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, stderr %q, want usage error containing %q", c.args, code, errOut, c.want)
		}
	}

	code, out, errOut = run("sql", "SELECT count() AS n FROM customer_orders FINAL WHERE _is_deleted = 0", "--format", "json")
	if code != exitOK || !strings.Contains(out, `"n": 15`) {
		t.Fatalf("sql select: %d %q %q", code, out, errOut)
	}
	for _, q := range []string{"INSERT INTO customers (customer_id) VALUES (1)", "ALTER TABLE customers DROP COLUMN city", "DROP TABLE customers"} {
		code, _, errOut := run("sql", q)
		if code != exitError || !strings.Contains(errOut, "read-only") {
			t.Errorf("sql %q: exit %d, stderr %q", q, code, errOut)
		}
	}

	// rollup: nothing refreshed yet, then every fixture month refreshed
	// and read by the reports
	code, out, errOut = run("rollup", "--status")
	if code != exitOK || !strings.Contains(out, "customer_months  2025-01  no:") || strings.Contains(out, " yes") {
		t.Fatalf("rollup --status before a refresh: %d %q %q", code, out, errOut)
	}
	code, out, errOut = run("rollup")
	if code != exitOK || !strings.HasPrefix(out, "rollups refreshed: 12 months, 34 rows in ") {
		t.Fatalf("rollup: %d %q %q", code, out, errOut)
	}
	code, out, errOut = run("rollup", "--status")
	if code != exitOK || !strings.Contains(out, "customer_months  2025-01  yes") || !strings.Contains(out, "product_months   2025-04  yes") || strings.Contains(out, " no:") {
		t.Fatalf("rollup --status after a refresh: %d %q %q", code, out, errOut)
	}
	code, out, errOut = run("report", "sales_by_month_segment", "--from", "2025-01-01", "--to=2025-04-30", "--format", "json")
	if code != exitOK || !strings.Contains(out, `"rollup_months": [`) || !strings.Contains(out, `"2025-05-01"`) {
		t.Fatalf("report json after the rollup refresh: %d %q %q", code, out, errOut)
	}
}
