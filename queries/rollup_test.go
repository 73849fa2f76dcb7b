package queries

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/queries/querytest"
	"github.com/orderflow/orderflow/sinks/chdb"
)

// rollupReports are the reports that read a monthly rollup.
func rollupReports(t *testing.T) []*Report {
	t.Helper()
	var rs []*Report
	for _, r := range List() {
		if r.Rollup != "" {
			rs = append(rs, r)
		}
	}
	if len(rs) < 6 {
		t.Fatalf("%d @rollup reports, want at least 6", len(rs))
	}
	return rs
}

// factsOnly runs report r with an empty rollup range: every month from the
// facts, whatever the rollup holds.
func factsOnly(t *testing.T, ctx context.Context, e *chdb.Engine, r *Report, params map[string]string, now time.Time) [][]any {
	t.Helper()
	resolved, err := r.Resolve(params, now)
	if err != nil {
		t.Fatal(err)
	}
	ps := map[string]any{"rollup_from": resolved["from"], "rollup_to": resolved["from"], "rollup_ids": []uint64{}}
	for k, v := range resolved {
		ps[k] = v
	}
	res, err := e.Query(ctx, r.SQL, ps)
	if err != nil {
		t.Fatalf("%s on the facts: %v", r.Name, err)
	}
	return res.Rows
}

