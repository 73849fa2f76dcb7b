package queries

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/ingest/backfill"
	"github.com/orderflow/orderflow/internal/config"
)

// TestReportsAfterBackfill: the command side is populated before anything
// streams (no slot, no topics). `orderflow backfill` snapshots it while a
// writer keeps placing and paying orders; capture then streams from the
// snapshot's end and the transformer builds the query side; the edge cases
// (a segment change after a customer's orders, a delete, a cancellation, a
// refund, a customer with one order) are streamed on top. Every report
// equals its PostgreSQL oracle.
//
// As-of semantics of a backfill: PostgreSQL keeps only a customer's current
// row, so a snapshot order's fact carries the customer as of the snapshot,
// not as of the order's placement (nothing older exists to join with). The
// oracle is told so: before the backfill, every existing order's as-of
// customer version is re-pointed at the customer's latest version. The
// concurrent writer changes no customer, so its orders have the same
// customer whether they land in the snapshot or in the stream.
//
// Both modes: the snapshot's rows through Kafka and the transformer, and
// --direct (the backfill writes them to ClickHouse itself; the transformer
// applies the snapshot events to its state only).
func TestReportsAfterBackfill(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test (-short)")
	}
	t.Run("kafka", func(t *testing.T) { reportsAfterBackfill(t, false) })
	t.Run("direct", func(t *testing.T) { reportsAfterBackfill(t, true) })
}

func reportsAfterBackfill(t *testing.T, direct bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	start := time.Now()
	o := newOracleEnv(t, ctx, "bforacle")
	o.workload(t, ctx)
	tag, err := o.conn.Exec(ctx, `UPDATE oracle.order_asof a SET customer_seq = v.seq
		FROM (SELECT customer_id, max(seq) AS seq FROM oracle.customer_versions GROUP BY customer_id) v
		WHERE v.customer_id = a.customer_id AND a.customer_seq <> v.seq`)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d orders placed before a later change of their customer: the backfill gives them the customer as of the snapshot", tag.RowsAffected())
	if tag.RowsAffected() == 0 {
		t.Fatal("no order predates a change of its customer: the test does not cover snapshot as-of semantics")
	}

	stop := orderWriter(t, ctx, o.pgURL)
	opts := backfill.Options{
		Postgres: config.Postgres{URL: o.pgURL, Slot: o.slot, Publication: o.pub},
		Kafka:    config.Kafka{Brokers: o.brokers, TopicPrefix: o.prefix},
		Workers:  3, ChunkRows: 150, ProgressInterval: time.Minute,
	}
	if direct {
		opts.Sink = o.e
	}
	res, err := backfill.Run(ctx, opts, o.log)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // writes after the snapshot too
	placed, paid := stop()
	t.Logf("backfill: %d chunks, slot created %v; writer meanwhile placed %d and paid %d orders", res.Chunks, res.SlotCreated, placed, paid)
	if !res.SlotCreated || res.Chunks == 0 || placed == 0 || paid == 0 {
		t.Fatalf("backfill %+v, writer placed %d paid %d: want a created slot, chunks and concurrent writes", res, placed, paid)
	}

	if direct {
		r, err := o.e.Query(ctx, "SELECT count() FROM customer_orders WHERE _version = {v:UInt64}", map[string]any{"v": res.SnapshotLSN})
		if err != nil || fmt.Sprint(r.Rows[0][0]) != fmt.Sprint(res.Rows["orders"]) || res.Rows["orders"] == 0 {
			t.Fatalf("direct backfill: facts at the snapshot version %v (%v), want %d before the transformer starts", r, err, res.Rows["orders"])
		}
	}
	o.startPipeline(t)
	edgeCases(t, ctx, o.conn)
	waitCaughtUp(t, ctx, o.conn, o.e)
	t.Logf("pipeline caught up %s after start", time.Since(start).Round(time.Millisecond))
	compareReportsBothWays(t, ctx, o.conn, o.e)
}

// orderWriter places orders (one item, for existing customers) and pays the
// oldest placed ones, one transaction each, until the returned stop is
// called; stop reports how many orders it placed and paid.
func orderWriter(t *testing.T, ctx context.Context, pgURL string) (stop func() (placed, paid int64)) {
	t.Helper()
	conn, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		t.Fatal(err)
	}
	var customers []int64
	rows, _ := conn.Query(ctx, "SELECT id FROM customers ORDER BY id")
	customers, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil || len(customers) == 0 {
		t.Fatalf("customers: %v (%d)", err, len(customers))
	}
	var prod int64
	var price string
	if err := conn.QueryRow(ctx, "SELECT id, price::text FROM products ORDER BY id LIMIT 1").Scan(&prod, &price); err != nil {
		t.Fatal(err)
	}
	var nPlaced, nPaid atomic.Int64
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer conn.Close(context.Background())
		at := time.Date(2025, 11, 3, 8, 0, 0, 0, time.UTC)
		for i := 0; ; i++ {
			select {
			case <-quit:
				return
			default:
			}
			at = at.Add(17 * time.Minute)
			cust := customers[(i*37)%len(customers)]
			err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				var id int64
				if err := tx.QueryRow(ctx, `INSERT INTO orders (customer_id, status, currency, subtotal, discount, total, placed_at, created_at, updated_at)
					VALUES ($1, 'placed', 'USD', $2::numeric, 0, $2::numeric, $3, $3, $3) RETURNING id`, cust, price, at).Scan(&id); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, `INSERT INTO order_items (order_id, line_no, product_id, quantity, unit_price, discount, created_at, updated_at)
					VALUES ($1, 1, $2, 1, $3::numeric, 0, $4, $4)`, id, prod, price, at)
				return err
			})
			if err != nil {
				t.Errorf("writer: place order: %v", err)
				return
			}
			nPlaced.Add(1)
			if i%2 == 1 {
				tag, err := conn.Exec(ctx, `UPDATE orders SET status = 'paid', paid_at = placed_at + interval '1 hour', updated_at = placed_at + interval '1 hour'
					WHERE id = (SELECT id FROM orders WHERE status = 'placed' ORDER BY id LIMIT 1)`)
				if err != nil {
					t.Errorf("writer: pay order: %v", err)
					return
				}
				nPaid.Add(tag.RowsAffected())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return func() (int64, int64) {
		close(quit)
		wg.Wait()
		return nPlaced.Load(), nPaid.Load()
	}
}
