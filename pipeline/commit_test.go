package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/internal/envelope"
	"github.com/orderflow/orderflow/internal/testenv"
)

// flakyWriter fails its first insert after a delay (a sink that times out
// once, then recovers) and passes every later insert through.
type flakyWriter struct {
	mu     sync.Mutex
	w      Writer
	failed bool
	delay  time.Duration
}

var errSinkDown = errors.New("sink unavailable")

func (f *flakyWriter) Insert(ctx context.Context, table string, cols []string, rows [][]any) error {
	f.mu.Lock()
	first := !f.failed
	f.failed = true
	f.mu.Unlock()
	if first {
		time.Sleep(f.delay)
		return errSinkDown
	}
	return f.w.Insert(ctx, table, cols, rows)
}

// TestFailedFlushCommitsNothingLater: a batch whose write fails (the sink
// was down past the retries) ends the transformer, and no later batch of
// that process may commit its offsets, not even the one flushed when the
// group is left on the way out (the sink is back by then): its offsets lie
// past the failed batch's events, which would then never be written. The
// restarted transformer writes every event.
func TestFailedFlushCommitsNothingLater(t *testing.T) {
	s := newStream(t, 1)
	e := openDB(t)
	for i := int64(1); i <= 5; i++ {
		s.tx(ins(TCustomers, customer(i, "silver", "europe")), ins(TProducts, product(100+i, fmt.Sprint("P", i))))
	}
	for i := int64(1); i <= 60; i++ {
		s.tx(ins(TOrders, order(i, 1+i%5, "placed")), ins(TOrderItems, item(10*i, i, 101+i%5, 1, "10.00")))
	}
	group := testenv.Name("g")
	// Small polls and a short age: the first batch is in flight (its write
	// stalls, then fails) while the next ones are built from the backlog.
	fw := &flakyWriter{w: e, delay: 500 * time.Millisecond}
	tr, err := New(Config{Brokers: s.brokers, TopicPrefix: s.prefix, Group: group, MaxAge: 10 * time.Millisecond, MaxPoll: 8, FlushAttempts: 1}, fw, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := tr.Run(ctx); !errors.Is(err, errSinkDown) {
		t.Fatalf("transformer ended with %v, want the failed flush (%v)", err, errSinkDown)
	}
	stop := runTransformer(t, s, e, group, nil)
	waitEvents(t, e, s.events)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(query(t, e, "SELECT count(), sum(item_count) FROM customer_orders FINAL")); got != "[[60 60]]" {
		t.Errorf("customer_orders FINAL: count and items %s, want [[60 60]]", got)
	}
}

// TestWarnsTruncatedTopic: a captured topic whose first events were deleted
// (retention, DeleteRecords) leaves the rebuilt state without their rows; the
// transformer says so at start, naming the partition.
func TestWarnsTruncatedTopic(t *testing.T) {
	s := newStream(t, 1)
	e := openDB(t)
	s.tx(ins(TCustomers, customer(1, "silver", "europe")), ins(TProducts, product(101, "P1")))
	for i := int64(1); i <= 10; i++ {
		s.tx(ins(TOrders, order(i, 1, "placed")), ins(TOrderItems, item(10*i, i, 101, 1, "10.00")))
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	orders := envelope.Topic(s.prefix, "public", TOrders)
	var del kadm.Offsets
	del.Add(kadm.Offset{Topic: orders, Partition: 0, At: 5})
	resp, err := kadm.NewClient(cl).DeleteRecords(context.Background(), del)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("delete records: %v", err)
	}
	var logs syncBuffer
	tr, err := New(Config{Brokers: s.brokers, TopicPrefix: s.prefix, Group: testenv.Name("g"), MaxAge: 20 * time.Millisecond}, e, nil,
		slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx) }()
	select {
	case <-tr.Ready():
	case err := <-done:
		t.Fatalf("transformer ended: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("transformer not ready")
	}
	cancel()
	<-done
	want := fmt.Sprintf("topic=%s partition=0 start_offset=5", orders)
	if !strings.Contains(logs.String(), "no longer starts at offset 0") || !strings.Contains(logs.String(), want) {
		t.Errorf("log has no warning with %q:\n%s", want, logs.String())
	}
	if strings.Contains(logs.String(), envelope.Topic(s.prefix, "public", TCustomers)) {
		t.Errorf("warning for an untouched topic:\n%s", logs.String())
	}
}

// syncBuffer is a bytes.Buffer safe for the logger's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
