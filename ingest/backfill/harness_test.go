package backfill_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/ingest/capture"
	"github.com/orderflow/orderflow/ingest/load"
	"github.com/orderflow/orderflow/ingest/pgschema"
	"github.com/orderflow/orderflow/internal/config"
	"github.com/orderflow/orderflow/internal/envelope"
	"github.com/orderflow/orderflow/internal/testenv"
	"github.com/orderflow/orderflow/pipeline"
	"github.com/orderflow/orderflow/sinks/chdb"
	"github.com/orderflow/orderflow/sinks/chmigrate"
	"github.com/orderflow/orderflow/sinks/chschema"
)

// The end-to-end tests wire every stage (capture, backfill, transformer,
// chDB) the way `orderflow run` does; they import pipeline only here, in
// tests, never in the backfill package itself.

var (
	chdbDir  string
	binOnce  sync.Once
	binPath  string
	binErr   error
	tmpRoots []string
)

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "orderflow-backfill-test-")
	if err != nil {
		panic(err)
	}
	chdbDir = d
	code := m.Run()
	_ = os.RemoveAll(d)
	for _, r := range tmpRoots {
		_ = os.RemoveAll(r)
	}
	os.Exit(code)
}

// binary builds cmd/orderflow once per test process.
func binary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "orderflow-bin-")
		if err != nil {
			binErr = err
			return
		}
		tmpRoots = append(tmpRoots, dir)
		binPath = filepath.Join(dir, "orderflow")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/orderflow")
		cmd.Dir = testenv.RepoRoot()
		out, err := cmd.CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

type env struct {
	t       testing.TB
	pgURL   string
	admin   *pgx.Conn
	brokers []string
	prefix  string
	slot    string
	pub     string
	eng     *chdb.Engine
}

func newEnv(t testing.TB) *env {
	t.Helper()
	brokers := testenv.KafkaBrokers(t)
	lib := testenv.ChdbLib(t)
	url := testenv.Postgres(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	if _, err := pgschema.Migrate(ctx, conn); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, pgURL: url, admin: conn, brokers: brokers, prefix: testenv.Name("bf"), slot: testenv.Name("slot"), pub: "orderflow_pub"}
	t.Cleanup(e.deleteTopics)
	eng, err := chdb.Open(ctx, chdb.Options{Lib: lib, Path: chdbDir, Database: testenv.Name("b")})
	if err != nil {
		t.Fatalf("open chdb: %v", err)
	}
	t.Cleanup(func() {
		_ = eng.Exec(context.Background(), "DROP DATABASE IF EXISTS "+eng.Database())
		_ = eng.Close()
	})
	if err := chmigrate.ApplyFiles(ctx, eng, chschema.Migrations); err != nil {
		t.Fatal(err)
	}
	e.eng = eng
	return e
}

func (e *env) deleteTopics() {
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...))
	if err != nil {
		return
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		return
	}
	var mine []string
	for _, t := range topics.Names() {
		if strings.HasPrefix(t, e.prefix+".") {
			mine = append(mine, t)
		}
	}
	if len(mine) > 0 {
		_, _ = adm.DeleteTopics(ctx, mine...)
	}
}

func (e *env) pgConfig() config.Postgres {
	return config.Postgres{URL: e.pgURL, Slot: e.slot, Publication: e.pub}
}

func (e *env) kafkaConfig() config.Kafka {
	return config.Kafka{Brokers: e.brokers, TopicPrefix: e.prefix}
}

