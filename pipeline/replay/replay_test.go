package replay

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/internal/envelope"
	"github.com/orderflow/orderflow/internal/testenv"
	"github.com/orderflow/orderflow/pipeline"
	"github.com/orderflow/orderflow/sinks/chdb"
	"github.com/orderflow/orderflow/sinks/chmigrate"
	"github.com/orderflow/orderflow/sinks/chschema"
)

var chdbDir string

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "orderflow-replay-test-")
	if err != nil {
		panic(err)
	}
	chdbDir = d
	code := m.Run()
	_ = os.RemoveAll(d)
	os.Exit(code)
}

type env struct {
	t       *testing.T
	brokers []string
	prefix  string
	cl      *kgo.Client
	lsn     uint64
	eng     *chdb.Engine // the transformer's and replay's connection
	reader  *chdb.Engine // a second connection for the report loop
	nextID  map[string]int64
}

func newEnv(t *testing.T) *env {
	t.Helper()
	brokers := testenv.KafkaBrokers(t)
	lib := testenv.ChdbLib(t)
	ctx := context.Background()
	e := &env{t: t, brokers: brokers, prefix: testenv.Name("rp"), lsn: 1000, nextID: map[string]int64{}}
	adm, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	var topics []string
	for _, tb := range pipeline.CapturedTables {
		topics = append(topics, envelope.Topic(e.prefix, "public", tb))
	}
	if _, err := kadm.NewClient(adm).CreateTopics(ctx, 3, 1, nil, topics...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
		if err == nil {
			_, _ = kadm.NewClient(c).DeleteTopics(context.Background(), append(topics, e.prefix+".dlq")...)
			c.Close()
		}
	})
	e.cl, err = kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID(e.prefix+"-producer"), kgo.ProducerLinger(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.cl.Close)
	db := testenv.Name("r")
	e.eng, err = chdb.Open(ctx, chdb.Options{Lib: lib, Path: chdbDir, Database: db})
	if err != nil {
		t.Fatal(err)
	}
	e.reader, err = chdb.Open(ctx, chdb.Options{Lib: lib, Path: chdbDir, Database: db})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = e.reader.Close()
		_ = e.eng.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db)
		_ = e.eng.Close()
	})
	if err := chmigrate.ApplyFiles(ctx, e.eng, chschema.Migrations); err != nil {
		t.Fatal(err)
	}
	return e
}

type change struct {
	table string
	op    string
	row   map[string]any
}

// tx publishes one source transaction as one Kafka transaction.
func (e *env) tx(cs ...change) {
	e.t.Helper()
	e.lsn += 100
	ctx := context.Background()
	if err := e.cl.BeginTransaction(); err != nil {
		e.t.Fatal(err)
	}
	now := time.Now().UnixMilli()
	for _, c := range cs {
		ev := &envelope.Event{Op: c.op, After: c.row, TsMs: now, Source: envelope.Source{Version: envelope.Version, Connector: "postgresql",
			Name: e.prefix, DB: "orderflow", Schema: "public", Table: c.table, LSN: e.lsn, TxID: int64(e.lsn), TsMs: now, Snapshot: "false"}}
		if c.op == envelope.OpDelete {
			ev.After, ev.Before = nil, map[string]any{"id": c.row["id"]}
		}
		v, err := envelope.Encode(ev)
		if err != nil {
			e.t.Fatal(err)
		}
		e.cl.Produce(ctx, &kgo.Record{Topic: envelope.Topic(e.prefix, "public", c.table), Key: []byte(fmt.Sprintf(`{"id":%v}`, c.row["id"])), Value: v}, nil)
	}
	if err := e.cl.Flush(ctx); err != nil {
		e.t.Fatal(err)
	}
	if err := e.cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		e.t.Fatal(err)
	}
}

func ts(t time.Time) string { return envelope.FormatTime(t) }

