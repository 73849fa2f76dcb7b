package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/internal/envelope"
	"github.com/orderflow/orderflow/internal/testenv"
	"github.com/orderflow/orderflow/queries"
	"github.com/orderflow/orderflow/sinks/chdb"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// backlogRows is ORDERFLOW_BENCH_BACKLOG_ROWS: unset for the default, "off"
// for no backlog mode (every batch at the MaxRows/MaxBytes/MaxAge limits).
func backlogRows() int {
	if os.Getenv("ORDERFLOW_BENCH_BACKLOG_ROWS") == "off" {
		return -1
	}
	return envInt("ORDERFLOW_BENCH_BACKLOG_ROWS", 0)
}

// benchProducer publishes synthetic source transactions fast: many source
// transactions per Kafka transaction, produced asynchronously.
type benchProducer struct {
	s   *stream
	ctx context.Context
	err atomic.Value
	wg  sync.WaitGroup
}

func (p *benchProducer) send(table string, op string, lsn uint64, after map[string]any) {
	val := benchValue(p.s.prefix, table, op, lsn, time.Now().UnixMilli(), after)
	p.wg.Add(1)
	p.s.cl.Produce(p.ctx, &kgo.Record{Topic: envelope.Topic(p.s.prefix, "public", table), Key: []byte(fmt.Sprintf(`{"id":%v}`, after["id"])), Value: val},
		func(_ *kgo.Record, err error) {
			if err != nil {
				p.err.Store(err)
			}
			p.wg.Done()
		})
	p.s.events++
}

func benchValue(prefix, table, op string, lsn uint64, tsMs int64, after map[string]any) []byte {
	conv := envelope.Row(after)
	e := &envelope.Event{Op: op, After: conv, TsMs: tsMs, Source: envelope.Source{Version: envelope.Version, Connector: "postgresql", Name: prefix,
		Schema: "public", Table: table, LSN: lsn, TxID: int64(lsn), TsMs: tsMs}}
	b, err := envelope.Encode(e)
	if err != nil {
		panic(err)
	}
	return b
}

func (p *benchProducer) flushTxn() error {
	p.wg.Wait()
	if err, _ := p.err.Load().(error); err != nil {
		return err
	}
	return p.s.cl.EndTransaction(p.ctx, kgo.TryCommit)
}

