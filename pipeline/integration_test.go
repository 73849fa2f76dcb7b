package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/internal/envelope"
	"github.com/orderflow/orderflow/internal/testenv"
	"github.com/orderflow/orderflow/sinks/chdb"
	"github.com/orderflow/orderflow/sinks/chmigrate"
	"github.com/orderflow/orderflow/sinks/chschema"
)

// chdbDir is this test process's one embedded-engine data directory (libchdb
// binds a process to one); each test uses its own databases in it.
var chdbDir string

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "orderflow-pipeline-test-")
	if err != nil {
		panic(err)
	}
	chdbDir = d
	code := m.Run()
	_ = os.RemoveAll(d)
	os.Exit(code)
}

// lockedWriter serializes inserts from several transformers sharing one
// test process.
type lockedWriter struct {
	mu sync.Mutex
	w  Writer
}

func (l *lockedWriter) Insert(ctx context.Context, table string, cols []string, rows [][]any) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Insert(ctx, table, cols, rows)
}

// InsertColumns keeps the columnar path the transformer takes with the
// embedded engine.
func (l *lockedWriter) InsertColumns(ctx context.Context, table string, cols []string, data []any) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if cw, ok := l.w.(columnWriter); ok {
		return cw.InsertColumns(ctx, table, cols, data)
	}
	return l.w.Insert(ctx, table, cols, rowsOf(data))
}

// openDB opens a fresh database with the schema applied.
func openDB(t testing.TB) *chdb.Engine {
	t.Helper()
	lib := testenv.ChdbLib(t)
	ctx := context.Background()
	e, err := chdb.Open(ctx, chdb.Options{Lib: lib, Path: chdbDir, Database: testenv.Name("p")})
	if err != nil {
		t.Fatalf("open chdb: %v", err)
	}
	t.Cleanup(func() {
		_ = e.Exec(context.Background(), "DROP DATABASE IF EXISTS "+e.Database())
		_ = e.Close()
	})
	if err := chmigrate.ApplyFiles(ctx, e, chschema.Migrations); err != nil {
		t.Fatal(err)
	}
	return e
}

// stream is a set of captured topics on the real broker with a
// transactional producer that writes each source transaction as one Kafka
// transaction, in LSN order, the way capture does.
type stream struct {
	t       testing.TB
	prefix  string
	brokers []string
	cl      *kgo.Client
	lsn     uint64
	events  int
}