// workload publishes customers, products, and orders with items placed over
// three months, then customer changes and status changes.
func (e *env) workload(customers, orders int) {
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var cs []change
	for i := 1; i <= customers; i++ {
		cs = append(cs, change{"customers", "c", map[string]any{"id": i, "name": fmt.Sprintf("Customer %d", i), "email": fmt.Sprintf("c%d@example.com", i),
			"phone": nil, "segment": []string{"bronze", "silver", "gold"}[i%3], "region": "europe", "country": "DE", "city": "Berlin",
			"created_at": ts(base.Add(-time.Hour)), "updated_at": ts(base.Add(-time.Hour))}})
	}
	for i := 1; i <= 20; i++ {
		cs = append(cs, change{"products", "c", map[string]any{"id": i, "sku": fmt.Sprintf("SKU-%d", i), "name": fmt.Sprintf("Product %d", i),
			"category": "books", "price": fmt.Sprintf("%d.50", i), "currency": "USD", "created_at": ts(base), "updated_at": ts(base)}})
	}
	e.tx(cs...)
	item := 0
	for o := 1; o <= orders; o++ {
		placed := base.Add(time.Duration(o) * 90 * 24 * time.Hour / time.Duration(orders))
		p := 1 + o%20
		q := 1 + o%3
		total := fmt.Sprintf("%d.%02d", (p*100+50)*q/100, (p*100+50)*q%100)
		cs := []change{{"orders", "c", map[string]any{"id": o, "customer_id": 1 + o%customers, "campaign_id": nil, "status": "placed", "currency": "USD",
			"subtotal": total, "discount": "0.00", "total": total, "placed_at": ts(placed), "paid_at": nil, "shipped_at": nil, "delivered_at": nil,
			"cancelled_at": nil, "refunded_at": nil, "created_at": ts(placed), "updated_at": ts(placed)}}}
		item++
		cs = append(cs, change{"order_items", "c", map[string]any{"id": item, "order_id": o, "line_no": 1, "product_id": p, "quantity": q,
			"unit_price": fmt.Sprintf("%d.50", p), "discount": "0.00", "created_at": ts(placed), "updated_at": ts(placed)}})
		e.tx(cs...)
		if o%7 == 0 {
			e.tx(change{"customers", "u", map[string]any{"id": 1 + o%customers, "name": fmt.Sprintf("Customer %d", 1+o%customers),
				"email": fmt.Sprintf("c%d@example.com", 1+o%customers), "phone": nil, "segment": "platinum", "region": "europe", "country": "DE",
				"city": "Munich", "created_at": ts(base.Add(-time.Hour)), "updated_at": ts(placed)}})
		}
		if o%3 == 0 {
			e.tx(change{"orders", "u", map[string]any{"id": o, "customer_id": 1 + o%customers, "campaign_id": nil, "status": "paid", "currency": "USD",
				"subtotal": total, "discount": "0.00", "total": total, "placed_at": ts(placed), "paid_at": ts(placed.Add(time.Hour)), "shipped_at": nil,
				"delivered_at": nil, "cancelled_at": nil, "refunded_at": nil, "created_at": ts(placed), "updated_at": ts(placed.Add(time.Hour))}})
		}
	}
	e.nextID["orders"], e.nextID["order_items"] = int64(orders+1), int64(item+1)
}

