package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/orderflow/orderflow/internal/testenv"
)

// TestRestartRebuildsState: a transformer restarted in the same group
// resumes from the committed offsets with its order state rebuilt from the
// orders topic: a later status change keeps the placement's customer
// attributes and item count, and a delete whose "before" image carries only
// the key reaches the right fact.
func TestRestartRebuildsState(t *testing.T) {
	s := newStream(t, 2)
	e := openDB(t)
	group := testenv.Name("g")
	s.tx(ins(TCustomers, customer(1, "silver", "europe")), ins(TProducts, product(7, "Go book")))
	s.tx(ins(TOrders, order(40, 1, "placed")), ins(TOrderItems, item(401, 40, 7, 1, "10.00")), ins(TOrderItems, item(402, 40, 7, 2, "10.00")))
	s.tx(ins(TOrders, order(41, 1, "placed")), ins(TOrderItems, item(411, 41, 7, 1, "30.00")))
	stop := runTransformer(t, s, e, group, nil)
	waitEvents(t, e, s.events)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	s.tx(upd(TCustomers, customer(1, "gold", "north_america")))
	s.tx(upd(TOrders, order(40, 1, "paid")))
	s.tx(del(TOrderItems, 411), del(TOrders, 41))
	stop = runTransformer(t, s, e, group, nil)
	waitEvents(t, e, s.events)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	check(t, "order 40 after restart", factOf(t, e, 40), map[string]string{"status": "paid", "customer_segment": "silver", "customer_region": "europe", "item_count": "2", "units": "3"})
	if f := factOf(t, e, 41); f != nil {
		t.Errorf("order 41 deleted after the restart is still visible: %v", f)
	}
	if got := fmt.Sprint(query(t, e, "SELECT count() FROM customer_orders")); got == "[[0]]" {
		t.Error("no facts")
	}
}

// failingWriter passes the first n inserts through and fails every later
// one, like a process that dies in the middle of a flush: some tables of the
// batch are written, the others and the offset commit are not.
type failingWriter struct {
	mu sync.Mutex
	w  Writer
	n  int
}

var errCrash = errors.New("simulated crash")

func (f *failingWriter) Insert(ctx context.Context, table string, cols []string, rows [][]any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n <= 0 {
		return errCrash
	}
	f.n--
	return f.w.Insert(ctx, table, cols, rows)
}