// TestRollupFollowsFacts: a rollup month is read only while the facts'
// month partition is what it was computed from; a changed, emptied or
// dropped month is read from the facts until the next refresh recomputes
// it, and every report answers exactly as on the facts alone at each step.
func TestRollupFollowsFacts(t *testing.T) {
	e := openDB(t)
	ctx := context.Background()
	if err := querytest.Load(ctx, e); err != nil {
		t.Fatal(err)
	}
	// merged: no background merge changes which months are current
	if err := querytest.Settle(ctx, e); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)
	period := map[string]string{"from": "2025-01-01", "to": "2025-04-30"}
	reports := rollupReports(t)
	defer func(g time.Duration) { supersededGrace = g }(supersededGrace)
	prev := map[string][][]any{}
	// check runs every rollup report and compares it with the facts alone;
	// want are the rollup months of sales_by_month_segment and top_products
	check := func(step string, params map[string]string, want map[string]string) {
		t.Helper()
		for _, r := range reports {
			res, err := RunAt(ctx, e, r.Name, params, now)
			if err != nil {
				t.Fatalf("%s: %s: %v", step, r.Name, err)
			}
			if w, ok := want[r.Name]; ok {
				if got := strings.Join(res.RollupMonths, ".."); got != w {
					t.Errorf("%s: %s read the rollup for %s, want %s", step, r.Name, got, w)
				}
			}
			if f := factsOnly(t, ctx, e, r, params, now); !reflect.DeepEqual(res.Rows, f) {
				t.Errorf("%s: %s differs from the facts alone:\nwith rollup %v\nfacts only  %v", step, r.Name, res.Rows, f)
			}
			if len(res.Rows) == 0 {
				t.Errorf("%s: %s has no rows; the comparison proves nothing", step, r.Name)
			}
			prev[step+"/"+r.Name] = res.Rows
		}
	}
	refresh := func(step string, wantMonths int) {
		t.Helper()
		st, err := RefreshRollup(ctx, e, testLog(t))
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if st.Months != wantMonths || st.Skipped != 0 {
			t.Errorf("%s: refreshed %+v, want %d months", step, st, wantMonths)
		}
	}
	exec := func(q string) {
		t.Helper()
		if err := e.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	count := func(q string) uint64 {
		t.Helper()
		res, err := e.Query(ctx, q, nil)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return res.Rows[0][0].(uint64)
	}
	months := func(table string) int {
		return int(count("SELECT uniqExact(partition_id) FROM system.parts WHERE database = currentDatabase() AND active AND table = '" + table + "'"))
	}
	all := "2025-01-01..2025-05-01"

	check("before any refresh", period, map[string]string{"sales_by_month_segment": "2025-01-01..2025-01-01", "regional_revenue": "2025-01-01..2025-01-01", "top_products": "2025-01-01..2025-01-01"})
	refresh("first refresh", 2*months("customer_orders")+months("order_lines"))
	check("refreshed", period, map[string]string{"sales_by_month_segment": all, "regional_revenue": all, "top_products": all})
	refresh("nothing changed", 0)

	// a newer version of one February sale: cancelled
	sale := `_is_deleted = 0 AND status NOT IN ('cancelled', 'refunded')`
	res, err := e.Query(ctx, "SELECT min(order_id) FROM customer_orders FINAL WHERE toYYYYMM(placed_at) = 202502 AND "+sale, nil)
	if err != nil {
		t.Fatal(err)
	}
	feb := res.Rows[0][0].(int64)
	exec(fmt.Sprintf("INSERT INTO customer_orders SELECT * REPLACE ('cancelled' AS status, _version + 1 AS _version) FROM customer_orders FINAL WHERE order_id = %d", feb))
	exec("OPTIMIZE TABLE customer_orders PARTITION ID '202502' FINAL") // no merge later
	// February is read from the facts now: the longest current run is March-April
	check("february changed", period, map[string]string{"sales_by_month_segment": "2025-03-01..2025-05-01", "regional_revenue": "2025-03-01..2025-05-01", "top_products": all})
	if reflect.DeepEqual(prev["february changed/sales_by_month_segment"], prev["refreshed/sales_by_month_segment"]) {
		t.Error("cancelling a February sale did not change sales_by_month_segment: the step proves nothing")
	}
	// the transformer's refresher waits until a month's facts have settled
	if st, err := RefreshRollupSettled(ctx, e, testLog(t), time.Hour); err != nil || st.Months != 0 || st.Unsettled != 2 {
		t.Errorf("refresh with an hour to settle: %+v %v, want February left alone in customer_months and place_months", st, err)
	}
	refresh("february recomputed", 2) // customer_months and place_months
	check("february recomputed", period, map[string]string{"sales_by_month_segment": all, "regional_revenue": all, "top_products": all})

	// the superseded February generation stays readable for the grace
	// period (a report may have chosen it just before)
	st, err := RefreshRollup(ctx, e, testLog(t))
	if err != nil || st.Months != 0 || st.Dropped != 0 {
		t.Errorf("refresh within the grace period: %+v %v, want nothing recomputed or dropped", st, err)
	}
	if n := count("SELECT count() FROM customer_months WHERE month = '2025-02-01' AND refresh_id NOT IN (SELECT refresh_id FROM rollup_refreshes FINAL)"); n == 0 {
		t.Error("the superseded February generation was dropped within the grace period")
	}
	// from here on superseded generations go at the next refresh
	supersededGrace = 0

	// a second refresh of an unchanged month keeps the generation, and a
	// stray generation (a refresh that stopped before recording it) is
	// dropped by the next refresh and never read
	exec("INSERT INTO customer_months SELECT * REPLACE (toUInt64(1) AS refresh_id) FROM customer_months WHERE month = '2025-01-01'")
	check("stray generation", period, map[string]string{"sales_by_month_segment": all, "regional_revenue": all, "top_products": all})
	st, err = RefreshRollup(ctx, e, testLog(t))
	if err != nil || st.Months != 0 || st.Dropped == 0 {
		t.Errorf("refresh with a stray generation: %+v %v, want it dropped and nothing recomputed", st, err)
	}
	if n := count("SELECT count() FROM customer_months WHERE refresh_id = 1"); n != 0 {
		t.Errorf("the stray generation still has %d rows", n)
	}

	// every sale of March deleted: the refresh empties the rollup's March
	exec("INSERT INTO customer_orders SELECT * REPLACE (1 AS _is_deleted, _version + 1 AS _version) FROM customer_orders FINAL WHERE toYYYYMM(placed_at) = 202503")
	exec("INSERT INTO order_lines SELECT * REPLACE (1 AS _is_deleted, _version + 1 AS _version) FROM order_lines FINAL WHERE toYYYYMM(placed_at) = 202503")
	exec("OPTIMIZE TABLE customer_orders PARTITION ID '202503' FINAL")
	exec("OPTIMIZE TABLE order_lines PARTITION ID '202503' FINAL")
	refresh("march emptied", 3)
	for _, table := range []string{"customer_months", "place_months", "product_months"} {
		if n := count("SELECT count() FROM " + table + " WHERE month = '2025-03-01' AND refresh_id IN (SELECT refresh_id FROM rollup_refreshes FINAL WHERE rollup = '" + table + "')"); n != 0 {
			t.Errorf("%s's latest generation of the emptied March has %d rows", table, n)
		}
	}
	check("march emptied", period, map[string]string{"sales_by_month_segment": all, "regional_revenue": all, "top_products": all})

	// a period that starts mid-month reads that month from the facts
	check("partial first month", map[string]string{"from": "2025-01-15", "to": "2025-04-30"},
		map[string]string{"sales_by_month_segment": "2025-02-01..2025-05-01", "regional_revenue": "2025-02-01..2025-05-01", "top_products": "2025-02-01..2025-05-01"})

	// April's facts dropped: April is read from the facts (nothing) until
	// the refresh empties the rollup's April too
	exec("ALTER TABLE customer_orders DROP PARTITION ID '202504'")
	check("april dropped", period, map[string]string{"sales_by_month_segment": "2025-01-01..2025-04-01", "regional_revenue": "2025-01-01..2025-04-01"})
	refresh("april dropped", 2)
	if n := count("SELECT count() FROM customer_months WHERE month = '2025-04-01' AND refresh_id IN (SELECT refresh_id FROM rollup_refreshes FINAL WHERE rollup = 'customer_months')"); n != 0 {
		t.Errorf("customer_months' latest generation of the dropped April has %d rows", n)
	}
	check("april dropped and refreshed", period, map[string]string{"sales_by_month_segment": all, "regional_revenue": all})

	// the next refresh drops every superseded generation
	st, err = RefreshRollup(ctx, e, testLog(t))
	if err != nil || st.Months != 0 || st.Dropped == 0 {
		t.Errorf("last refresh: %+v %v, want superseded generations dropped and nothing recomputed", st, err)
	}
	for _, table := range []string{"customer_months", "place_months", "product_months"} {
		if n := count("SELECT count() FROM " + table + " WHERE (month, refresh_id) NOT IN (SELECT month, refresh_id FROM rollup_refreshes FINAL WHERE rollup = '" + table + "')"); n != 0 {
			t.Errorf("%s keeps %d rows of generations no refresh records", table, n)
		}
	}
	check("superseded generations dropped", period, map[string]string{"sales_by_month_segment": all, "regional_revenue": all, "top_products": all})
}
