package queries

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/orderflow/orderflow/internal/testenv"
	"github.com/orderflow/orderflow/sinks/chdb"
	"github.com/orderflow/orderflow/sinks/chmigrate"
	"github.com/orderflow/orderflow/sinks/chschema"
)

// Report latency on the embedded engine with 10 million orders (DESIGN §6:
// every report <= 500 ms). Run with
//
//	go test -run '^$' -bench BenchmarkReports -benchtime 5x -timeout 60m ./queries
//
// The data set is built once with INSERT ... SELECT FROM numbers() in a
// chDB directory kept between runs (ORDERFLOW_BENCH_CHDB_PATH, default
// $TMPDIR/orderflow-bench-chdb): 10M orders over 2024-2025 by 1M customers
// (4 segments, 5 regions, 25 countries), ~20M order lines over 5,000
// products, 24 campaigns, ~5 % cancelled and ~3 % refunded, plus a second,
// newer version of every tenth order (a status change) so that FINAL has
// real duplicates to collapse. Each sub-benchmark reports the median
// latency of its runs as ms/median (and Go's mean as ns/op).
// ORDERFLOW_BENCH_ORDERS overrides the order count. With
// ORDERFLOW_BENCH_OPTIMIZE=1 the facts are merged first (OPTIMIZE TABLE ...
// FINAL: one part per month, no duplicates left), the steady state of old
// months once background merges have caught up; without it FINAL has to
// collapse the second versions at query time (the worst case: every month
// has unmerged updates).

var benchOnce struct {
	sync.Once
	e   *chdb.Engine
	err error
}

func benchEngine(b *testing.B) *chdb.Engine {
	b.Helper()
	lib := testenv.ChdbLib(b)
	benchOnce.Do(func() {
		orders := int64(10_000_000)
		if s := os.Getenv("ORDERFLOW_BENCH_ORDERS"); s != "" {
			orders, _ = strconv.ParseInt(s, 10, 64)
		}
		dir := os.Getenv("ORDERFLOW_BENCH_CHDB_PATH")
		if dir == "" {
			dir = filepath.Join(os.TempDir(), "orderflow-bench-chdb")
		}
		ctx := context.Background()
		// the chDB data directory of this process is chdbDir (TestMain);
		// the bench database lives there unless a path is given
		if os.Getenv("ORDERFLOW_BENCH_CHDB_PATH") == "" {
			dir = chdbDir
		}
		e, err := chdb.Open(ctx, chdb.Options{Lib: lib, Path: dir, Database: fmt.Sprintf("bench_%d", orders)})
		if err != nil {
			benchOnce.err = err
			return
		}
		benchOnce.e = e
		benchOnce.err = fillBench(ctx, b, e, orders)
	})
	if benchOnce.err != nil {
		b.Fatal(benchOnce.err)
	}
	return benchOnce.e
}