// backlog publishes nOrders orders (each with 2 items, paid later) on top of
// 1,000 customers and 100 products. Returns the number of orders.
func backlog(b testing.TB, s *stream, nOrders int) {
	p := &benchProducer{s: s, ctx: context.Background()}
	const perTxn = 2000
	inTxn := 0
	open := func() {
		if inTxn == 0 {
			if err := s.cl.BeginTransaction(); err != nil {
				b.Fatal(err)
			}
		}
	}
	begin := func() {
		inTxn++
		if inTxn == perTxn {
			if err := p.flushTxn(); err != nil {
				b.Fatal(err)
			}
			inTxn = 0
		}
	}
	for i := int64(1); i <= 1000; i++ {
		s.lsn++
		open()
		p.send(TCustomers, "c", s.lsn, customer(i, []string{"bronze", "silver", "gold", "platinum"}[i%4], "europe"))
		begin()
	}
	for i := int64(1); i <= 100; i++ {
		s.lsn++
		open()
		p.send(TProducts, "c", s.lsn, product(i, fmt.Sprint("P", i)))
		begin()
	}
	for i := int64(1); i <= int64(nOrders); i++ {
		s.lsn++
		open()
		p.send(TOrders, "c", s.lsn, order(i, 1+i%1000, "placed"))
		p.send(TOrderItems, "c", s.lsn, item(2*i, i, 1+i%100, 1, "10.00"))
		p.send(TOrderItems, "c", s.lsn, item(2*i+1, i, 1+(i+7)%100, 2, "10.00"))
		begin()
		if i%2 == 0 {
			s.lsn++
			open()
			p.send(TOrders, "u", s.lsn, order(i, 1+i%1000, "paid"))
			begin()
		}
	}
	if inTxn > 0 {
		if err := p.flushTxn(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDrain measures transformer + chDB sink throughput on a backlog:
// ORDERFLOW_BENCH_ORDERS orders (default 100,000; 2 items each, half of them
// also paid: 3.5 events per order) already in Kafka, drained from the start.
// Reports fact_rows/s (customer_orders + order_lines) and events/s end to end
// and after the first flush (state loaded, group joined), and the process's
// CPU per fact row (transformer, inserts, merges: steadier than the rates
// when the box is shared).
//
//	go test -run '^$' -bench Drain -benchtime 1x ./pipeline/
func BenchmarkDrain(b *testing.B) {
	n := envInt("ORDERFLOW_BENCH_ORDERS", 100_000)
	s := newStream(b, 3)
	start := time.Now()
	backlog(b, s, n)
	b.Logf("backlog: %d events produced in %.1fs", s.events, time.Since(start).Seconds())
	for i := 0; i < b.N; i++ {
		e := openDB(b)
		reg := prometheus.NewRegistry()
		par := envInt("ORDERFLOW_BENCH_INSERTERS", 1)
		w := benchWriter(b, e, par)
		var facts, factRows, rows, clog, firstFlush atomic.Int64
		var firstFacts, firstEvents int64 // written by the first flush (outside the after-join window)
		done := make(chan struct{})
		var once sync.Once
		tr, err := New(Config{Brokers: s.brokers, TopicPrefix: s.prefix, Group: testenv.Name("bench"), InsertParallelism: par,
			MaxRows: envInt("ORDERFLOW_BENCH_MAX_ROWS", 0), MaxBytes: envInt("ORDERFLOW_BENCH_MAX_BYTES", 0), MaxAge: time.Duration(envInt("ORDERFLOW_BENCH_MAX_AGE_MS", 0)) * time.Millisecond,
			BacklogRows: backlogRows(), BacklogBytes: envInt("ORDERFLOW_BENCH_BACKLOG_BYTES", 0), BacklogAge: time.Duration(envInt("ORDERFLOW_BENCH_BACKLOG_AGE_MS", 0)) * time.Millisecond,
			onFlush: func(_ []Micros, byTable map[string]int, at time.Time) {
				if firstFlush.CompareAndSwap(0, at.UnixNano()) {
					firstFacts = int64(byTable[OutCustomerOrders] + byTable[OutOrderLines])
					firstEvents = int64(byTable[OutChangeLog])
				}
				for t, c := range byTable {
					rows.Add(int64(c))
					if t == OutCustomerOrders {
						facts.Add(int64(c))
					}
					if t == OutCustomerOrders || t == OutOrderLines {
						factRows.Add(int64(c))
					}
				}
				if clog.Add(int64(byTable[OutChangeLog])) >= int64(s.events) {
					once.Do(func() { close(done) })
				}
			}}, w, reg, nil)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		b.ResetTimer()
		stopProfile := startDrainProfile(b)
		t0 := time.Now()
		cpu0 := cpuTime()
		go func() { errc <- tr.Run(ctx) }()
		var loaded atomic.Int64 // state loaded (Ready), ns after t0
		go func() {
			select {
			case <-tr.Ready():
				loaded.Store(int64(time.Since(t0)))
			case <-done:
			}
		}()
		select {
		case <-done:
		case err := <-errc:
			b.Fatal(err)
		case <-time.After(10 * time.Minute):
			b.Fatal("drain did not finish")
		}
		el := time.Since(t0)
		steady := time.Since(time.Unix(0, firstFlush.Load()))
		cpu := cpuTime() - cpu0
		stopProfile()
		b.StopTimer()
		cancel()
		<-errc
		// The merges of the drain's parts go on after its last insert; the
		// CPU until they settle is the drain's whole cost (a batch size that
		// defers merges does not look cheaper than it is).
		settle := settleMerges(b, e)
		cpuSettled := cpuTime() - cpu0
		b.ReportMetric(float64(facts.Load())/el.Seconds(), "facts/s")
		b.ReportMetric(float64(s.events)/el.Seconds(), "events/s")
		b.ReportMetric(float64(rows.Load())/el.Seconds(), "rows/s")
		// After the join: what the flushes after the first one wrote, over
		// the time from the first flush to the last (state load, group join
		// and the first batch left out).
		b.ReportMetric(float64(int64(s.events)-firstEvents)/steady.Seconds(), "events/s_after_join")
		// Fact rows (DESIGN §2: customer_orders + order_lines), end to end
		// and after the join (same window as events/s_after_join).
		b.ReportMetric(float64(factRows.Load())/el.Seconds(), "fact_rows/s")
		b.ReportMetric(float64(factRows.Load()-firstFacts)/steady.Seconds(), "fact_rows/s_after_join")
		// CPU of the whole process (transformer, chDB inserts and merges)
		// per fact row: less noisy than the rates on a shared box.
		b.ReportMetric(float64(cpu.Microseconds())/float64(max(factRows.Load(), 1)), "cpu_us/fact_row")
		b.ReportMetric(float64(cpuSettled.Microseconds())/float64(max(factRows.Load(), 1)), "cpu_us/fact_row_settled")
		b.Logf("state loaded after %.2fs; after the first flush (state loaded, group joined): %.2fs; process CPU during the drain %.2fs, until merges settled (%.1fs later) %.2fs",
			time.Duration(loaded.Load()).Seconds(), steady.Seconds(), cpu.Seconds(), settle.Seconds(), cpuSettled.Seconds())
		logHist(b, reg, "orderflow_transform_flush_seconds")
		logHist(b, reg, "orderflow_transform_batch_rows")
		b.Logf("drained %d events into %d rows (%d customer_orders, %d fact rows) in %.2fs (state load included)", s.events, rows.Load(), facts.Load(), factRows.Load(), el.Seconds())
		logMerges(b, e)
	}
}

// startDrainProfile starts a CPU profile of the drain alone (the backlog's
// production left out) into the file ORDERFLOW_BENCH_CPUPROFILE names, if
// set; the returned func stops it.
//
//	ORDERFLOW_BENCH_CPUPROFILE=/tmp/drain.pprof go test -run '^$' -bench 'Drain$' -benchtime 1x ./pipeline/
func startDrainProfile(b *testing.B) (stop func()) {
	path := os.Getenv("ORDERFLOW_BENCH_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatalf("cpu profile: %v (a -test.cpuprofile is running already?)", err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Error(err)
		}
	}
}

// settleMerges waits until the engine has run no merge of e's database for
// a second (at most two minutes) and returns how long that took.
func settleMerges(b *testing.B, e *chdb.Engine) time.Duration {
	start := time.Now()
	for idle := 0; idle < 5 && time.Since(start) < 2*time.Minute; {
		time.Sleep(200 * time.Millisecond)
		res, err := e.Query(context.Background(), "SELECT count() FROM system.merges WHERE database = currentDatabase()", nil)
		if err != nil {
			b.Logf("settle merges: %v", err)
			break
		}
		if n, _ := res.Rows[0][0].(uint64); n == 0 {
			idle++
		} else {
			idle = 0
		}
	}
	return time.Since(start)
}

// logMerges logs, per table, the parts and rows the inserts wrote (parts of
// one block each) and the rows background merges rewrote so far (parts
// spanning several blocks, active or merged away again since): the merge
// work the drain caused. Tables written once are left out (a benchmark's
// log is cut after 10 lines without -test.v).
func logMerges(b *testing.B, e *chdb.Engine) {
	res, err := e.Query(context.Background(), `SELECT table, countIf(min_block_number = max_block_number), sumIf(rows, min_block_number = max_block_number), sumIf(rows, min_block_number < max_block_number),
       countIf(active), sumIf(data_compressed_bytes, min_block_number = max_block_number), sumIf(data_uncompressed_bytes, min_block_number = max_block_number)
FROM system.parts WHERE database = currentDatabase() GROUP BY table HAVING countIf(min_block_number = max_block_number) > 1 ORDER BY table`, nil)
	if err != nil {
		b.Logf("merge figures: %v", err)
		return
	}
	for _, r := range res.Rows {
		ins, merged := r[2].(uint64), r[3].(uint64)
		b.Logf("%-18s inserted %4d parts, %8d rows (%6.1f MB compressed of %6.1f MB); merges rewrote %8d rows (%.2f per inserted row); %d active parts",
			r[0], r[1], ins, float64(r[5].(uint64))/1e6, float64(r[6].(uint64))/1e6, merged, float64(merged)/float64(max(ins, 1)), r[4])
	}
}

// BenchmarkFreshness publishes ORDERFLOW_BENCH_RATE changes/s (default
// 5,000) for ORDERFLOW_BENCH_SECONDS (default 10) in 50 ms Kafka
// transactions, and reports p50/p99 of (insert acknowledged − event commit
// time) over every event.
//
//	go test -run '^$' -bench Freshness -benchtime 1x ./pipeline/
func BenchmarkFreshness(b *testing.B) {
	rate := envInt("ORDERFLOW_BENCH_RATE", 5000)
	secs := envInt("ORDERFLOW_BENCH_SECONDS", 10)
	s := newStream(b, 3)
	backlog(b, s, 1) // customers and products
	for i := 0; i < b.N; i++ {
		e := openDB(b)
		var mu sync.Mutex
		var lat []float64
		reg := prometheus.NewRegistry()
		par := envInt("ORDERFLOW_BENCH_INSERTERS", 1)
		w := benchWriter(b, e, par)
		tr, err := New(Config{Brokers: s.brokers, TopicPrefix: s.prefix, Group: testenv.Name("bench"), InsertParallelism: par,
			onFlush: func(commits []Micros, _ map[string]int, at time.Time) {
				mu.Lock()
				for _, c := range commits {
					lat = append(lat, float64(Micros(at.UnixMicro())-c)/1e6)
				}
				mu.Unlock()
			}}, w, reg, nil)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- tr.Run(ctx) }()
		<-tr.Ready()
		time.Sleep(2 * time.Second) // join the group
		mu.Lock()
		lat = lat[:0]
		mu.Unlock()
		stopRefresh := refreshLoad(b, e)
		p := &benchProducer{s: s, ctx: context.Background()}
		tick := time.NewTicker(50 * time.Millisecond)
		perTick := rate / 20
		oid := int64(1_000_000)
		sent := 0
		end := time.Now().Add(time.Duration(secs) * time.Second)
		for now := range tick.C {
			if now.After(end) {
				break
			}
			if err := s.cl.BeginTransaction(); err != nil {
				b.Fatal(err)
			}
			for j := 0; j < perTick; j += 3 {
				oid++
				s.lsn++
				p.send(TOrders, "c", s.lsn, order(oid, 1+oid%1000, "placed"))
				p.send(TOrderItems, "c", s.lsn, item(2*oid, oid, 1+oid%100, 1, "10.00"))
				p.send(TOrderItems, "c", s.lsn, item(2*oid+1, oid, 1+(oid+7)%100, 2, "10.00"))
				sent += 3
			}
			if err := p.flushTxn(); err != nil {
				b.Fatal(err)
			}
		}
		tick.Stop()
		stopRefresh()
		time.Sleep(2 * time.Second)
		cancel()
		<-errc
		mu.Lock()
		sort.Float64s(lat)
		pct := func(q float64) float64 {
			if len(lat) == 0 {
				return 0
			}
			return lat[min(len(lat)-1, int(q*float64(len(lat))))]
		}
		b.ReportMetric(pct(0.50), "p50_s")
		b.ReportMetric(pct(0.99), "p99_s")
		b.ReportMetric(float64(sent)/float64(secs), "changes/s")
		b.Logf("%d changes at %d/s: freshness p50 %.3fs p99 %.3fs max %.3fs over %d events", sent, rate, pct(0.5), pct(0.99), pct(1), len(lat))
		mu.Unlock()
		logHist(b, reg, "orderflow_transform_flush_seconds")
		logHist(b, reg, "orderflow_transform_batch_rows")
	}
}

// refreshLoad runs the reports' rollup refresh over and over during a
// freshness run when ORDERFLOW_BENCH_REFRESH_ORDERS=N is set: it first fills
// the facts with N synthetic orders over 24 months (merged), then recomputes
// every month again and again until the returned stop is called; that is the
// worst case of the transformer's refresher (which recomputes only settled
// months once a -rollup-interval). The refresh runs on its own connection, as
// in orderflow transform; ORDERFLOW_BENCH_REFRESH_SHARED=1 runs it on the
// sink's, to see what that costs the inserts.
func refreshLoad(b *testing.B, e *chdb.Engine) (stop func()) {
	n := envInt("ORDERFLOW_BENCH_REFRESH_ORDERS", 0)
	if n == 0 {
		return func() {}
	}
	ctx := context.Background()
	t0 := time.Now()
	fill := fmt.Sprintf(`INSERT INTO customer_orders (order_id, customer_id, customer_segment, customer_region, customer_country, status, placed_at, total, _version, _is_deleted)
SELECT toInt64(number + 100000000), toInt64(cityHash64(number, 1) %% 200000 + 1), ['bronze','silver','gold','platinum'][1 + cityHash64(number, 2) %% 4],
       'europe', 'DE', 'delivered', toDateTime64(1704067200 + intDiv(number * 63158400, %d), 6, 'UTC'), toDecimal64(10 + number %% 200, 2), 1, 0
FROM numbers(%d)`, n, n)
	if err := e.Exec(ctx, fill); err != nil {
		b.Fatal(err)
	}
	if err := e.Exec(ctx, "OPTIMIZE TABLE customer_orders FINAL"); err != nil {
		b.Fatal(err)
	}
	b.Logf("refresh load: %d synthetic orders filled in %s", n, time.Since(t0).Round(time.Millisecond))
	re := e
	if os.Getenv("ORDERFLOW_BENCH_REFRESH_SHARED") == "" {
		var err error
		if re, err = chdb.Open(ctx, chdb.Options{Lib: testenv.ChdbLib(b), Path: chdbDir, Database: e.Database()}); err != nil {
			b.Fatal(err)
		}
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		months, rounds := 0, 0
		for rctx.Err() == nil {
			// forget the recorded months so that every round recomputes all
			if err := re.Exec(rctx, "TRUNCATE TABLE rollup_refreshes"); err != nil {
				break
			}
			st, err := queries.RefreshRollupSettled(rctx, re, slog.New(slog.DiscardHandler), 0)
			months += st.Months
			if err != nil {
				if rctx.Err() == nil {
					b.Errorf("refresh load: %v", err)
				}
				break
			}
			rounds++
		}
		b.Logf("refresh load: %d whole rounds, %d months recomputed during the run (own connection: %v)", rounds, months, re != e)
	}()
	return func() {
		cancel()
		<-done
		if re != e {
			_ = re.Close()
		}
	}
}

// cpuTime is the process's user + system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func logHist(b *testing.B, reg *prometheus.Registry, name string) {
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				h := m.GetHistogram()
				if c := h.GetSampleCount(); c > 0 {
					b.Logf("%s: %d samples, mean %.4f", name, c, h.GetSampleSum()/float64(c))
				}
			}
		}
	}
}