func testLog(t testing.TB, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// seed writes the generator's workload directly into PostgreSQL.
func (e *env) seed(orders, customers int) {
	e.t.Helper()
	sum, err := load.RunDirect(context.Background(), e.admin, load.Params{Seed: 7, Customers: customers, Orders: orders, Products: 200, Campaigns: 5}, load.Options{}, false)
	if err != nil {
		e.t.Fatalf("seed: %v", err)
	}
	e.t.Logf("seeded %d orders, %d items, %d commands", sum.Orders, sum.Items, sum.Events)
}

// startCapture runs capture in-process until the test ends.
func (e *env) startCapture() {
	e.t.Helper()
	c := capture.New(capture.Options{Postgres: e.pgConfig(), Kafka: e.kafkaConfig(), Partitions: 3, FlushInterval: 50 * time.Millisecond,
		StatusInterval: time.Second, HeartbeatInterval: 300 * time.Millisecond, RetryBackoff: 200 * time.Millisecond, SpoolDir: e.t.TempDir()},
		testLog(e.t, slog.LevelWarn), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	e.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && err != context.Canceled {
			e.t.Errorf("capture: %v", err)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for !c.Ready() {
		select {
		case err := <-done:
			e.t.Fatalf("capture stopped: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			e.t.Fatal("capture not ready after 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startTransformer runs the transformer in-process until the test ends and
// waits until it is ready.
func (e *env) startTransformer() { e.runTransformer(true) }

func (e *env) runTransformer(wait bool) {
	e.t.Helper()
	tr, err := pipeline.New(pipeline.Config{Brokers: e.brokers, TopicPrefix: e.prefix, Group: e.prefix + "-transform", MaxAge: 100 * time.Millisecond},
		e.eng, nil, testLog(e.t, slog.LevelWarn))
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx) }()
	e.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && err != context.Canceled {
			e.t.Errorf("transformer: %v", err)
		}
	})
	if !wait {
		return
	}
	select {
	case <-tr.Ready():
	case err := <-done:
		e.t.Fatalf("transformer stopped: %v", err)
	case <-time.After(60 * time.Second):
		e.t.Fatal("transformer not ready after 60s")
	}
}

// writer changes the database while a backfill runs: new orders with items
// for existing customers, status changes and item additions on existing
// orders, customer segment changes, a few deletes. It returns a stop
// function reporting how many transactions it committed.
func (e *env) writer(seed uint64) func() int {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	conn, err := pgx.Connect(context.Background(), e.pgURL)
	if err != nil {
		e.t.Fatal(err)
	}
	var n int
	done := make(chan error, 1)
	go func() {
		defer conn.Close(context.Background())
		r := rand.New(rand.NewPCG(seed, 1))
		var maxOrder, maxCust, maxProd int64
		if err := conn.QueryRow(ctx, "SELECT max(id) FROM orders").Scan(&maxOrder); err != nil {
			done <- err
			return
		}
		_ = conn.QueryRow(ctx, "SELECT max(id) FROM customers").Scan(&maxCust)
		_ = conn.QueryRow(ctx, "SELECT max(id) FROM products").Scan(&maxProd)
		for ctx.Err() == nil {
			var err error
			switch k := r.IntN(10); {
			case k < 3:
				err = newOrder(ctx, conn, 1+r.Int64N(maxCust), 1+r.Int64N(maxProd), 1+r.IntN(3))
			case k < 6:
				_, err = conn.Exec(ctx, `UPDATE orders SET status = 'paid', paid_at = placed_at + interval '1 minute',
					updated_at = greatest(updated_at, placed_at + interval '1 minute') WHERE id = $1 AND status = 'placed'`, 1+r.Int64N(maxOrder))
			case k < 8:
				_, err = conn.Exec(ctx, `UPDATE customers SET segment = CASE segment WHEN 'gold' THEN 'silver' ELSE 'gold' END,
					updated_at = updated_at + interval '1 second' WHERE id = $1`, 1+r.Int64N(maxCust))
			case k < 9:
				err = addItem(ctx, conn, 1+r.Int64N(maxOrder), 1+r.Int64N(maxProd))
			default:
				_, err = conn.Exec(ctx, `DELETE FROM orders WHERE id = $1`, 1+r.Int64N(maxOrder))
			}
			if err != nil && ctx.Err() == nil {
				done <- err
				return
			}
			n++
			time.Sleep(2 * time.Millisecond)
		}
		done <- nil
	}()
	return func() int {
		cancel()
		if err := <-done; err != nil && ctx.Err() == nil {
			e.t.Errorf("writer: %v", err)
		}
		return n
	}
}

func newOrder(ctx context.Context, conn *pgx.Conn, cust, prod int64, items int) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	var price string
	if err := tx.QueryRow(ctx, "SELECT price::text FROM products WHERE id = $1", prod).Scan(&price); err != nil {
		return err
	}
	var id int64
	if err := tx.QueryRow(ctx, `INSERT INTO orders (customer_id, status, currency, subtotal, discount, total, placed_at, created_at, updated_at)
		VALUES ($1, 'placed', 'USD', $2::numeric * $3, 0, $2::numeric * $3, now(), now(), now()) RETURNING id`, cust, price, items).Scan(&id); err != nil {
		return err
	}
	for i := 1; i <= items; i++ {
		if _, err := tx.Exec(ctx, `INSERT INTO order_items (order_id, line_no, product_id, quantity, unit_price, discount, created_at, updated_at)
			VALUES ($1, $2, $3, 1, $4::numeric, 0, now(), now())`, id, i, prod, price); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}

// addItem adds a line to an existing order and touches the order in the
// same transaction (as the API would), so the fact is re-derived.
func addItem(ctx context.Context, conn *pgx.Conn, order, prod int64) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	tag, err := tx.Exec(ctx, `INSERT INTO order_items (order_id, line_no, product_id, quantity, unit_price, discount, created_at, updated_at)
		SELECT o.id, coalesce((SELECT max(line_no) FROM order_items WHERE order_id = o.id), 0) + 1, p.id, 2, p.price, 0, o.updated_at, o.updated_at
		FROM orders o, products p WHERE o.id = $1 AND p.id = $2`, order, prod)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 1 {
		if _, err := tx.Exec(ctx, `UPDATE orders SET updated_at = updated_at + interval '1 millisecond' WHERE id = $1`, order); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}

// pgFacts is the per-order oracle from PostgreSQL: one line per order.
func (e *env) pgFacts() []string {
	e.t.Helper()
	rows, err := e.admin.Query(context.Background(), `
SELECT o.id, o.customer_id, o.status, (o.total * 100)::bigint, c.name, c.email, count(i.id), coalesce(sum(i.quantity), 0)
FROM orders o JOIN customers c ON c.id = o.customer_id LEFT JOIN order_items i ON i.order_id = o.id
GROUP BY o.id, c.id ORDER BY o.id`)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id, cust, total, n, units int64
		var status, name, email string
		if err := rows.Scan(&id, &cust, &status, &total, &name, &email, &n, &units); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%d|%d|%s|%d|%s|%s|%d|%d", id, cust, status, total, name, email, n, units))
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// chFactsQuery is pgFacts' shape over customer_orders FINAL.
const chFactsQuery = `SELECT order_id, customer_id, status, toInt64(total * 100), customer_name, customer_email, item_count, units
FROM customer_orders FINAL WHERE _is_deleted = 0 ORDER BY order_id`

// chFacts is the same from customer_orders FINAL.
func (e *env) chFacts() []string {
	e.t.Helper()
	res, err := e.eng.Query(context.Background(), chFactsQuery, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	out := make([]string, len(res.Rows))
	for i, r := range res.Rows {
		out[i] = fmt.Sprintf("%v|%v|%v|%v|%v|%v|%v|%v", r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7])
	}
	return out
}

// byStatus is the per-report oracle shape: orders and revenue by status.
func byStatus(facts []string) map[string][2]int64 {
	m := map[string][2]int64{}
	for _, f := range facts {
		p := strings.Split(f, "|")
		var total int64
		fmt.Sscan(p[3], &total)
		v := m[p[2]]
		v[0]++
		v[1] += total
		m[p[2]] = v
	}
	return m
}

// counts compares raw mirror and line counts with PostgreSQL.
func (e *env) counts() (pg, ch string) {
	ctx := context.Background()
	var c, o, i int64
	if err := e.admin.QueryRow(ctx, "SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM orders), (SELECT count(*) FROM order_items)").Scan(&c, &o, &i); err != nil {
		e.t.Fatal(err)
	}
	res, err := e.eng.Query(ctx, `SELECT (SELECT count() FROM raw_customers FINAL WHERE _is_deleted = 0), (SELECT count() FROM raw_orders FINAL WHERE _is_deleted = 0),
		(SELECT count() FROM raw_order_items FINAL WHERE _is_deleted = 0), (SELECT count() FROM order_lines FINAL WHERE _is_deleted = 0)`, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	r := res.Rows[0]
	return fmt.Sprintf("%d/%d/%d/%d", c, o, i, i), fmt.Sprintf("%v/%v/%v/%v", r[0], r[1], r[2], r[3])
}

// writeAWhile runs a writer (seed) for a second: changes streamed on top of
// what is loaded.
func (e *env) writeAWhile(seed uint64) {
	stop := e.writer(seed)
	time.Sleep(time.Second)
	stop()
}

// waitExact waits until ClickHouse equals PostgreSQL per order and in the
// table counts, and fails with the first differences otherwise.
func (e *env) waitExact(timeout time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		pg, ch := e.pgFacts(), e.chFacts()
		pc, cc := e.counts()
		if equal(pg, ch) && pc == cc {
			e.t.Logf("ClickHouse equals PostgreSQL: %d orders; customers/orders/items/lines %s; by status %v", len(pg), pc, byStatus(pg))
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("ClickHouse differs from PostgreSQL after %s: %d vs %d orders, counts pg %s ch %s\n%s", timeout, len(pg), len(ch), pc, cc, diff(pg, ch))
		}
		time.Sleep(time.Second)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func diff(pg, ch []string) string {
	in := map[string]bool{}
	for _, s := range ch {
		in[s] = true
	}
	inPG := map[string]bool{}
	var b strings.Builder
	n := 0
	for _, s := range pg {
		inPG[s] = true
		if !in[s] && n < 15 {
			fmt.Fprintf(&b, "  only in PostgreSQL: %s\n", s)
			n++
		}
	}
	n = 0
	for _, s := range ch {
		if !inPG[s] && n < 15 {
			fmt.Fprintf(&b, "  only in ClickHouse: %s\n", s)
			n++
		}
	}
	return b.String()
}

// oneSnapshotEventPerRow fails the test for every row with more than one
// committed snapshot event, and returns the counts.
func (e *env) oneSnapshotEventPerRow() map[string]map[string]int {
	e.t.Helper()
	events := e.readEvents()
	for table, keys := range events {
		for k, c := range keys {
			if c != 1 {
				e.t.Errorf("%s %s: %d snapshot events", table, k, c)
			}
		}
	}
	return events
}

// readEvents counts the committed snapshot ("r") events per table and key.
func (e *env) readEvents() map[string]map[string]int {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var topics []string
	for _, t := range []string{"customers", "products", "campaigns", "orders", "order_items"} {
		topics = append(topics, envelope.Topic(e.prefix, "public", t))
	}
	admCl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...))
	if err != nil {
		e.t.Fatal(err)
	}
	defer admCl.Close()
	lsos, err := kadm.NewClient(admCl).ListCommittedOffsets(ctx, topics...)
	if err != nil {
		e.t.Fatal(err)
	}
	want := map[string]map[int32]int64{}
	lsos.Each(func(o kadm.ListedOffset) {
		if o.Err == nil && o.Offset > 0 {
			if want[o.Topic] == nil {
				want[o.Topic] = map[int32]int64{}
			}
			want[o.Topic][o.Partition] = o.Offset
		}
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ConsumeTopics(topics...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	out := map[string]map[string]int{}
	for len(want) > 0 && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) {
			if ps := want[r.Topic]; ps != nil && r.Offset+1 >= ps[r.Partition] {
				delete(ps, r.Partition)
				if len(ps) == 0 {
					delete(want, r.Topic)
				}
			}
			if r.Attrs.IsControl() || len(r.Value) == 0 {
				return
			}
			var ev struct {
				Op     string `json:"op"`
				Source struct {
					Snapshot string `json:"snapshot"`
				} `json:"source"`
			}
			if json.Unmarshal(r.Value, &ev) != nil || ev.Op != "r" {
				return
			}
			if ev.Source.Snapshot != "true" {
				e.t.Errorf("read event with source.snapshot %q", ev.Source.Snapshot)
			}
			tb := r.Topic[strings.LastIndex(r.Topic, ".")+1:]
			if out[tb] == nil {
				out[tb] = map[string]int{}
			}
			out[tb][string(r.Key)]++
			if out[tb][string(r.Key)] > 1 {
				var run string
				for _, h := range r.Headers {
					if h.Key == "backfill_run" || h.Key == "lsn" {
						run += h.Key + "=" + string(h.Value) + " "
					}
				}
				e.t.Logf("second snapshot event of %s %s at p%d o%d: %s", tb, r.Key, r.Partition, r.Offset, run)
			}
		})
	}
	if ctx.Err() != nil {
		e.t.Fatal("timed out reading the topics")
	}
	return out
}