func fillBench(ctx context.Context, b *testing.B, e *chdb.Engine, orders int64) error {
	res, err := e.Query(ctx, "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = 'customer_orders'", nil)
	if err != nil {
		return err
	}
	if res.Rows[0][0] == uint64(1) {
		r, err := e.Query(ctx, "SELECT count() FROM customer_orders FINAL", nil)
		if err == nil && r.Rows[0][0] == uint64(orders) {
			b.Logf("reusing %d orders in %s", orders, e.Database())
			return describeBench(ctx, b, e, time.Now())
		}
		for _, t := range []string{"customer_orders", "order_lines", "products", "campaigns", "customers", "raw_customers", "raw_products",
			"raw_campaigns", "raw_orders", "raw_order_items", "customer_history", "change_log"} {
			if err := e.Exec(ctx, "DROP TABLE IF EXISTS "+t); err != nil {
				return err
			}
		}
	}
	applySchema(b, e)
	start := time.Now()
	n := strconv.FormatInt(orders, 10)
	// order i: customer, time over two years, status and lifecycle
	// derived from hashes of i (deterministic)
	orderSelect := `
SELECT
    toInt64(number + 1) AS order_id,
    toInt64(cityHash64(number, 1) % 1000000 + 1) AS customer_id,
    concat('Customer ', toString(customer_id)) AS customer_name,
    concat('c', toString(customer_id), '@example.com') AS customer_email,
    ['bronze', 'silver', 'gold', 'platinum'][1 + (cityHash64(customer_id, 2) % 100 >= 45) + (cityHash64(customer_id, 2) % 100 >= 80) + (cityHash64(customer_id, 2) % 100 >= 95)] AS customer_segment,
    ['north_america', 'europe', 'asia_pacific', 'latin_america', 'middle_east_africa'][1 + cityHash64(customer_id, 3) % 5] AS customer_region,
    ['US', 'CA', 'MX', 'DE', 'FR', 'GB', 'IT', 'ES', 'NL', 'PL', 'JP', 'AU', 'IN', 'SG', 'KR', 'BR', 'AR', 'CL', 'CO', 'PE', 'AE', 'ZA', 'NG', 'KE', 'EG'][1 + cityHash64(customer_id, 3) % 5 * 5 + cityHash64(customer_id, 4) % 5] AS customer_country,
    'City' AS customer_city,
    toDateTime64('2023-06-01 00:00:00', 6, 'UTC') AS customer_signup_at,
    toUInt64(1) AS customer_version,
    if(cityHash64(number, 5) % 10 = 0, toNullable(toInt64(1 + intDiv(toUInt32(placed_at) - 1704067200, 2592000))), NULL) AS campaign_id,
    if(campaign_id IS NULL, '', concat('CAMP', toString(campaign_id))) AS campaign_code,
    multiIf(cityHash64(number, 6) % 100 < 5, 'cancelled', cityHash64(number, 6) % 100 < 8, 'refunded', cityHash64(number, 6) % 100 < 12, 'placed',
            cityHash64(number, 6) % 100 < 18, 'paid', cityHash64(number, 6) % 100 < 25, 'shipped', 'delivered') AS status,
    'USD' AS currency,
    toDateTime64(1704067200 + intDiv(number * 63158400, ` + n + `) + cityHash64(number, 7) % 60, 6, 'UTC') AS placed_at,
    if(status IN ('paid', 'shipped', 'delivered', 'refunded'), addHours(placed_at, 1), NULL) AS paid_at,
    if(status IN ('shipped', 'delivered', 'refunded'), addMinutes(placed_at, 120 + cityHash64(number, 8) % 4000), NULL) AS shipped_at,
    if(status = 'delivered', addMinutes(assumeNotNull(shipped_at), 600 + cityHash64(number, 9) % 8000), NULL) AS delivered_at,
    if(status = 'cancelled', addHours(placed_at, 2), NULL) AS cancelled_at,
    if(status = 'refunded', addDays(placed_at, 10), NULL) AS refunded_at,
    toUInt32(1 + number % 3) AS item_count,
    toUInt32(item_count * 2) AS units,
    toDecimal64(10 + cityHash64(number, 10) % 20000 / 100, 2) AS subtotal,
    if(campaign_id IS NULL, toDecimal64(0, 2), toDecimal64(subtotal / 10, 2)) AS discount,
    subtotal - discount AS total,
    placed_at AS updated_at,
    toUInt64(100 + number) AS _version,
    toUInt8(0) AS _is_deleted
FROM numbers(` + n + `)`
	steps := []struct{ what, sql string }{
		{"customer_orders", "INSERT INTO customer_orders SELECT * FROM (" + orderSelect + ")"},
		{"order_lines", `INSERT INTO order_lines (order_id, item_id, line_no, product_id, product_sku, product_name, product_category, quantity,
    unit_price, discount, line_total, customer_id, customer_segment, customer_region, customer_country, campaign_id, status, placed_at, product_first, _version, _is_deleted)
SELECT order_id, order_id * 10 + k AS item_id, toInt32(k) AS line_no, toInt64(1 + cityHash64(order_id, k, 11) % 5000) AS product_id,
    concat('SKU', toString(product_id)), concat('Product ', toString(product_id)), concat('category_', toString(product_id % 20)),
    toInt32(1 + k % 3) AS quantity, toDecimal64(5 + product_id % 200, 2) AS unit_price, toDecimal64(0, 2),
    unit_price * quantity AS line_total, customer_id, customer_segment, customer_region, customer_country, campaign_id, status, placed_at,
    toUInt8(indexOf(arrayMap(j -> toInt64(1 + cityHash64(order_id, j, 11) % 5000), range(1, toUInt64(item_count) + 1)), product_id) = k) AS product_first,
    _version, _is_deleted
FROM customer_orders ARRAY JOIN range(1, toUInt64(item_count) + 1) AS k`},
		{"products", `INSERT INTO products (product_id, sku, name, category, price, currency, updated_at, _version, _is_deleted)
SELECT toInt64(number + 1), concat('SKU', toString(number + 1)), concat('Product ', toString(number + 1)), concat('category_', toString((number + 1) % 20)),
    toDecimal64(5 + (number + 1) % 200, 2), 'USD', now64(6), 1, 0 FROM numbers(5000)`},
		{"campaigns", `INSERT INTO campaigns (campaign_id, code, name, starts_at, ends_at, discount_percent, updated_at, _version, _is_deleted)
SELECT toInt64(number + 1), concat('CAMP', toString(number + 1)), 'Campaign', toDateTime64(1704067200 + number * 2592000, 6, 'UTC'),
    toDateTime64(1704067200 + number * 2592000 + 14 * 86400, 6, 'UTC'), 10, now64(6), 1, 0 FROM numbers(24)`},
		// a newer version of every tenth order: its status moved on
		{"customer_orders (second versions)", `INSERT INTO customer_orders SELECT * REPLACE (
    if(status IN ('placed', 'paid'), 'shipped', status) AS status,
    if(status IN ('placed', 'paid'), addHours(placed_at, 30), shipped_at) AS shipped_at,
    _version + 100000000 AS _version)
FROM customer_orders WHERE order_id % 10 = 0`},
	}
	for _, s := range steps {
		t0 := time.Now()
		if err := e.Exec(ctx, s.sql); err != nil {
			return fmt.Errorf("fill %s: %w", s.what, err)
		}
		b.Logf("filled %s in %s", s.what, time.Since(t0).Round(time.Millisecond))
	}
	return describeBench(ctx, b, e, start)
}