// BenchmarkCore is the pure transform cost per event, without Kafka or
// ClickHouse: decode, side state, group path, rows into a batch (an order
// with two items and a later status change: 4 events per op).
//
//	go test -run '^$' -bench Core ./pipeline/
func BenchmarkCore(b *testing.B) {
	s := NewState()
	bt := NewBatch()
	var lsn uint64
	for i := int64(1); i <= 1000; i++ {
		lsn++
		v := benchValue("of", TCustomers, "c", lsn, 1, customer(i, "gold", "europe"))
		ev, _, _, _ := decodeEvent(v)
		_ = s.ApplySide(TCustomers, ev)
	}
	for i := int64(1); i <= 100; i++ {
		lsn++
		ev, _, _, _ := decodeEvent(benchValue("of", TProducts, "c", lsn, 1, product(i, "P")))
		_ = s.ApplySide(TProducts, ev)
	}
	type rec struct {
		table string
		v     []byte
	}
	var recs []rec
	for i := int64(1); i <= 1000; i++ {
		lsn++
		recs = append(recs, rec{TOrderItems, benchValue("of", TOrderItems, "c", lsn, 1, item(2*i, i, 1+i%100, 1, "10.00"))},
			rec{TOrderItems, benchValue("of", TOrderItems, "c", lsn, 1, item(2*i+1, i, 1+(i+7)%100, 2, "10.00"))},
			rec{TOrders, benchValue("of", TOrders, "c", lsn, 1, order(i, 1+i%1000, "placed"))})
		lsn++
		recs = append(recs, rec{TOrders, benchValue("of", TOrders, "u", lsn, 1, order(i, 1+i%1000, "paid"))})
	}
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		r := recs[n%len(recs)]
		ev, rb, ra, err := decodeEventLazy(r.v)
		if err != nil {
			b.Fatal(err)
		}
		if r.table != TOrders {
			ev2, rb2, ra2, _ := decodeEventLazy(r.v) // the side reader's own decode
			if err := s.applySide(r.table, ev2, rb2, ra2); err != nil {
				b.Fatal(err)
			}
		}
		if err := s.ApplyGroup(bt, Rec{Table: r.table, Event: ev, rawBefore: rb, rawAfter: ra}); err != nil {
			b.Fatal(err)
		}
		if bt.Rows() > 50000 {
			bt.Reset()
		}
	}
}

// benchWriter is e, or a pool of par connections to e's database
// (ORDERFLOW_BENCH_INSERTERS) for parallel table inserts.
func benchWriter(b *testing.B, e *chdb.Engine, par int) Writer {
	if par <= 1 {
		return e
	}
	ws := []Writer{e}
	for j := 1; j < par; j++ {
		e2, err := chdb.Open(context.Background(), chdb.Options{Lib: testenv.ChdbLib(b), Path: chdbDir, Database: e.Database()})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = e2.Close() })
		ws = append(ws, e2)
	}
	return Pool(ws...)
}
