package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/internal/testenv"
	"github.com/orderflow/orderflow/queries/querytest"
	"github.com/orderflow/orderflow/sinks/chdb"
)

// subprocessEnv marks a run of this test binary as one orderflow process of
// TestRollupSurvivesRestart: its arguments are in subprocessArgs.
const (
	subprocessEnv  = "ORDERFLOW_TEST_SUBPROCESS"
	subprocessArgs = "ORDERFLOW_TEST_SUBPROCESS_ARGS"
)

// TestSubprocess is not a test: TestRollupSurvivesRestart runs this binary
// with subprocessEnv set to get a fresh process, which runs orderflow's Main
// with the given arguments (or "load-fixture": the queries fixture into the
// embedded engine, merged; "exec <SQL>...": statements on it) and exits
// with its code.
func TestSubprocess(t *testing.T) {
	if os.Getenv(subprocessEnv) != "1" {
		t.Skip("helper process of TestRollupSurvivesRestart")
	}
	args := strings.Split(os.Getenv(subprocessArgs), "\x1f")
	ctx := context.Background()
	if args[0] == "load-fixture" || args[0] == "exec" {
		e, err := chdb.Open(ctx, chdb.Options{Lib: os.Getenv("ORDERFLOW_CHDB_LIB"), Path: os.Getenv("ORDERFLOW_CHDB_PATH"), Database: "orderflow"})
		if err == nil && args[0] == "exec" {
			for _, q := range args[1:] {
				if err = e.Exec(ctx, q); err != nil {
					break
				}
			}
		} else if err == nil {
			if err = querytest.ApplySchema(ctx, e); err == nil {
				err = querytest.Load(ctx, e)
			}
			if err == nil {
				err = querytest.Settle(ctx, e)
			}
		}
		if err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		_ = e.Close()
		os.Exit(0)
	}
	os.Exit(Main(ctx, args, os.Stdout, os.Stderr, os.Getenv))
}

// TestRollupSurvivesRestart: rollups refreshed by one process are read by
// the next ones. Each step is a separate process on one embedded data
// directory, because what a swap leaves on disk only shows after a
// restart: REPLACE PARTITION's replaced parts came back on chDB 26.5, which
// is why a refresh writes generations instead.
func TestRollupSurvivesRestart(t *testing.T) {
	lib := testenv.ChdbLib(t)
	dir := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(os.Args[0], "-test.run=^TestSubprocess$")
		cmd.Env = append(os.Environ(), subprocessEnv+"=1", subprocessArgs+"="+strings.Join(args, "\x1f"),
			"ORDERFLOW_CHDB_LIB="+lib, "ORDERFLOW_CHDB_PATH="+dir, "ORDERFLOW_LOG_LEVEL=warn")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("orderflow %v: %v\nstdout: %s\nstderr: %s", args, err, out.String(), errb.String())
		}
		return out.String()
	}
	type report struct {
		RollupMonths []string         `json:"rollup_months"`
		Rows         []map[string]any `json:"rows"`
	}
	reportJSON := func(name string) report {
		t.Helper()
		out := run("report", name, "--from", "2025-01-01", "--to", "2025-04-30", "--format", "json")
		var r report
		// go test appends "PASS" after the output of the process
		if err := json.NewDecoder(strings.NewReader(out)).Decode(&r); err != nil {
			t.Fatalf("report %s: %v: %s", name, err, out)
		}
		return r
	}

	run("load-fixture")
	names := []string{"sales_by_month_segment", "regional_revenue", "rfm_segmentation", "retention_cohorts", "segment_performance", "top_products"}
	before := map[string]report{}
	for _, n := range names {
		before[n] = reportJSON(n)
		if len(before[n].Rows) == 0 || len(before[n].RollupMonths) != 2 || before[n].RollupMonths[0] != before[n].RollupMonths[1] {
			t.Fatalf("%s before any refresh: %+v, want rows from the facts alone", n, before[n])
		}
	}
	if out := run("rollup"); !strings.HasPrefix(out, "rollups refreshed: 12 months") {
		t.Fatalf("rollup: %q", out)
	}
	// a new process: the generations are there, current, and read
	if out := run("rollup", "--status"); strings.Contains(out, " no:") || !strings.Contains(out, "place_months     2025-04  yes") {
		t.Fatalf("rollup --status in the next process:\n%s", out)
	}
	if out := run("rollup"); !strings.HasPrefix(out, "rollups refreshed: 0 months") {
		t.Fatalf("rollup again in the next process: %q, want nothing to recompute", out)
	}
	same := func(step string, want map[string]report) {
		t.Helper()
		for _, n := range names {
			after := reportJSON(n)
			if len(after.RollupMonths) != 2 || after.RollupMonths[0] != "2025-01-01" || after.RollupMonths[1] != "2025-05-01" {
				t.Errorf("%s: %s read the rollup for %v, want 2025-01-01..2025-05-01", step, n, after.RollupMonths)
			}
			if !reflect.DeepEqual(after.Rows, want[n].Rows) {
				t.Errorf("%s: %s:\n%v\nwant (facts alone)\n%v", step, n, after.Rows, want[n].Rows)
			}
		}
	}
	same("refreshed, new process", before)

	// a changed month refreshed again: its new generation, not the old one,
	// is what the next process reads
	run("exec", "INSERT INTO customer_orders SELECT * REPLACE ('cancelled' AS status, _version + 1 AS _version) FROM customer_orders FINAL "+
		"WHERE order_id = (SELECT min(order_id) FROM customer_orders FINAL WHERE toYYYYMM(placed_at) = 202502 AND _is_deleted = 0 AND status NOT IN ('cancelled', 'refunded'))",
		"OPTIMIZE TABLE customer_orders PARTITION ID '202502' FINAL")
	changed := map[string]report{}
	for _, n := range names {
		changed[n] = reportJSON(n)
	}
	if reflect.DeepEqual(changed["sales_by_month_segment"].Rows, before["sales_by_month_segment"].Rows) {
		t.Fatal("cancelling a February sale did not change sales_by_month_segment: the step proves nothing")
	}
	if out := run("rollup"); !strings.HasPrefix(out, "rollups refreshed: 2 months") {
		t.Fatalf("rollup after the change: %q, want customer_months and place_months of February", out)
	}
	same("February refreshed, new process", changed)
	// the recorded generations hold exactly the rows their refreshes wrote
	// (the superseded February one stays for a minute, unread)
	out := run("sql", "--format", "csv", "SELECT (SELECT count() FROM customer_months WHERE (month, refresh_id) IN "+
		"(SELECT month, refresh_id FROM rollup_refreshes FINAL WHERE rollup = 'customer_months')) AS stored, "+
		"(SELECT sum(rows) FROM rollup_refreshes FINAL WHERE rollup = 'customer_months') AS recorded")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) < 2 || !strings.HasPrefix(lines[1], "11,11") {
		t.Errorf("customer_months rows of the recorded generations after restarts: %q, want 11,11", out)
	}
}
