package capture

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/ingest/pgschema"
)

// TestBenchDrainBacklog measures how fast `orderflow capture` drains a
// backlog of 1,000,000 changes on the command-side schema: the slot is
// created before the load, then the capture process starts and the clock runs
// until the slot's confirmed_flush_lsn (everything durable in Kafka) reaches
// the end of the load. Not part of the default test run:
//
//	ORDERFLOW_BENCH=1 go test -run TestBenchDrainBacklog -v -timeout 30m ./ingest/capture/
func TestBenchDrainBacklog(t *testing.T) {
	if os.Getenv("ORDERFLOW_BENCH") != "1" {
		t.Skip("benchmark: set ORDERFLOW_BENCH=1")
	}
	e := newITEnv(t)
	ctx := context.Background()
	if os.Getenv("ORDERFLOW_BENCH_INPROC") != "1" {
		orderflowBinary(t) // build it now, not on the clock
	}
	if _, err := pgschema.Migrate(ctx, e.admin); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	e.exec("CREATE PUBLICATION "+e.pub+" FOR TABLES IN SCHEMA public",
		"SELECT pg_create_logical_replication_slot('"+e.slot+"', 'pgoutput')")
	var walStart string
	if err := e.admin.QueryRow(ctx, "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1", e.slot).Scan(&walStart); err != nil {
		t.Fatal(err)
	}

	const (
		customers = 200000
		products  = 1000
		orders    = 300000
		items     = 499000
		batch     = 10000
	)
	load := time.Now()
	e.exec(`INSERT INTO products (sku, name, category, price, created_at, updated_at)
		SELECT 'SKU-' || g, 'Product ' || g, 'cat' || (g % 20), 5 + (g % 100), now(), now() FROM generate_series(1, 1000) g`)
	for lo := 1; lo <= customers; lo += batch {
		e.exec(`INSERT INTO customers (name, email, phone, segment, region, country, city, created_at, updated_at)
			SELECT 'Customer ' || g, 'c' || g || '@example.com', '+1 555 ' || lpad(g::text, 7, '0'),
			       (ARRAY['bronze','silver','gold','platinum'])[1 + g % 4], 'europe', 'DE', 'Berlin', now(), now()
			FROM generate_series(` + itoa(lo) + `, ` + itoa(lo+batch-1) + `) g`)
	}
	for lo := 1; lo <= orders; lo += batch {
		e.exec(`INSERT INTO orders (customer_id, status, currency, subtotal, discount, total, placed_at, created_at, updated_at)
			SELECT 1 + g % ` + itoa(customers) + `, 'placed', 'USD', 20.00, 0, 20.00, now(), now(), now()
			FROM generate_series(` + itoa(lo) + `, ` + itoa(lo+batch-1) + `) g`)
	}
	for lo := 1; lo <= items; lo += batch {
		hi := min(lo+batch-1, items)
		e.exec(`INSERT INTO order_items (order_id, line_no, product_id, quantity, unit_price, discount, created_at, updated_at)
			SELECT 1 + g % ` + itoa(orders) + `, 1 + g / ` + itoa(orders) + `, 1 + g % ` + itoa(products) + `, 1, 10.00, 0, now(), now()
			FROM generate_series(` + itoa(lo) + `, ` + itoa(hi) + `) g`)
	}
	total := customers + products + orders + items
	t.Logf("loaded %d changes in %s", total, time.Since(load).Round(time.Millisecond))

	logf, err := os.Create(filepath.Join(t.TempDir(), "capture.log"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var n float64
	var peak int64
	if os.Getenv("ORDERFLOW_BENCH_INPROC") == "1" {
		// In-process, for go test -cpuprofile.
		o := e.options()
		o.FlushInterval, o.StatusInterval, o.HeartbeatInterval = 250*time.Millisecond, 10*time.Second, 10*time.Second
		_, reg := e.start(o)
		e.waitFlushed(20 * time.Minute)
		n = counterValue(t, reg, "orderflow_capture_events_total", nil)
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() == "orderflow_capture_produce_seconds" {
				h := mf.GetMetric()[0].GetHistogram()
				t.Logf("kafka commits: %d taking %.1fs in all", h.GetSampleCount(), h.GetSampleSum())
			}
		}
		t.Logf("walsender CPU: %s", walsenderCPU(t, e))
	} else {
		p := e.startProc(logf, "ORDERFLOW_CAPTURE_FLUSH_INTERVAL=250ms", "ORDERFLOW_CAPTURE_HEARTBEAT_INTERVAL=10s", "ORDERFLOW_CAPTURE_STATUS_INTERVAL=10s")
		e.waitFlushed(20 * time.Minute)
		if n, err = p.metric("orderflow_capture_events_total", ""); err != nil {
			t.Fatal(err)
		}
		peak = p.peakRSS()
		_ = p.stop(t)
		b, _ := os.ReadFile(logf.Name())
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") || strings.Contains(line, "replication started") {
				t.Log(line)
			}
		}
	}
	elapsed := time.Since(start)
	if int(n) != total {
		b, _ := os.ReadFile(logf.Name())
		t.Fatalf("events_total = %v, want %d\n%s", n, total, b)
	}
	// The walsender decodes all WAL of the cluster, including what other
	// databases wrote meanwhile; say how much that was.
	var walBytes int64
	_ = e.admin.QueryRow(ctx, "SELECT pg_wal_lsn_diff(confirmed_flush_lsn, $2::pg_lsn)::bigint FROM pg_replication_slots WHERE slot_name = $1", e.slot, walStart).Scan(&walBytes)
	t.Logf("WAL decoded by the slot: %.0f MiB", float64(walBytes)/(1<<20))
	t.Logf("BENCH drain: %d changes in %s = %.0f events/s (peak RSS %.0f MiB)", total, elapsed.Round(time.Millisecond),
		float64(total)/elapsed.Seconds(), float64(peak)/(1<<20))
}

func itoa(n int) string { return strconv.Itoa(n) }

// walsenderCPU reads the user+system CPU time of the slot's walsender.
func walsenderCPU(t *testing.T, e *itEnv) string {
	var pid *int
	if err := e.admin.QueryRow(context.Background(), "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1", e.slot).Scan(&pid); err != nil || pid == nil {
		return "unknown"
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(*pid) + "/stat")
	if err != nil {
		return "unknown: " + err.Error()
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.Atoi(f[11])
	st, _ := strconv.Atoi(f[12])
	return (time.Duration(ut+st) * 10 * time.Millisecond).String()
}
