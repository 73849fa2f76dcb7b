package queries

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"math/big"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/ingest/capture"
	"github.com/orderflow/orderflow/ingest/load"
	"github.com/orderflow/orderflow/ingest/pgschema"
	"github.com/orderflow/orderflow/internal/config"
	"github.com/orderflow/orderflow/internal/testenv"
	"github.com/orderflow/orderflow/pipeline"
	"github.com/orderflow/orderflow/sinks/chdb"
)

//go:embed oracle/*.sql
var oracleFS embed.FS

// tolerance is how far a report's Float64 column may be from the oracle's:
// both sides round to the same number of decimals, so they differ at most
// by one unit in the last decimal (float vs numeric rounding at a half).
// Percentiles are exact on both sides (quantileExactInclusive and
// percentile_cont interpolate the same way), so the same bound holds for
// them. Counts, sums and every other column must be equal.
var tolerance = map[string]float64{
	"avg_order_value": 0.01, "orders_per_customer": 0.01, "avg_recency_days": 0.01,
	"ship_avg_hours": 0.01, "ship_p50_hours": 0.01, "ship_p90_hours": 0.01,
	"deliver_avg_hours": 0.01, "deliver_p50_hours": 0.01, "deliver_p90_hours": 0.01,
	"repeat_rate": 0.0001, "retention": 0.0001, "revenue_share": 0.0001,
}

// TestReportsMatchPostgresOracle: a generated workload plus targeted edge
// cases flow through the real capture -> Kafka -> transformer -> chDB; then
// every report equals its PostgreSQL oracle (queries/oracle/<report>.sql over
// the normalized tables) row by row, for several parameter sets including
// an empty period.
func TestReportsMatchPostgresOracle(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test (-short)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	o := newOracleEnv(t, ctx, "oracle")
	o.startPipeline(t)

	// the workload: customers, products, campaigns, orders with their
	// lifecycle (paid, shipped, delivered, cancelled, refunded) and customer
	// changes (segment, region) between a customer's orders
	o.workload(t, ctx)
	edgeCases(t, ctx, o.conn)

	waitCaughtUp(t, ctx, o.conn, o.e)
	t.Logf("pipeline caught up %s after start", time.Since(start).Round(time.Millisecond))
	compareReportsBothWays(t, ctx, o.conn, o.e)
	t.Logf("compared every report in %s total", time.Since(start).Round(time.Millisecond))
}

// oracleEnv is a fresh command-side database with the oracle's triggers
// (oracle/setup.sql), an empty query side on the embedded engine, and the
// names capture and the transformer use.
type oracleEnv struct {
	pgURL, slot, pub, prefix string
	brokers                  []string
	conn                     *pgx.Conn
	e                        *chdb.Engine
	log                      *slog.Logger
}

