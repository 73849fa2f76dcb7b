package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

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