// TestCrashMidFlush: the transformer dies at random points of a workload
// (mid-batch: some tables written, offsets not committed) and is restarted in
// the same group each time; at the end every table equals a clean run's.
func TestCrashMidFlush(t *testing.T) {
	s := newStream(t, 3)
	clean, crashy := openDB(t), openDB(t)
	for i := int64(1); i <= 10; i++ {
		s.tx(ins(TCustomers, customer(i, "silver", "europe")), ins(TProducts, product(100+i, fmt.Sprint("P", i))))
	}
	publish := func(from, to int64) {
		for i := from; i <= to; i++ {
			cust := 1 + i%10
			s.tx(ins(TOrders, order(i, cust, "placed")), ins(TOrderItems, item(10*i, i, 101+i%10, 1, "10.00")), ins(TOrderItems, item(10*i+1, i, 101+(i+3)%10, 2, "10.00")))
			if i%3 == 0 {
				s.tx(upd(TOrders, order(i, cust, "paid")))
			}
			if i%7 == 0 {
				s.tx(upd(TCustomers, customer(cust, []string{"gold", "bronze"}[i%2], "asia_pacific")))
			}
			if i%11 == 0 {
				s.tx(del(TOrderItems, 10*i), del(TOrderItems, 10*i+1), del(TOrders, i))
			}
		}
	}
	group := testenv.Name("g")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for round := int64(0); round < 4; round++ {
		publish(round*50+1, round*50+50)
		limit := rng.IntN(15)
		fw := &failingWriter{w: crashy, n: limit}
		tr, err := New(Config{Brokers: s.brokers, TopicPrefix: s.prefix, Group: group, MaxAge: 20 * time.Millisecond, MaxPoll: 50, FlushAttempts: 1}, fw, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		done := make(chan error, 1)
		go func() { done <- tr.Run(ctx) }()
		var runErr error
	wait:
		for {
			select {
			case runErr = <-done:
				break wait
			case <-time.After(200 * time.Millisecond):
				// everything written before the writer ran out: stop it
				if fmt.Sprint(query(t, crashy, "SELECT count() FROM change_log FINAL")[0][0]) == fmt.Sprint(s.events) {
					cancel()
				}
			}
		}
		cancel()
		if !errors.Is(runErr, errCrash) && !errors.Is(runErr, context.Canceled) {
			t.Fatalf("round %d: transformer ended with %v, want the simulated crash", round, runErr)
		}
		t.Logf("round %d: writer limit %d inserts, ended with %v", round, limit, runErr)
	}
	stop := runTransformer(t, s, crashy, group, nil)
	waitEvents(t, crashy, s.events)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	stop = runTransformer(t, s, clean, testenv.Name("g"), nil)
	waitEvents(t, clean, s.events)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if a, b := snapshot(t, clean), snapshot(t, crashy); a != b {
		t.Errorf("after crashes the tables differ from a clean run:\n--- clean\n%s\n--- crashed\n%s", a, b)
	}
	if got := fmt.Sprint(query(t, crashy, "SELECT count(), countIf(order_id % 11 = 0) FROM customer_orders FINAL")); got != "[[182 0]]" {
		t.Errorf("customer_orders FINAL: %s, want [[182 0]]", got)
	}
}

// TestRebalanceMidStream: of two transformers in one group, one leaves
// mid-stream; the other takes over its partitions (rebuilding the order
// state of the orders partitions it gains) and the tables end equal to a
// single transformer's.
func TestRebalanceMidStream(t *testing.T) {
	s := newStream(t, 4)
	one, two := openDB(t), openDB(t)
	for i := int64(1); i <= 10; i++ {
		s.tx(ins(TCustomers, customer(i, "silver", "europe")), ins(TProducts, product(100+i, fmt.Sprint("P", i))))
	}
	publish := func(from, to int64) {
		for i := from; i <= to; i++ {
			cust := 1 + i%10
			s.tx(ins(TOrders, order(i, cust, "placed")), ins(TOrderItems, item(10*i, i, 101+i%10, 1, "10.00")))
			if i%4 == 0 {
				s.tx(upd(TCustomers, customer(cust, "gold", "asia_pacific")))
			}
		}
	}
	update := func(from, to int64) {
		for i := from; i <= to; i++ {
			cust := 1 + i%10
			switch i % 3 {
			case 0:
				s.tx(upd(TOrders, order(i, cust, "paid")))
			case 1:
				s.tx(del(TOrderItems, 10*i), del(TOrders, i))
			}
		}
	}
	w := &lockedWriter{w: two}
	group := "rb-" + s.prefix
	stopA := runTransformer(t, s, w, group, nil)
	stopB := runTransformer(t, s, w, group, nil)
	publish(1, 60)
	waitEvents(t, two, s.events)
	if err := stopB(); err != nil {
		t.Fatal(err)
	}
	update(1, 60) // B's orders now belong to A, which must know them
	publish(61, 80)
	waitEvents(t, two, s.events)
	if err := stopA(); err != nil {
		t.Fatal(err)
	}
	stop := runTransformer(t, s, one, "one-"+s.prefix, nil)
	waitEvents(t, one, s.events)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if a, b := snapshot(t, one), snapshot(t, two); a != b {
		t.Errorf("after a rebalance the tables differ from one transformer's:\n--- one\n%s\n--- two\n%s", a, b)
	}
	if got := fmt.Sprint(query(t, two, "SELECT count(), countIf(status = 'paid') FROM customer_orders FINAL")); got != "[[60 20]]" {
		t.Errorf("customer_orders FINAL: %s, want [[60 20]] (80 orders, 20 deleted, 20 paid)", got)
	}
}