// describeBench merges the facts when asked (ORDERFLOW_BENCH_OPTIMIZE=1)
// and logs the data set's shape.
func describeBench(ctx context.Context, b *testing.B, e *chdb.Engine, start time.Time) error {
	if os.Getenv("ORDERFLOW_BENCH_OPTIMIZE") == "1" {
		t0 := time.Now()
		for _, t := range []string{"customer_orders", "order_lines"} {
			if err := e.Exec(ctx, "OPTIMIZE TABLE "+t+" FINAL"); err != nil {
				return fmt.Errorf("optimize %s: %w", t, err)
			}
		}
		b.Logf("merged the facts (OPTIMIZE FINAL) in %s", time.Since(t0).Round(time.Millisecond))
	}
	if err := benchRollup(ctx, b, e); err != nil {
		return err
	}
	r, err := e.Query(ctx, "SELECT (SELECT count() FROM customer_orders), (SELECT count() FROM order_lines), (SELECT count() FROM system.parts WHERE database = currentDatabase() AND active AND table = 'customer_orders')", nil)
	if err != nil {
		return err
	}
	b.Logf("data set: %v customer_orders rows, %v order_lines rows, %v active parts, built in %s", r.Rows[0][0], r.Rows[0][1], r.Rows[0][2], time.Since(start).Round(time.Second))
	return nil
}