func newOracleEnv(t *testing.T, ctx context.Context, name string) *oracleEnv {
	lib := testenv.ChdbLib(t)
	o := &oracleEnv{brokers: testenv.KafkaBrokers(t), pgURL: testenv.Postgres(t), slot: testenv.Name("slot"), pub: "orderflow_oracle",
		prefix: testenv.Name("orc"), log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	conn, err := pgx.Connect(ctx, o.pgURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	o.conn = conn
	if _, err := pgschema.Migrate(ctx, conn); err != nil {
		t.Fatal(err)
	}
	setup, _ := oracleFS.ReadFile("oracle/setup.sql")
	if _, err := conn.Exec(ctx, string(setup)); err != nil {
		t.Fatalf("oracle setup: %v", err)
	}
	if _, err := conn.Exec(ctx, "SET TIME ZONE 'UTC'"); err != nil {
		t.Fatal(err)
	}
	// the query side
	e, err := chdb.Open(ctx, chdb.Options{Lib: lib, Path: chdbDir, Database: testenv.Name(name)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = e.Exec(context.Background(), "DROP DATABASE IF EXISTS "+e.Database())
		_ = e.Close()
	})
	o.e = e
	applySchema(t, e)
	return o
}

// startPipeline runs capture and the transformer in-process on the real
// services until the test ends, and returns once capture streams.
func (o *oracleEnv) startPipeline(t *testing.T) {
	capt := capture.New(capture.Options{
		Postgres:          config.Postgres{URL: o.pgURL, Slot: o.slot, Publication: o.pub},
		Kafka:             config.Kafka{Brokers: o.brokers, TopicPrefix: o.prefix},
		Partitions:        3,
		FlushInterval:     50 * time.Millisecond,
		StatusInterval:    time.Second,
		HeartbeatInterval: time.Second,
		RetryBackoff:      200 * time.Millisecond,
		SpoolDir:          t.TempDir(),
	}, o.log, capture.NewMetrics(nil))
	runCtx, stopAll := context.WithCancel(context.Background())
	capDone := make(chan error, 1)
	go func() { capDone <- capt.Run(runCtx) }()
	tr, err := pipeline.New(pipeline.Config{Brokers: o.brokers, TopicPrefix: o.prefix, Group: o.prefix + "-transform", MaxAge: 100 * time.Millisecond}, o.e, nil, o.log)
	if err != nil {
		t.Fatal(err)
	}
	trDone := make(chan error, 1)
	go func() { trDone <- tr.Run(runCtx) }()
	t.Cleanup(func() {
		stopAll()
		for _, ch := range []chan error{capDone, trDone} {
			select {
			case err := <-ch:
				if err != nil && err != context.Canceled {
					t.Errorf("stage stopped with: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("a stage did not stop")
			}
		}
	})
	for deadline := time.Now().Add(90 * time.Second); !capt.Ready(); time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-capDone:
			t.Fatalf("capture stopped: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("capture not streaming after 90s (creating a slot waits for every open transaction on the server)")
		}
	}
}

// workload writes the seeded generated workload straight to PostgreSQL.
func (o *oracleEnv) workload(t *testing.T, ctx context.Context) {
	sum, err := load.RunDirect(ctx, o.conn, load.Params{Seed: 20251124, Customers: 150, Orders: 1200, Products: 40, Campaigns: 6},
		load.Options{BatchSize: 100}, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("workload: %d orders, %d commands in %d transactions (%s .. %s)", sum.Orders, sum.Events, sum.Transactions,
		sum.SimFrom.Format(time.DateOnly), sum.SimTo.Format(time.DateOnly))
}

// compareReportsBothWays compares every report with its oracle twice: on
// the facts alone (nothing has refreshed the rollups yet), then after
// RefreshRollup, when the @rollup reports read the current months from the
// monthly rollups.
func compareReportsBothWays(t *testing.T, ctx context.Context, conn *pgx.Conn, e *chdb.Engine) {
	t.Helper()
	compareReports(t, ctx, conn, e)
	st, err := RefreshRollup(ctx, e, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ms, err := RollupStatus(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	current := 0
	for _, m := range ms {
		if m.Current {
			current++
		}
	}
	if st.Months == 0 || current == 0 {
		t.Fatalf("rollup refresh: %+v, %d of %d months current; want some", st, current, len(ms))
	}
	t.Logf("rollups refreshed (%d months, %d rows); comparing again", st.Months, st.Rows)
	rollupRuns.Store(0)
	compareReports(t, ctx, conn, e)
	if n := rollupRuns.Load(); n == 0 {
		t.Error("no report case read a rollup after the refresh: the second comparison proves nothing")
	} else {
		t.Logf("%d report cases read months from a rollup", n)
	}
}

// rollupRuns counts the report runs of chRows that read a rollup.
var rollupRuns atomic.Int64

// compareReports runs every report with several parameter sets, including
// an empty period and every campaign, on ClickHouse and its oracle on
// PostgreSQL, and fails on any difference or when a report was empty in
// every case.
func compareReports(t *testing.T, ctx context.Context, conn *pgx.Conn, e *chdb.Engine) {
	t.Helper()
	var campaigns []string
	rows, _ := conn.Query(ctx, "SELECT code FROM campaigns ORDER BY id")
	for rows.Next() {
		var c string
		_ = rows.Scan(&c)
		campaigns = append(campaigns, c)
	}
	if rows.Err() != nil || len(campaigns) == 0 {
		t.Fatalf("campaigns: %v %v", campaigns, rows.Err())
	}
	full := map[string]string{"from": "2025-01-01", "to": "2026-01-31"}
	window := map[string]string{"from": "2025-04-01", "to": "2025-06-30"}
	empty := map[string]string{"from": "2030-01-01", "to": "2030-01-31"}
	with := func(m map[string]string, k, v string) map[string]string {
		c := map[string]string{k: v}
		for a, b := range m {
			c[a] = b
		}
		return c
	}
	cases := map[string][]map[string]string{
		"sales_by_month_segment":     {full, window, empty},
		"daily_sales":                {window, {"from": "2025-12-20", "to": "2026-01-10"}, empty},
		"segment_performance":        {full, window, empty},
		"top_products":               {with(full, "n", "5"), with(window, "n", "3"), with(empty, "n", "5")},
		"repeat_purchase_rate":       {full, window, empty},
		"retention_cohorts":          {full, {"from": "2025-06-01", "to": "2025-09-30"}, empty},
		"fulfilment_time_by_segment": {full, window, empty},
		"regional_revenue":           {full, window, empty},
		"rfm_segmentation":           {full, window, empty},
		"campaign_impact":            {{"campaign": "NO_SUCH_CAMPAIGN"}},
	}
	for _, c := range campaigns {
		cases["campaign_impact"] = append(cases["campaign_impact"], map[string]string{"campaign": c})
	}
	for _, r := range List() {
		if len(cases[r.Name]) == 0 {
			t.Errorf("report %s has no oracle case", r.Name)
		}
	}
	names := make([]string, 0, len(cases))
	for n := range cases {
		names = append(names, n)
	}
	sort.Strings(names)
	nonEmpty := map[string]int{}
	for _, name := range names {
		oq, err := oracleFS.ReadFile("oracle/" + name + ".sql")
		if err != nil {
			t.Errorf("%s: no oracle: %v", name, err)
			continue
		}
		for _, ps := range cases[name] {
			got := chRows(t, ctx, e, name, ps)
			want := pgRows(t, ctx, conn, string(oq), ps)
			if diff := compareRows(got, want); diff != "" {
				t.Errorf("%s %v: ClickHouse report differs from the PostgreSQL oracle: %s\nreport: %v\noracle: %v", name, ps, diff, got, want)
			}
			if len(got) > 0 {
				nonEmpty[name]++
			}
		}
	}
	for _, n := range names {
		if nonEmpty[n] == 0 {
			t.Errorf("%s: every case was empty; the comparison proves nothing", n)
		}
	}
	t.Logf("compared %d reports", len(names))
}

// edgeCases adds what breaks naive SQL on top of the generated workload.
func edgeCases(t *testing.T, ctx context.Context, conn *pgx.Conn) {
	t.Helper()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := conn.Exec(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	scan := func(q string, dst ...any) {
		t.Helper()
		if err := conn.QueryRow(ctx, q).Scan(dst...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var prodID int64
	var price string
	scan("SELECT id, price::text FROM products ORDER BY id LIMIT 1", &prodID, &price)
	// an order and its items in one transaction, as the command API writes them
	placeOrder := func(cust int64, at time.Time) int64 {
		t.Helper()
		var id int64
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if err := tx.QueryRow(ctx, `INSERT INTO orders (customer_id, status, currency, subtotal, discount, total, placed_at, created_at, updated_at)
				VALUES ($1, 'placed', 'USD', $2::numeric * 2, 0, $2::numeric * 2, $3, $3, $3) RETURNING id`, cust, price, at).Scan(&id); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO order_items (order_id, line_no, product_id, quantity, unit_price, discount, created_at, updated_at)
				VALUES ($1, 1, $2, 2, $3::numeric, 0, $4, $4)`, id, prodID, price, at)
			return err
		})
		if err != nil {
			t.Fatalf("place order: %v", err)
		}
		return id
	}
	// a customer with exactly one order (and a sale on a day nothing else happens)
	var solo int64
	scan(`INSERT INTO customers (name, email, segment, region, country, city, created_at, updated_at)
		VALUES ('Solo Oracle', 'solo@oracle.test', 'bronze', 'middle_east_africa', 'KE', 'Nairobi', '2025-12-01', '2025-12-01') RETURNING id`, &solo)
	placeOrder(solo, time.Date(2026, 1, 5, 12, 0, 0, 0, time.UTC))

	// a segment (and region) change after a customer's orders, then one more
	// order: the old orders keep the old segment, the new one has the new
	var moved int64
	scan(`SELECT customer_id FROM orders WHERE status NOT IN ('cancelled', 'refunded') GROUP BY customer_id
		HAVING count(*) >= 3 ORDER BY customer_id LIMIT 1`, &moved)
	exec(`UPDATE customers SET segment = CASE segment WHEN 'platinum' THEN 'bronze' ELSE 'platinum' END,
		region = CASE region WHEN 'europe' THEN 'asia_pacific' ELSE 'europe' END, country = 'NZ', updated_at = updated_at + interval '1 second'
		WHERE id = $1`, moved)
	placeOrder(moved, time.Date(2026, 1, 6, 9, 30, 0, 0, time.UTC))

	// a deleted order (items cascade), a cancellation and a refund
	exec(`DELETE FROM orders WHERE id = (SELECT id FROM orders WHERE status = 'delivered' ORDER BY id LIMIT 1)`)
	exec(`UPDATE orders SET status = 'cancelled', cancelled_at = placed_at + interval '1 hour', updated_at = placed_at + interval '1 hour'
		WHERE id = (SELECT id FROM orders WHERE status = 'placed' ORDER BY id LIMIT 1)`)
	exec(`UPDATE orders SET status = 'refunded', refunded_at = delivered_at + interval '1 day', updated_at = delivered_at + interval '1 day'
		WHERE id = (SELECT id FROM orders WHERE status = 'delivered' ORDER BY id LIMIT 1)`)

	var cancelled, refunded int
	scan("SELECT count(*) FILTER (WHERE status = 'cancelled'), count(*) FILTER (WHERE status = 'refunded') FROM orders", &cancelled, &refunded)
	var changed int
	scan(`SELECT count(*) FROM (SELECT o.customer_id FROM orders o JOIN oracle.order_asof a ON a.order_id = o.id
		JOIN oracle.customer_versions v ON v.seq = a.customer_seq GROUP BY o.customer_id HAVING count(DISTINCT v.segment) > 1) x`, &changed)
	t.Logf("edge cases: %d cancelled, %d refunded, %d customers whose orders carry more than one segment", cancelled, refunded, changed)
	if cancelled == 0 || refunded == 0 || changed == 0 {
		t.Fatal("the workload lacks cancelled/refunded orders or segment changes between orders")
	}
}

// waitCaughtUp waits until the query side reflects every change: order
// count, totals, statuses, fulfilment times, lines and customer segments
// agree with PostgreSQL.
func waitCaughtUp(t *testing.T, ctx context.Context, conn *pgx.Conn, e *chdb.Engine) {
	t.Helper()
	pgQ := `SELECT concat_ws('/', (SELECT count(*) FROM orders), (SELECT coalesce(sum(total) * 100, 0)::bigint FROM orders),
		(SELECT count(*) FROM orders WHERE status IN ('cancelled', 'refunded')), (SELECT count(shipped_at) FROM orders),
		(SELECT count(delivered_at) FROM orders), (SELECT count(*) FROM order_items),
		(SELECT count(*) FROM customers), (SELECT coalesce(sum(id * length(segment)), 0) FROM customers))`
	chQ := `SELECT concat_ws('/', toString((SELECT count() FROM customer_orders FINAL WHERE _is_deleted = 0)),
		toString((SELECT toInt64(sum(total) * 100) FROM customer_orders FINAL WHERE _is_deleted = 0)),
		toString((SELECT count() FROM customer_orders FINAL WHERE _is_deleted = 0 AND status IN ('cancelled', 'refunded'))),
		toString((SELECT count(shipped_at) FROM customer_orders FINAL WHERE _is_deleted = 0)),
		toString((SELECT count(delivered_at) FROM customer_orders FINAL WHERE _is_deleted = 0)),
		toString((SELECT count() FROM order_lines FINAL WHERE _is_deleted = 0)),
		toString((SELECT count() FROM customers FINAL WHERE _is_deleted = 0)),
		toString((SELECT sum(customer_id * length(segment)) FROM customers FINAL WHERE _is_deleted = 0)))`
	var want string
	if err := conn.QueryRow(ctx, pgQ).Scan(&want); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(90 * time.Second)
	var got string
	for {
		res, err := e.Query(ctx, chQ, nil)
		if err == nil && len(res.Rows) == 1 {
			got = fmt.Sprint(res.Rows[0][0])
			if got == want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("query side did not catch up in 90s: ClickHouse %s, PostgreSQL %s (orders/total cents/cancelled+refunded/shipped/delivered/lines/customers/segment sum); err %v", got, want, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// chRows runs a report and returns its rows as decoded JSON objects.
func chRows(t *testing.T, ctx context.Context, e *chdb.Engine, name string, ps map[string]string) []map[string]any {
	t.Helper()
	res, err := RunAt(ctx, e, name, ps, time.Now())
	if err != nil {
		t.Fatalf("%s %v: %v", name, ps, err)
	}
	if len(res.RollupMonths) == 2 && res.RollupMonths[0] < res.RollupMonths[1] {
		rollupRuns.Add(1)
	}
	var b bytes.Buffer
	if err := WriteJSON(&b, res); err != nil {
		t.Fatal(err)
	}
	var out struct {
		Rows []map[string]any `json:"rows"`
	}
	dec := json.NewDecoder(&b)
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out.Rows
}

var oracleParamRe = regexp.MustCompile(`@(\w+)`)

// pgRows runs an oracle query (named parameters @name) and returns its rows
// as decoded JSON objects (row_to_json keeps numerics' digits).
func pgRows(t *testing.T, ctx context.Context, conn *pgx.Conn, q string, ps map[string]string) []map[string]any {
	t.Helper()
	var args []any
	idx := map[string]int{}
	q = oracleParamRe.ReplaceAllStringFunc(q, func(m string) string {
		n := m[1:]
		if _, ok := idx[n]; !ok {
			args = append(args, ps[n])
			idx[n] = len(args)
		}
		return fmt.Sprintf("$%d", idx[n])
	})
	rows, err := conn.Query(ctx, "SELECT row_to_json(q)::text FROM ("+q+") AS q", args...)
	if err != nil {
		t.Fatalf("oracle %v: %v", ps, err)
	}
	defer rows.Close()
	var out []map[string]any
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		dec := json.NewDecoder(strings.NewReader(s))
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("oracle %v: %v", ps, err)
	}
	return out
}

// compareRows compares report rows with oracle rows in order; it returns a
// description of the first differences, or "".
func compareRows(got, want []map[string]any) string {
	var diffs []string
	if len(got) != len(want) {
		diffs = append(diffs, fmt.Sprintf("%d rows, oracle %d", len(got), len(want)))
	}
	for i := 0; i < min(len(got), len(want)) && len(diffs) < 10; i++ {
		if len(got[i]) != len(want[i]) {
			diffs = append(diffs, fmt.Sprintf("row %d: columns %v, oracle %v", i, keys(got[i]), keys(want[i])))
			continue
		}
		for _, col := range keys(got[i]) {
			w, ok := want[i][col]
			if !ok {
				diffs = append(diffs, fmt.Sprintf("row %d: oracle has no column %s", i, col))
				continue
			}
			if !sameValue(col, got[i][col], w) {
				diffs = append(diffs, fmt.Sprintf("row %d %s: %v, oracle %v", i, col, got[i][col], w))
			}
		}
	}
	return strings.Join(diffs, "; ")
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

var timeLayouts = []string{"2006-01-02 15:04:05.999999", "2006-01-02T15:04:05.999999Z07:00", "2006-01-02T15:04:05.999999", time.DateOnly}

func parseTime(s string) (time.Time, bool) {
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

func sameValue(col string, got, want any) bool {
	if got == nil || want == nil {
		return got == nil && want == nil
	}
	gn, gok := got.(json.Number)
	wn, wok := want.(json.Number)
	if gok && wok {
		if tol, ok := tolerance[col]; ok {
			g, _ := gn.Float64()
			w, _ := wn.Float64()
			return math.Abs(g-w) <= tol+1e-9
		}
		g, ok1 := new(big.Rat).SetString(gn.String())
		w, ok2 := new(big.Rat).SetString(wn.String())
		return ok1 && ok2 && g.Cmp(w) == 0
	}
	gs, gok := got.(string)
	ws, wok := want.(string)
	if gok && wok {
		if gs == ws {
			return true
		}
		gt, ok1 := parseTime(gs)
		wt, ok2 := parseTime(ws)
		return ok1 && ok2 && gt.Equal(wt)
	}
	return fmt.Sprint(got) == fmt.Sprint(want)
}
