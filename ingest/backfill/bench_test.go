package backfill_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/ingest/backfill"
)

// BenchmarkBackfill loads ORDERFLOW_BENCH_ORDERS orders (default 1,000,000;
// the figure is 10,000,000) with 2-3 items each, orders/10
// customers and 1,000 products into a fresh database with INSERT ... SELECT
// generate_series, then measures:
//   - copy: plain COPY <table> TO STDOUT of the three tables (the ceiling);
//   - publish: backfill to Kafka (rows/s over all tables);
//   - facts: backfill with the transformer running into chDB (unless
//     ORDERFLOW_BENCH_PUBLISH_ONLY=1), from the start
//     of the backfill until every customer_orders and order_lines row is in
//     ClickHouse (fact rows/s = (orders + items) / wall time).
//   - with ORDERFLOW_BENCH_DIRECT=1, direct mode instead: the backfill writes
//     the rows into chDB itself (the transformer is not running), facts
//     are measured the same way; then the transformer starts and the time
//     until its consumer group has no lag is its catch-up (state only).
//
// Run: go test -run '^$' -bench BenchmarkBackfill -benchtime 1x -timeout 60m ./ingest/backfill/
func BenchmarkBackfill(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("ORDERFLOW_BENCH_ORDERS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil {
			b.Fatal(err)
		}
		n = v
	}
	workers := 4
	if s := os.Getenv("ORDERFLOW_BENCH_WORKERS"); s != "" {
		workers, _ = strconv.Atoi(s)
	}
	e := newEnv(b)
	ctx := context.Background()
	start := time.Now()
	nc := max(n/10, 1)
	for _, q := range []string{
		fmt.Sprintf(`INSERT INTO customers (name, email, phone, segment, region, country, city, created_at, updated_at)
SELECT 'Customer ' || g, 'c' || g || '@example.com', NULL, (ARRAY['bronze','silver','gold','platinum'])[1 + g %% 4],
  (ARRAY['north_america','europe','asia_pacific','latin_america','middle_east_africa'])[1 + g %% 5], 'DE', 'City ' || (g %% 100),
  timestamptz '2024-01-01', timestamptz '2024-01-01' FROM generate_series(1, %d) g`, nc),
		`INSERT INTO products (sku, name, category, price, currency, created_at, updated_at)
SELECT 'SKU-' || g, 'Product ' || g, 'category ' || (g % 20), (g % 100) + 0.99, 'USD', timestamptz '2024-01-01', timestamptz '2024-01-01'
FROM generate_series(1, 1000) g`,
		fmt.Sprintf(`INSERT INTO orders (customer_id, status, currency, subtotal, discount, total, placed_at, paid_at, created_at, updated_at)
SELECT 1 + g %% %d, CASE WHEN g %% 2 = 0 THEN 'placed' ELSE 'paid' END, 'USD', s, 0, s, p,
  CASE WHEN g %% 2 = 1 THEN p + interval '1 hour' END, p, p + interval '1 hour'
FROM generate_series(1, %d) g, LATERAL (SELECT timestamptz '2025-01-01' + (g %% 31536000) * interval '1 second' AS p, ((g %% 50) + 1) * 2.50 AS s) x`, nc, n),
		fmt.Sprintf(`INSERT INTO order_items (order_id, line_no, product_id, quantity, unit_price, discount, created_at, updated_at)
SELECT o, l, 1 + (o * 7 + l) %% 1000, 1 + (o + l) %% 3, 9.99, 0, timestamptz '2025-01-01', timestamptz '2025-01-01'
FROM generate_series(1, %d) o, generate_series(1, 2 + o %% 2) l`, n),
		"VACUUM ANALYZE customers, products, orders, order_items",
	} {
		if _, err := e.admin.Exec(ctx, q); err != nil {
			b.Fatalf("%s: %v", q, err)
		}
	}
	var items int64
	_ = e.admin.QueryRow(ctx, "SELECT count(*) FROM order_items").Scan(&items)
	b.Logf("generated %d orders, %d items, %d customers in %s", n, items, nc, time.Since(start).Round(time.Second))
	total := int64(n) + items + int64(nc) + 1000

	// Ceiling: plain COPY of the same tables, one after the other, output
	// discarded.
	start = time.Now()
	for _, tb := range []string{"customers", "products", "orders", "order_items"} {
		if _, err := e.admin.PgConn().CopyTo(ctx, io.Discard, "COPY "+tb+" TO STDOUT"); err != nil {
			b.Fatal(err)
		}
	}
	copySecs := time.Since(start).Seconds()
	b.Logf("ceiling: COPY TO STDOUT of %d rows in %.1fs = %.0f rows/s (orders+items %.0f rows/s)", total, copySecs, float64(total)/copySecs, float64(int64(n)+items)/copySecs)

	// Backfill with the transformer running: wall time until every fact is
	// in ClickHouse.
	// ORDERFLOW_BENCH_PUBLISH_ONLY=1 measures the backfill alone.
	publishOnly := os.Getenv("ORDERFLOW_BENCH_PUBLISH_ONLY") == "1"
	direct := os.Getenv("ORDERFLOW_BENCH_DIRECT") == "1"
	if !publishOnly && !direct {
		e.runTransformer(false) // it waits for the topics the backfill creates
	}
	o := backfill.Options{Postgres: e.pgConfig(), Kafka: e.kafkaConfig(), Workers: workers, ChunkRows: 50_000,
		Progress: os.Stderr, ProgressInterval: 5 * time.Second}
	discard := direct && os.Getenv("ORDERFLOW_BENCH_DIRECT_DISCARD") == "1"
	if direct {
		o.Sink = e.eng
		if discard { // the ceiling without ClickHouse: rows derived, then dropped
			o.Sink = discardSink{}
		}
	}
	b.ResetTimer()
	start = time.Now()
	cpu0 := cpuTime()
	res, err := backfill.Run(ctx, o, nil)
	if err != nil {
		b.Fatal(err)
	}
	pubSecs := time.Since(start).Seconds()
	cpu := cpuTime() - cpu0
	b.Logf("publish: %d rows to Kafka in %.1fs = %.0f rows/s (%d workers); this process used %.1f s of CPU (%.2f cores, %.1f µs per row)",
		total, pubSecs, float64(total)/pubSecs, workers, cpu, cpu/pubSecs, cpu*1e6/float64(total))
	_ = res
	b.ReportMetric(float64(total)/copySecs, "copy_rows/s")
	b.ReportMetric(float64(total)/pubSecs, "publish_rows/s")
	if publishOnly || discard {
		return
	}
	for {
		r, err := e.eng.Query(ctx, "SELECT (SELECT count() FROM customer_orders), (SELECT count() FROM order_lines)", nil)
		if err != nil {
			b.Fatal(err)
		}
		co, _ := strconv.ParseInt(fmt.Sprint(r.Rows[0][0]), 10, 64)
		ol, _ := strconv.ParseInt(fmt.Sprint(r.Rows[0][1]), 10, 64)
		if co >= int64(n) && ol >= items {
			// count() also counts a fact derived twice (a repair after a
			// late item): confirm with distinct keys before stopping
			r, err := e.eng.Query(ctx, "SELECT (SELECT uniqExact(order_id) FROM customer_orders), (SELECT uniqExact(item_id) FROM order_lines)", nil)
			if err != nil {
				b.Fatal(err)
			}
			co, _ = strconv.ParseInt(fmt.Sprint(r.Rows[0][0]), 10, 64)
			ol, _ = strconv.ParseInt(fmt.Sprint(r.Rows[0][1]), 10, 64)
			if co >= int64(n) && ol >= items {
				break
			}
		}
		time.Sleep(2 * time.Second)
	}
	factSecs := time.Since(start).Seconds()
	b.StopTimer()
	facts := float64(int64(n) + items)
	b.Logf("facts: %d customer_orders + %d order_lines in ClickHouse %.1fs after the backfill started = %.0f fact rows/s (%.0f orders/s)",
		n, items, factSecs, facts/factSecs, float64(n)/factSecs)
	b.ReportMetric(facts/factSecs, "fact_rows/s")
	if !direct {
		return
	}
	// The transformer's catch-up: every snapshot event applied to its
	// state (it writes no row for them).
	start = time.Now()
	e.runTransformer(false)
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	group := e.prefix + "-transform"
	for {
		lags, err := adm.Lag(ctx, group)
		if err == nil {
			l := lags[group]
			if l.Error() == nil && len(l.Lag.TotalByTopic()) >= 5 && l.Lag.Total() == 0 {
				break
			}
		}
		time.Sleep(time.Second)
	}
	catchUp := time.Since(start).Seconds()
	b.Logf("transformer catch-up after the direct backfill: %d events applied to state in %.1fs = %.0f events/s; peak RSS of this process (backfill, transformer, chDB) %s",
		total, catchUp, float64(total)/catchUp, peakRSS())
	b.ReportMetric(float64(total)/catchUp, "catchup_events/s")
}

// discardSink takes the direct mode's rows and drops them
// (ORDERFLOW_BENCH_DIRECT_DISCARD=1: the backfill's own ceiling).
type discardSink struct{}

func (discardSink) Insert(context.Context, string, []string, [][]any) error      { return nil }
func (discardSink) InsertColumns(context.Context, string, []string, []any) error { return nil }
func (discardSink) Exec(context.Context, string) error                           { return nil }

// cpuTime is this process's user + system CPU time in seconds.
func cpuTime() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// peakRSS is this process's VmHWM from /proc/self/status.
func peakRSS() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}
