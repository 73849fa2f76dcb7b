package pipeline

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/internal/envelope"
	"github.com/orderflow/orderflow/internal/testenv"
	"github.com/orderflow/orderflow/sinks/chdb"
)

// The backlog limits apply exactly while the summed consumer lag is at least
// MaxRows events or a poll came back full, and never when they are turned
// off.
func TestBacklogLimitsFollowLag(t *testing.T) {
	newT := func(backlogRows int) *Transformer {
		tr, err := New(Config{Brokers: []string{"127.0.0.1:1"}, TopicPrefix: "p", MaxRows: 100, MaxAge: time.Hour,
			BacklogRows: backlogRows, BacklogAge: time.Hour}, nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	fill := func(tr *Transformer, n int) {
		for i := tr.batch.Rows(); i < n; i++ {
			tr.batch.add(OutChangeLog, rowKey{}, 0, []any{"orders", fmt.Sprint(i), "c", uint64(i), int64(i), Micros(0), []byte("{}"), []byte("{}"), uint64(i)})
		}
	}
	tr := newT(1000)
	tr.lag = map[tp]int64{{"a", 0}: 60, {"b", 1}: 39}
	tr.reportLag(false)
	fill(tr, 150)
	if tr.behind || !tr.due() {
		t.Fatalf("lag 99 < MaxRows 100: behind %v, due %v at 150 rows; want not behind, due", tr.behind, tr.due())
	}
	if got := testutil.ToFloat64(tr.m.backlog); got != 0 {
		t.Fatalf("backlog gauge %v, want 0", got)
	}
	tr.lag[tp{"b", 1}] = 40
	tr.reportLag(false)
	if !tr.behind || tr.due() {
		t.Fatalf("lag 100: behind %v, due %v at 150 rows; want behind, not due", tr.behind, tr.due())
	}
	if got := testutil.ToFloat64(tr.m.backlog); got != 1 {
		t.Fatalf("backlog gauge %v, want 1", got)
	}
	fill(tr, 1000)
	if !tr.due() {
		t.Fatal("behind with 1000 rows (BacklogRows): not due")
	}
	tr.lag[tp{"a", 0}] = -5 // a negative lag (watermark raced the fetch) counts as 0
	tr.lag[tp{"b", 1}] = 99
	tr.reportLag(false)
	if tr.behind {
		t.Fatal("lag 99 (one partition negative): behind")
	}
	tr.reportLag(true) // a full poll: more records buffered than taken
	if !tr.behind {
		t.Fatal("lag 99 and a full poll: not behind")
	}

	for _, off := range []int{-1, 100, 50} {
		tr := newT(off)
		tr.lag = map[tp]int64{{"a", 0}: 1 << 40}
		tr.reportLag(true)
		fill(tr, 150)
		if tr.behind || !tr.due() {
			t.Fatalf("BacklogRows %d (off): behind %v, due %v at 150 rows", off, tr.behind, tr.due())
		}
	}
}

// On a real backlog the transformer writes batches far above MaxRows while
// behind, returns to the freshness limits once caught up, and the facts are
// the same as with the backlog limits off.
func TestBacklogBatchesOnRealBacklog(t *testing.T) {
	s := newStream(t, 3)
	const orders = 3000
	backlog(t, s, orders) // 1,100 dimension events, then 3.5 events per order
	var barriers []float64
	run := func(backlogRows int) (maxRows int, snap string) {
		e := openDB(t)
		reg := prometheus.NewRegistry()
		var mu sync.Mutex
		var clog int
		done := make(chan struct{})
		var once sync.Once
		tr, err := New(Config{Brokers: s.brokers, TopicPrefix: s.prefix, Group: testenv.Name("backlog"),
			MaxRows: 1000, MaxPoll: 300, MaxAge: 100 * time.Millisecond,
			BacklogRows: backlogRows, BacklogAge: 5 * time.Second,
			onFlush: func(_ []Micros, byTable map[string]int, _ time.Time) {
				mu.Lock()
				defer mu.Unlock()
				n := 0
				for _, c := range byTable {
					n += c
				}
				maxRows = max(maxRows, n)
				if clog += byTable[OutChangeLog]; clog >= s.events {
					once.Do(func() { close(done) })
				}
			}}, e, reg, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- tr.Run(ctx) }()
		select {
		case <-done:
		case err := <-errc:
			t.Fatalf("transformer: %v", err)
		case <-time.After(2 * time.Minute):
			t.Fatal("backlog not drained in 2 minutes")
		}
		// Caught up: an idle poll reports lag 0 and leaves the backlog mode.
		deadline := time.Now().Add(10 * time.Second)
		for testutil.ToFloat64(tr.m.backlog) != 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if got := testutil.ToFloat64(tr.m.backlog); got != 0 {
			t.Errorf("backlog gauge %v after the drain, want 0", got)
		}
		cancel()
		<-errc
		barriers = append(barriers, testutil.ToFloat64(tr.m.barriers))
		got := query(t, e, "SELECT count(), countIf(status = 'paid'), toString(sum(total)) FROM customer_orders FINAL")[0]
		if fmt.Sprint(got...) != fmt.Sprint(uint64(orders), uint64(orders/2), "90000") {
			t.Errorf("customer_orders: count, paid, sum(total) = %v, want %d %d 90000", got, orders, orders/2)
		}
		if n := query(t, e, "SELECT count() FROM order_lines FINAL")[0][0]; n != uint64(2*orders) {
			t.Errorf("order_lines: %v rows, want %d", n, 2*orders)
		}
		checkChangeLogText(t, s, e)
		mu.Lock()
		defer mu.Unlock()
		return maxRows, snapshot(t, e)
	}
	bigRows, bigSnap := run(50_000)
	smallRows, smallSnap := run(-1)
	// With the limits off a batch ends within one poll (300 events, at most
	// 4 rows each) of MaxRows; behind, with the backlog limits, far above.
	if smallRows > 1000+4*300 {
		t.Errorf("backlog limits off: a batch of %d rows, want at most %d", smallRows, 1000+4*300)
	}
	if bigRows < 5000 {
		t.Errorf("backlog limits on: largest batch %d rows, want over 5,000 (the backlog is %d events)", bigRows, s.events)
	}
	if bigSnap != smallSnap {
		t.Errorf("tables differ with and without the backlog limits:\n%s\nvs\n%s", bigSnap, smallSnap)
	}
	// The state load listed the last stable offsets after the whole backlog
	// was committed: no poll of it (at least events/MaxPoll of them) needs
	// another barrier.
	for _, n := range barriers {
		if n < 1 || n > 3 {
			t.Errorf("%v barriers while draining %d events in polls of at most 300, want 1 to 3 (the state load's, and none per poll)", n, s.events)
		}
	}
	t.Logf("largest batch: %d rows with the backlog limits, %d without; barriers %v", bigRows, smallRows, barriers)
}

// A poll needs no new barrier only when every record lies below its
// partition's last stable offset from the last completed barrier.
func TestBelowStable(t *testing.T) {
	tr, err := New(Config{Brokers: []string{"127.0.0.1:1"}, TopicPrefix: "p"}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := func(topic string, p int32, off int64) *kgo.Record {
		return &kgo.Record{Topic: topic, Partition: p, Offset: off}
	}
	tr.stable = map[tp]int64{{"o", 0}: 10, {"o", 1}: 5}
	for _, c := range []struct {
		recs []*kgo.Record
		want bool
	}{
		{[]*kgo.Record{rec("o", 0, 0), rec("o", 0, 9), rec("o", 1, 4)}, true},
		{[]*kgo.Record{rec("o", 0, 9), rec("o", 0, 10)}, false}, // at the LSO: committed after the listing, perhaps
		{[]*kgo.Record{rec("o", 1, 4), rec("o", 2, 0)}, false},  // a partition the barrier did not list
		{nil, true},
	} {
		if got := tr.belowStable(c.recs); got != c.want {
			t.Errorf("belowStable(%v) = %v, want %v", c.recs, got, c.want)
		}
	}
	clear(tr.stable) // a barrier in progress or given up
	if tr.belowStable([]*kgo.Record{rec("o", 0, 0)}) {
		t.Error("belowStable with no completed barrier = true")
	}
}

// checkChangeLogText checks every change_log row's after image and event_id
// against the record it was made from, read again from Kafka: the group's
// records are recycled (their fetch buffers reused) once the batch whose
// rows reference their values is written, and not before.
func checkChangeLogText(t *testing.T, s *stream, e *chdb.Engine) {
	t.Helper()
	topics := map[string]string{}
	var names []string
	for _, tb := range CapturedTables {
		topics[envelope.Topic(s.prefix, "public", tb)] = tb
		names = append(names, envelope.Topic(s.prefix, "public", tb))
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.brokers...), kgo.ConsumeTopics(names...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	want := map[string]string{} // table, key, lsn -> after image
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for len(want) < s.events && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) {
			ev, _, after, err := decodeEvent(r.Value)
			if err != nil {
				t.Fatalf("%s offset %d: %v", r.Topic, r.Offset, err)
			}
			want[fmt.Sprint(topics[r.Topic], string(r.Key), ev.Source.LSN)] = string(after)
		})
	}
	rows := query(t, e, "SELECT table_name, key, lsn, op, before, after, event_id FROM change_log FINAL")
	if len(rows) != s.events || len(want) != s.events {
		t.Fatalf("change_log has %d rows, Kafka %d distinct events; want %d", len(rows), len(want), s.events)
	}
	for _, r := range rows {
		table, key, lsn, op, before, after := r[0].(string), r[1].(string), r[2].(uint64), r[3].(string), r[4].(string), r[5].(string)
		if w, ok := want[fmt.Sprint(table, key, lsn)]; !ok || after != w {
			t.Fatalf("change_log %s %s at %d: after %q, want %q (in Kafka: %v)", table, key, lsn, after, w, ok)
		}
		if id := eventHash(table, key, op, lsn, []byte(before), []byte(after)); r[6].(uint64) != id {
			t.Fatalf("change_log %s %s at %d: event_id %d, want %d", table, key, lsn, r[6], id)
		}
	}
}