func newStream(t testing.TB, partitions int32) *stream {
	t.Helper()
	brokers := testenv.KafkaBrokers(t)
	prefix := testenv.Name("of")
	adm, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	ka := kadm.NewClient(adm)
	ctx := context.Background()
	var topics []string
	for _, tb := range CapturedTables {
		topics = append(topics, envelope.Topic(prefix, "public", tb))
	}
	if _, err := ka.CreateTopics(ctx, partitions, 1, nil, topics...); err != nil {
		t.Fatalf("create topics: %v", err)
	}
	t.Cleanup(func() {
		c, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
		if err == nil {
			_, _ = kadm.NewClient(c).DeleteTopics(context.Background(), append(topics, prefix+".dlq")...)
			c.Close()
		}
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID(prefix+"-producer"), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &stream{t: t, prefix: prefix, brokers: brokers, cl: cl, lsn: 1000}
}

type change struct {
	table  string
	op     string
	before map[string]any
	after  map[string]any
}

func ins(table string, after map[string]any) change { return change{table, "c", nil, after} }
func upd(table string, after map[string]any) change { return change{table, "u", nil, after} }
func del(table string, id int64) change {
	return change{table, "d", map[string]any{"id": id}, nil}
}

// tx publishes one source transaction (one commit LSN) atomically.
func (s *stream) tx(changes ...change) uint64 {
	s.t.Helper()
	s.lsn += 100
	ctx := context.Background()
	if err := s.cl.BeginTransaction(); err != nil {
		s.t.Fatal(err)
	}
	for _, c := range changes {
		s.produce(ctx, c, s.lsn)
	}
	if err := s.cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		s.t.Fatalf("commit transaction: %v", err)
	}
	return s.lsn
}

func (s *stream) produce(ctx context.Context, c change, lsn uint64) {
	s.t.Helper()
	img := c.after
	if img == nil {
		img = c.before
	}
	b, _ := json.Marshal(img)
	conv, _ := envelope.Decode([]byte(fmt.Sprintf(`{"op":"c","after":%s,"source":{"table":"x"}}`, b)))
	e := &envelope.Event{Op: c.op, Source: envelope.Source{Version: envelope.Version, Connector: "postgresql", Name: s.prefix, DB: "orderflow",
		Schema: "public", Table: c.table, LSN: lsn, TxID: int64(lsn), TsMs: time.Now().UnixMilli(), Snapshot: "false"}, TsMs: time.Now().UnixMilli()}
	if c.after != nil {
		e.After = conv.After
	} else {
		e.Before = conv.After
	}
	val, err := envelope.Encode(e)
	if err != nil {
		s.t.Fatal(err)
	}
	key := fmt.Sprintf(`{"id":%v}`, img["id"])
	if err := s.cl.ProduceSync(ctx, &kgo.Record{Topic: envelope.Topic(s.prefix, "public", c.table), Key: []byte(key), Value: val,
		Headers: []kgo.RecordHeader{{Key: envelope.HeaderLSN, Value: []byte(fmt.Sprint(lsn))}}}).FirstErr(); err != nil {
		s.t.Fatal(err)
	}
	s.events++
}

// raw produces a record value as is (outside transactions).
func (s *stream) raw(table, key string, value []byte) {
	s.t.Helper()
	if err := s.cl.BeginTransaction(); err != nil {
		s.t.Fatal(err)
	}
	if err := s.cl.ProduceSync(context.Background(), &kgo.Record{Topic: envelope.Topic(s.prefix, "public", table), Key: []byte(key), Value: value}).FirstErr(); err != nil {
		s.t.Fatal(err)
	}
	if err := s.cl.EndTransaction(context.Background(), kgo.TryCommit); err != nil {
		s.t.Fatal(err)
	}
}

// runTransformer starts a transformer; the returned stop function shuts it
// down (flush + commit) and returns its error.
func runTransformer(t testing.TB, s *stream, w Writer, group string, reg prometheus.Registerer) func() error {
	t.Helper()
	tr, err := New(Config{Brokers: s.brokers, TopicPrefix: s.prefix, Group: group, MaxAge: 100 * time.Millisecond}, w, reg,
		slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx) }()
	var once sync.Once
	var rerr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case rerr = <-done:
			case <-time.After(30 * time.Second):
				rerr = fmt.Errorf("transformer did not stop")
			}
			if errors.Is(rerr, context.Canceled) { // also while starting up (e.g. creating the DLQ topic)
				rerr = nil
			}
		})
		return rerr
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func query(t testing.TB, e *chdb.Engine, q string) [][]any {
	t.Helper()
	res, err := e.Query(context.Background(), q, nil)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return res.Rows
}

// waitEvents waits until the change log holds n events.
func waitEvents(t testing.TB, e *chdb.Engine, n int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := query(t, e, "SELECT count() FROM change_log FINAL")[0][0]
		if fmt.Sprint(got) == fmt.Sprint(n) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("change_log has %v events, want %d", got, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// factOf returns an order's fact after FINAL as column -> value text.
func factOf(t testing.TB, e *chdb.Engine, id int64) map[string]string {
	t.Helper()
	res, err := e.Query(context.Background(), "SELECT * FROM customer_orders FINAL WHERE order_id = {id:Int64}", map[string]any{"id": id})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) == 0 {
		return nil
	}
	if len(res.Rows) > 1 {
		t.Fatalf("order %d: %d rows after FINAL", id, len(res.Rows))
	}
	m := map[string]string{}
	for i, c := range res.Columns {
		m[c] = fmt.Sprint(res.Rows[0][i])
	}
	return m
}

// snapshot renders every query-side table after FINAL, sorted.
func snapshot(t testing.TB, e *chdb.Engine) string {
	t.Helper()
	var b strings.Builder
	for _, o := range outputs {
		cols := strings.Join(o.cols, ", ")
		if o.name == OutCustomerHist || o.name == OutChangeLog {
			// commit times are wall-clock in these tests; the rest is exact
		}
		rows := query(t, e, fmt.Sprintf("SELECT %s FROM %s FINAL ORDER BY ALL", cols, o.name))
		fmt.Fprintf(&b, "== %s (%d)\n", o.name, len(rows))
		for _, r := range rows {
			fmt.Fprintln(&b, r...)
		}
	}
	return b.String()
}

func check(t testing.TB, what string, got map[string]string, want map[string]string) {
	t.Helper()
	if got == nil {
		t.Errorf("%s: no fact", what)
		return
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %s = %q, want %q", what, k, got[k], v)
		}
	}
}