// benchRollup brings the monthly rollup up to date (a data set built before
// it existed gets its tables first), the steady state of a running
// transformer; with ORDERFLOW_BENCH_ROLLUP=0 it forgets every refresh
// instead, so that the @rollup reports read only the facts (the state right
// after a replay, or with the refresh turned off).
func benchRollup(ctx context.Context, b *testing.B, e *chdb.Engine) error {
	if err := chmigrate.ApplyFiles(ctx, e, chschema.Migrations, "0014_customer_months.sql", "0015_product_months.sql", "0016_rollup_refreshes.sql", "0017_place_months.sql"); err != nil {
		return err
	}
	if os.Getenv("ORDERFLOW_BENCH_ROLLUP") == "0" {
		b.Logf("rollup off: every report reads the facts")
		return e.Exec(ctx, "TRUNCATE TABLE rollup_refreshes")
	}
	t0 := time.Now()
	st, err := RefreshRollup(ctx, e, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	b.Logf("rollup refreshed in %s: %d months, %d rows", time.Since(t0).Round(time.Millisecond), st.Months, st.Rows)
	return nil
}

// benchParams are the parameters of each report in the benchmark: the
// last year of the two, the usual dashboard question. With
// ORDERFLOW_BENCH_MIDMONTH=1 every period runs from 2025-01-16 to 2025-12-15
// instead.
var benchParams = map[string]map[string]string{
	"sales_by_month_segment":     {"from": "2025-01-01", "to": "2025-12-31"},
	"daily_sales":                {"from": "2025-10-01", "to": "2025-12-31"},
	"segment_performance":        {"from": "2025-01-01", "to": "2025-12-31"},
	"top_products":               {"from": "2025-01-01", "to": "2025-12-31", "n": "10"},
	"repeat_purchase_rate":       {"from": "2025-07-01", "to": "2025-12-31"},
	"retention_cohorts":          {"from": "2025-01-01", "to": "2025-12-31"},
	"fulfilment_time_by_segment": {"from": "2025-01-01", "to": "2025-12-31"},
	"campaign_impact":            {"campaign": "CAMP18"},
	"regional_revenue":           {"from": "2025-01-01", "to": "2025-12-31"},
	"rfm_segmentation":           {"from": "2025-01-01", "to": "2025-12-31"},
}

// cpuTime is the process's user + system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkReports(b *testing.B) {
	e := benchEngine(b)
	ctx := context.Background()
	for _, r := range List() {
		b.Run(r.Name, func(b *testing.B) {
			ps := benchParams[r.Name]
			if os.Getenv("ORDERFLOW_BENCH_MIDMONTH") == "1" && ps["from"] != "" {
				// a dashboard's "last 12 months to today": both ends cut a
				// month, which the @rollup reports read from the facts
				ps = map[string]string{"from": "2025-01-16", "to": "2025-12-15"}
				if r.Name == "top_products" {
					ps["n"] = "10"
				}
			}
			if _, err := Run(ctx, e, r.Name, ps); err != nil { // warm-up (and check)
				b.Fatal(err)
			}
			var ds []time.Duration
			var cpu time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0, c0 := time.Now(), cpuTime()
				res, err := Run(ctx, e, r.Name, ps)
				if err != nil {
					b.Fatal(err)
				}
				ds = append(ds, time.Since(t0))
				cpu += cpuTime() - c0
				if len(res.Rows) == 0 {
					b.Fatalf("%s: no rows", r.Name)
				}
			}
			sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
			b.ReportMetric(float64(ds[len(ds)/2].Microseconds())/1000, "ms/median")
			// the process's CPU time per run (engine threads included): on a
			// shared, loaded machine wall time overstates what the query costs
			b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/op")
		})
	}
}