func (e *env) startTransformer() {
	e.t.Helper()
	tr, err := pipeline.New(pipeline.Config{Brokers: e.brokers, TopicPrefix: e.prefix, Group: e.prefix + "-g", MaxAge: 50 * time.Millisecond}, e.eng, nil,
		slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
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
}

// report is the loop's query: what a sales report reads.
const report = `SELECT count(), sum(total), countIf(status = 'paid'), sum(units) FROM customer_orders FINAL WHERE _is_deleted = 0`

func (e *env) query(q string) string {
	e.t.Helper()
	res, err := e.reader.Query(context.Background(), q, nil)
	if err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
	return fmt.Sprint(res.Rows)
}

// fingerprint is every table's row count and a content hash after FINAL.
func (e *env) fingerprint() map[string]string {
	out := map[string]string{}
	for _, t := range Outputs {
		fin := " FINAL"
		if t == pipeline.OutChangeLog {
			fin = " FINAL" // ReplacingMergeTree without version: FINAL collapses redeliveries
		}
		out[t] = e.query("SELECT count(), sum(cityHash64(*)) FROM " + t + fin)
	}
	return out
}

// sameTables checks every table's fingerprint against before and that no
// shadow table is left.
func (e *env) sameTables(before map[string]string, when string) {
	e.t.Helper()
	after := e.fingerprint()
	for _, tb := range Outputs {
		if before[tb] != after[tb] {
			e.t.Errorf("%s %s: before %s, after %s", tb, when, before[tb], after[tb])
		}
	}
	if got := e.query("SELECT count() FROM system.tables WHERE database = currentDatabase() AND name LIKE '%__shadow'"); got != "[[0]]" {
		e.t.Errorf("shadow tables left %s: %s", when, got)
	}
}

func (e *env) waitFacts(n int) {
	e.t.Helper()
	want := fmt.Sprintf("[[%d]]", n)
	deadline := time.Now().Add(60 * time.Second)
	for e.query("SELECT count() FROM customer_orders FINAL") != want {
		if time.Now().After(deadline) {
			e.t.Fatalf("transformer did not write %d facts: %s", n, e.query("SELECT count() FROM customer_orders FINAL"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // the rest of the last batch
}

// TestReplayWhileReporting rebuilds every table from the log while a report
// runs in a loop on another connection: the report never fails and never
// returns anything but the complete answer; afterwards every table holds
// what the transformer had built. An order published just before the swap
// (written by the transformer into the old table) is not lost.
func TestReplayWhileReporting(t *testing.T) {
	e := newEnv(t)
	e.workload(50, 600)
	e.startTransformer()
	e.waitFacts(600)
	before := e.fingerprint()
	baseline := e.query(report)
	t.Logf("baseline report %s", baseline)

	var stop atomic.Bool
	var runs, bad atomic.Int64
	var mu sync.Mutex
	seen := map[string]bool{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			res, err := e.reader.Query(context.Background(), report, nil)
			runs.Add(1)
			if err != nil {
				bad.Add(1)
				t.Errorf("report failed during replay: %v", err)
				continue
			}
			mu.Lock()
			seen[fmt.Sprint(res.Rows)] = true
			mu.Unlock()
		}
	}()
	// Just before the swap a new order arrives: the transformer writes it
	// into the old table, so the replay must apply it after the swap.
	newOrder := func() {
		placed := time.Date(2025, 3, 30, 12, 0, 0, 0, time.UTC)
		e.tx(change{"orders", "c", map[string]any{"id": 601, "customer_id": 1, "campaign_id": nil, "status": "placed", "currency": "USD",
			"subtotal": "7.00", "discount": "0.00", "total": "7.00", "placed_at": ts(placed), "paid_at": nil, "shipped_at": nil, "delivered_at": nil,
			"cancelled_at": nil, "refunded_at": nil, "created_at": ts(placed), "updated_at": ts(placed)}},
			change{"order_items", "c", map[string]any{"id": 601, "order_id": 601, "line_no": 1, "product_id": 1, "quantity": 2,
				"unit_price": "3.50", "discount": "0.00", "created_at": ts(placed), "updated_at": ts(placed)}})
		e.waitFacts(601)
	}
	res, err := Run(context.Background(), e.eng, Options{Brokers: e.brokers, TopicPrefix: e.prefix, BatchRows: 500, beforeSwap: newOrder},
		slog.New(slog.NewTextHandler(os.Stderr, nil)))
	stop.Store(true)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	final := e.query(report)
	t.Logf("replay: events %d, rows %v, swapped %v, caught up %d; report ran %d times during it; final %s", res.Events, res.Rows, res.Swapped, res.CaughtUp, runs.Load(), final)
	for s := range seen {
		if s != baseline && s != final {
			t.Errorf("report answer %s during replay, want %s or %s", s, baseline, final)
		}
	}
	if final != "[[601 13207 200 1202]]" || res.CaughtUp == 0 {
		t.Errorf("the order published before the swap: report %s, caught up %d", final, res.CaughtUp)
	}
	// Rebuilt tables hold what the transformer builds: republish nothing,
	// rebuild again, compare with a fresh fingerprint (the baseline one
	// predates order 601).
	before = e.fingerprint()
	if _, err := Run(context.Background(), e.eng, Options{Brokers: e.brokers, TopicPrefix: e.prefix}, nil); err != nil {
		t.Fatal(err)
	}
	e.sameTables(before, "after the rebuild")
}

// TestReplayDateRange corrupts the facts of one month, re-derives that month
// only, and checks that it is repaired and the other months are untouched.
func TestReplayDateRange(t *testing.T) {
	e := newEnv(t)
	e.workload(30, 300)
	e.startTransformer()
	e.waitFacts(300)
	byMonth := "SELECT toYYYYMM(placed_at) m, count(), sum(total), sum(units), groupArray(customer_segment)[1] FROM customer_orders FINAL WHERE _is_deleted = 0 GROUP BY m ORDER BY m"
	want := e.query(byMonth)
	// A bad derivation wrote wrong facts for February with higher versions.
	if err := e.eng.Exec(context.Background(), `INSERT INTO customer_orders SELECT * REPLACE (total * 2 AS total, _version + 1000000000 AS _version)
		FROM customer_orders FINAL WHERE toYYYYMM(placed_at) = 202502`); err != nil {
		t.Fatal(err)
	}
	// ... and the February rows it should hold are then newer than any the
	// log can produce: drop them (the replay replaces the whole partition).
	if e.query(byMonth) == want {
		t.Fatal("corruption did not change the report")
	}
	res, err := Run(context.Background(), e.eng, Options{Brokers: e.brokers, TopicPrefix: e.prefix, Tables: []string{"customer_orders"},
		From: time.Date(2025, 2, 10, 0, 0, 0, 0, time.UTC), To: time.Date(2025, 2, 20, 0, 0, 0, 0, time.UTC)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("replay: rows %v, replaced %v", res.Rows, res.Replaced)
	if got := e.query(byMonth); got != want {
		t.Errorf("after replay of February:\n got %s\nwant %s", got, want)
	}
	if strings.Join(res.Replaced, ",") != "customer_orders:202502" {
		t.Errorf("replaced %v", res.Replaced)
	}
}

// TestReplayRefusesTruncatedLog: when retention has deleted the first events
// of a captured topic, a rebuild from the log would lack their rows; replay
// refuses, names the partition, and swaps nothing. With AllowTruncatedLog
// (the operator has republished the rows with a backfill) it rebuilds from
// where the log starts now.
func TestReplayRefusesTruncatedLog(t *testing.T) {
	e := newEnv(t)
	e.workload(10, 90)
	e.startTransformer()
	e.waitFacts(90)
	before := e.fingerprint()

	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	orders := envelope.Topic(e.prefix, "public", pipeline.TOrders)
	ends, err := adm.ListEndOffsets(ctx, orders)
	if err != nil {
		t.Fatal(err)
	}
	end, ok := ends.Lookup(orders, 0)
	if !ok || end.Err != nil || end.Offset < 10 {
		t.Fatalf("orders[0] end offset: %+v", end)
	}
	var del kadm.Offsets
	del.Add(kadm.Offset{Topic: orders, Partition: 0, At: end.Offset / 2})
	resp, err := adm.DeleteRecords(ctx, del)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("delete records: %v", err)
	}

	_, err = Run(ctx, e.eng, Options{Brokers: e.brokers, TopicPrefix: e.prefix}, nil)
	want := fmt.Sprintf("%s[0] starts at offset %d, not 0", orders, end.Offset/2)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("replay of a truncated log: %v, want an error containing %q", err, want)
	}
	e.sameTables(before, "after the refused replay")

	// Allowed: the rebuild has no rows for the deleted order events (this
	// test ran no backfill to republish them), which is what the error
	// warned of.
	if _, err := Run(ctx, e.eng, Options{Brokers: e.brokers, TopicPrefix: e.prefix, Tables: []string{pipeline.OutCustomerOrders}, AllowTruncatedLog: true}, nil); err != nil {
		t.Fatal(err)
	}
	var n int
	if _, err := fmt.Sscanf(e.query("SELECT count() FROM customer_orders FINAL"), "[[%d]]", &n); err != nil || n >= 90 || n == 0 {
		t.Errorf("customer_orders after the allowed rebuild: %d facts (err %v), want fewer than the 90 in the whole log", n, err)
	}
}