// workload publishes the end-to-end scenario and returns the event count.
func workload(s *stream) {
	s.tx(ins(TCustomers, customer(1, "silver", "europe")), ins(TCustomers, customer(2, "gold", "north_america")),
		ins(TProducts, product(7, "Go book")), ins(TProducts, product(8, "Kafka book")))
	// order 10: placed with two items, then paid, shipped, delivered
	s.tx(ins(TOrders, order(10, 1, "placed")), ins(TOrderItems, item(101, 10, 7, 2, "10.00")), ins(TOrderItems, item(102, 10, 8, 1, "10.00")))
	s.tx(upd(TOrders, order(10, 1, "paid")))
	s.tx(upd(TOrders, order(10, 1, "shipped")))
	o := order(10, 1, "delivered")
	o["paid_at"], o["shipped_at"], o["delivered_at"] = ts(200), ts(300), ts(400)
	s.tx(upd(TOrders, o))
	// order 11: placed then cancelled
	s.tx(ins(TOrders, order(11, 2, "placed")), ins(TOrderItems, item(111, 11, 7, 1, "30.00")))
	c := order(11, 2, "cancelled")
	c["cancelled_at"] = ts(150)
	s.tx(upd(TOrders, c))
	// order 12: placed then deleted (items cascade)
	s.tx(ins(TOrders, order(12, 2, "placed")), ins(TOrderItems, item(121, 12, 8, 3, "10.00")))
	s.tx(del(TOrderItems, 121), del(TOrders, 12))
	// customer 1 changes segment: order 13 before the change, order 14 after
	s.tx(ins(TOrders, order(13, 1, "placed")), ins(TOrderItems, item(131, 13, 7, 3, "10.00")))
	s.tx(upd(TCustomers, customer(1, "platinum", "asia_pacific")))
	s.tx(ins(TOrders, order(14, 1, "placed")), ins(TOrderItems, item(141, 14, 8, 3, "10.00")))
	s.tx(upd(TOrders, order(13, 1, "paid")))
	// an item added to order 10 in a transaction that leaves the order row alone
	s.tx(ins(TOrderItems, item(103, 10, 8, 4, "10.00")))
}

