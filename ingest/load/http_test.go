package load

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/ingest/api"
	"github.com/orderflow/orderflow/ingest/pgschema"
	"github.com/orderflow/orderflow/internal/testenv"
)

func apiServer(t testing.TB, token string) (*httptest.Server, *pgx.Conn) {
	t.Helper()
	ctx := context.Background()
	url := testenv.Postgres(t)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 16 // as `orderflow api` (-pg-max-conns)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := pgschema.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(api.Options{Pool: pool, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return ts, conn
}

func TestHTTPPath(t *testing.T) {
	ts, conn := apiServer(t, "tok")
	ctx := context.Background()
	prm := Params{Seed: 3, Customers: 60, Orders: 400, Products: 40, Campaigns: 3}
	sum, err := RunHTTP(ctx, &Client{Base: ts.URL, Token: "tok", HTTP: ts.Client()}, prm, Options{Concurrency: 8})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Orders != 400 || sum.Errors != 0 || sum.ByKind["customer"] != 60 {
		t.Fatalf("summary %+v", sum)
	}
	counts := map[string]string{
		"order":    `SELECT count(*) FROM orders`,
		"customer": `SELECT count(*) FROM customers`,
		"pay":      `SELECT count(*) FROM orders WHERE paid_at IS NOT NULL`,
		"ship":     `SELECT count(*) FROM orders WHERE shipped_at IS NOT NULL`,
		"deliver":  `SELECT count(*) FROM orders WHERE delivered_at IS NOT NULL`,
		"cancel":   `SELECT count(*) FROM orders WHERE cancelled_at IS NOT NULL`,
		"refund":   `SELECT count(*) FROM orders WHERE refunded_at IS NOT NULL`,
	}
	for kind, q := range counts {
		var n int
		if err := conn.QueryRow(ctx, q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != sum.ByKind[kind] {
			t.Errorf("%s: %d rows, summary says %d", kind, n, sum.ByKind[kind])
		}
	}
	var bad int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM orders o JOIN (SELECT order_id, sum(unit_price*quantity) s FROM order_items GROUP BY 1) i ON i.order_id = o.id WHERE o.subtotal <> i.s`).Scan(&bad); err != nil || bad != 0 {
		t.Fatalf("%d orders whose subtotal differs from their items (%v)", bad, err)
	}
}

// TestRateAndDuration: the open-loop pacer holds the rate and --duration stops the run.
func TestRateAndDuration(t *testing.T) {
	conn := migratedConn(t)
	ctx := context.Background()
	sum, err := RunDirect(ctx, conn, Params{Seed: 1, Customers: 20, Orders: 60, Products: 10}, Options{Rate: 200}, false)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Orders != 60 || sum.Elapsed < 250*time.Millisecond {
		t.Fatalf("60 orders at 200/s took %s (%d orders)", sum.Elapsed, sum.Orders)
	}
	sum, err = RunDirect(ctx, conn, Params{Seed: 2, Customers: 20, Orders: 10000, Products: 10, Namespace: "b"}, Options{Rate: 100, Duration: 300 * time.Millisecond}, false)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Orders < 10 || sum.Orders > 45 || sum.Stopped == "" {
		t.Fatalf("--duration 300ms at 100/s: %d orders, stopped %q", sum.Orders, sum.Stopped)
	}
}

// TestHighRateBatches: at a high rate the direct path still commits in
// batches (not one transaction per order).
func TestHighRateBatches(t *testing.T) {
	conn := migratedConn(t)
	sum, err := RunDirect(context.Background(), conn, Params{Seed: 4, Customers: 100, Orders: 1000, Products: 20}, Options{Rate: 2000, FlushEvery: 20 * time.Millisecond}, false)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Orders != 1000 || sum.Transactions > 200 {
		t.Fatalf("%d orders in %d transactions over %s; want batches", sum.Orders, sum.Transactions, sum.Elapsed)
	}
	t.Logf("%d orders, %d transactions, %s, max lag %s", sum.Orders, sum.Transactions, sum.Elapsed, sum.MaxLag)
}