func TestEndToEndFacts(t *testing.T) {
	s := newStream(t, 3)
	e := openDB(t)
	workload(s)
	reg := prometheus.NewRegistry()
	stop := runTransformer(t, s, e, testenv.Name("g"), reg)
	waitEvents(t, e, s.events)
	lag := func() (float64, bool) {
		mfs, _ := reg.Gather()
		sum, found := 0.0, false
		for _, mf := range mfs {
			if mf.GetName() == "orderflow_transform_consumer_lag" {
				for _, m := range mf.GetMetric() {
					sum += m.GetGauge().GetValue()
					found = true
				}
			}
		}
		return sum, found
	}
	deadline := time.Now().Add(10 * time.Second)
	for v, ok := lag(); (!ok || v != 0) && time.Now().Before(deadline); v, ok = lag() {
		time.Sleep(100 * time.Millisecond)
	}
	if v, ok := lag(); !ok || v != 0 {
		t.Errorf("consumer lag %v (exported %v) once caught up, want 0", v, ok)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	check(t, "delivered order", factOf(t, e, 10), map[string]string{"status": "delivered", "customer_segment": "silver", "item_count": "3",
		"units": "7", "total": "30", "_is_deleted": "0", "delivered_at": t0.Add(400 * time.Second).String()})
	check(t, "cancelled order", factOf(t, e, 11), map[string]string{"status": "cancelled", "customer_segment": "gold", "item_count": "1", "cancelled_at": t0.Add(150 * time.Second).String()})
	if f := factOf(t, e, 12); f != nil {
		t.Errorf("deleted order 12 still visible after FINAL: %v", f)
	}
	check(t, "order before segment change", factOf(t, e, 13), map[string]string{"status": "paid", "customer_segment": "silver", "customer_region": "europe"})
	check(t, "order after segment change", factOf(t, e, 14), map[string]string{"status": "placed", "customer_segment": "platinum", "customer_region": "asia_pacific"})
	lines := query(t, e, "SELECT order_id, item_id, product_name, line_total, customer_segment FROM order_lines FINAL ORDER BY item_id")
	if got := fmt.Sprint(lines); got != "[[10 101 Go book 20 silver] [10 102 Kafka book 10 silver] [10 103 Kafka book 40 silver] [11 111 Go book 30 gold] [13 131 Go book 30 silver] [14 141 Kafka book 30 platinum]]" {
		t.Errorf("order_lines: %s", got)
	}
	if got := fmt.Sprint(query(t, e, "SELECT customer_id, segment FROM customers FINAL ORDER BY customer_id")); got != "[[1 platinum] [2 gold]]" {
		t.Errorf("customers dimension: %s", got)
	}
	if got := fmt.Sprint(query(t, e, "SELECT customer_id, segment FROM customer_history FINAL ORDER BY customer_id, valid_from_lsn")); got != "[[1 silver] [1 platinum] [2 gold]]" {
		t.Errorf("customer_history: %s", got)
	}
	if got := fmt.Sprint(query(t, e, "SELECT count() FROM raw_orders FINAL")); got != "[[4]]" {
		t.Errorf("raw_orders after FINAL: %s (order 12 deleted)", got)
	}

	// Replay: a new group reads every topic from the beginning; nothing changes.
	before := snapshot(t, e)
	stop = runTransformer(t, s, e, testenv.Name("g"), nil)
	time.Sleep(3 * time.Second) // let it consume everything again
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if after := snapshot(t, e); after != before {
		t.Errorf("replay changed the tables:\n--- before\n%s\n--- after\n%s", before, after)
	}
}

// TestAsOfOrderSeenFirst: a customer update and an order for that customer
// commit in that order, but the transformer sees the order first (the
// customer's event reaches Kafka only after the order's fact was written).
// The fact ends with the attributes as of the order.
func TestAsOfOrderSeenFirst(t *testing.T) {
	s := newStream(t, 2)
	e := openDB(t)
	s.tx(ins(TCustomers, customer(1, "silver", "europe")))
	stop := runTransformer(t, s, e, testenv.Name("g"), nil)
	waitEvents(t, e, s.events)
	updLSN := s.lsn + 100 // the customer update commits first...
	s.lsn += 100
	s.tx(ins(TOrders, order(20, 1, "placed"))) // ...the order after it, but is published first
	waitEvents(t, e, s.events)
	check(t, "before the update arrives", factOf(t, e, 20), map[string]string{"customer_segment": "silver"})
	if err := s.cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	s.produce(context.Background(), upd(TCustomers, customer(1, "gold", "latin_america")), updLSN)
	if err := s.cl.EndTransaction(context.Background(), kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	waitEvents(t, e, s.events)
	deadline := time.Now().Add(20 * time.Second)
	for factOf(t, e, 20)["customer_segment"] != "gold" && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	check(t, "after the late update", factOf(t, e, 20), map[string]string{"customer_segment": "gold", "customer_region": "latin_america", "customer_version": fmt.Sprint(updLSN)})
}

// TestTwoInstancesSameAsOne: two transformers in one group build the same
// tables as one transformer alone.
func TestTwoInstancesSameAsOne(t *testing.T) {
	s := newStream(t, 4)
	one, two := openDB(t), openDB(t)
	for i := int64(1); i <= 20; i++ {
		s.tx(ins(TCustomers, customer(i, []string{"bronze", "silver", "gold"}[i%3], "europe")), ins(TProducts, product(100+i, fmt.Sprint("P", i))))
	}
	regA, regB := prometheus.NewRegistry(), prometheus.NewRegistry()
	stopA := runTransformer(t, s, &lockedWriter{w: two}, "two-"+s.prefix, regA)
	stopB := runTransformer(t, s, &lockedWriter{w: two}, "two-"+s.prefix, regB)
	for i := int64(1); i <= 200; i++ {
		cust := 1 + i%20
		s.tx(ins(TOrders, order(1000+i, cust, "placed")), ins(TOrderItems, item(5000+i, 1000+i, 100+1+i%20, int(1+i%4), "10.00")))
		if i%5 == 0 {
			s.tx(upd(TOrders, order(1000+i, cust, "paid")))
		}
		if i%17 == 0 {
			s.tx(upd(TCustomers, customer(cust, "platinum", "asia_pacific")))
		}
		if i%23 == 0 {
			s.tx(del(TOrderItems, 5000+i), del(TOrders, 1000+i))
		}
		if i%13 == 0 && i%23 != 0 {
			s.tx(ins(TOrderItems, item(9000+i, 1000+i, 100+1+i%20, 1, "5.00")))
		}
	}
	waitEvents(t, two, s.events)
	if err := stopA(); err != nil {
		t.Fatal(err)
	}
	if err := stopB(); err != nil {
		t.Fatal(err)
	}
	for name, reg := range map[string]*prometheus.Registry{"A": regA, "B": regB} {
		n := 0.0
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() == "orderflow_transform_events_total" {
				for _, m := range mf.GetMetric() {
					n += m.GetCounter().GetValue()
				}
			}
		}
		t.Logf("instance %s applied %v events", name, n)
		if n == 0 {
			t.Errorf("instance %s applied no events: the group did not split the work", name)
		}
	}
	stop := runTransformer(t, s, one, "one-"+s.prefix, nil)
	waitEvents(t, one, s.events)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	a, b := snapshot(t, one), snapshot(t, two)
	if a != b {
		t.Errorf("two instances differ from one:\n--- one\n%s\n--- two\n%s", a, b)
	}
	if got := fmt.Sprint(query(t, one, "SELECT count() FROM customer_orders FINAL")); got != "[[192]]" {
		t.Errorf("customer_orders: %s, want 192 (200 - 8 deleted)", got)
	}
}

// TestPoisonToDLQ: an undecodable event goes to <prefix>.dlq with its reason
// and the stream goes on.
func TestPoisonToDLQ(t *testing.T) {
	s := newStream(t, 1)
	e := openDB(t)
	reg := prometheus.NewRegistry()
	s.tx(ins(TCustomers, customer(1, "silver", "europe")))
	s.raw(TOrders, `{"id":99}`, []byte(`{"op":"c","after":{"id":99},"source":`))
	bad := order(98, 1, "placed")
	bad["total"] = "lots"
	s.tx(ins(TOrders, bad))
	s.events-- // the bad order never reaches the change log
	s.tx(ins(TOrders, order(30, 1, "placed")))
	stop := runTransformer(t, s, e, testenv.Name("g"), reg)
	waitEvents(t, e, s.events)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	check(t, "order after the poison ones", factOf(t, e, 30), map[string]string{"status": "placed"})
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.brokers...), kgo.ConsumeTopics(s.prefix+".dlq"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var reasons []string
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for len(reasons) < 2 && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			for _, h := range r.Headers {
				if h.Key == "reason" {
					reasons = append(reasons, string(h.Value))
				}
			}
		})
	}
	sort.Strings(reasons)
	if fmt.Sprint(reasons) != "[decode invalid_column]" {
		t.Errorf("DLQ reasons: %v", reasons)
	}
	mfs, _ := reg.Gather()
	found := false
	for _, mf := range mfs {
		if mf.GetName() == "orderflow_transform_dlq_total" {
			found = true
		}
	}
	if !found {
		t.Error("orderflow_transform_dlq_total not exported")
	}
}
