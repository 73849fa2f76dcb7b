package pipeline

import (
	"encoding/json"
	"fmt"
	"runtime"
	"strconv"
	"testing"

	"github.com/orderflow/orderflow/internal/envelope"
)

// BenchmarkStateMemory loads ORDERFLOW_BENCH_CUSTOMERS customers (default
// 1,000,000; one version each) plus 10,000 products into the join state and
// reports the live heap it takes.
//
//	go test -run '^$' -bench StateMemory -benchtime 1x ./pipeline/
func BenchmarkStateMemory(b *testing.B) {
	n := envInt("ORDERFLOW_BENCH_CUSTOMERS", 1_000_000)
	segments := []string{"bronze", "silver", "gold", "platinum"}
	regions := []string{"north_america", "europe", "asia_pacific", "latin_america", "middle_east_africa"}
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		s := NewState()
		for id := int64(1); id <= int64(n); id++ {
			ev := &envelope.Event{Op: "c", Source: envelope.Source{Table: TCustomers, LSN: uint64(id), TsMs: 1}, After: envelope.Row{
				"id": jsonInt(id), "name": fmt.Sprintf("Customer Number %d", id), "email": fmt.Sprintf("customer%d@example.com", id),
				"phone": "+49 30 1234567", "segment": segments[id%4], "region": regions[id%5], "country": "DE", "city": "Berlin",
				"created_at": "2026-01-02T03:04:05.000000Z", "updated_at": "2026-01-02T03:04:05.000000Z"}}
			if err := s.ApplySide(TCustomers, ev); err != nil {
				b.Fatal(err)
			}
		}
		reportLiveHeap(b, before, n, "B/customer")
		runtime.KeepAlive(s)
	}
}

// reportLiveHeap reports the heap live after a collection, less before's,
// in MiB and per item (unit).
func reportLiveHeap(b *testing.B, before runtime.MemStats, n int, unit string) {
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	live := float64(after.HeapAlloc - before.HeapAlloc)
	b.ReportMetric(live/(1<<20), "MiB")
	b.ReportMetric(live/float64(n), unit)
}

func jsonInt(v int64) any { return json.Number(strconv.FormatInt(v, 10)) }

// BenchmarkOrderStateMemory applies ORDERFLOW_BENCH_ORDERS orders (default
// 200,000; three items and two status changes each, over 1,000 customers
// and 100 products) through the side and group paths and reports the live
// heap per order: the order state a transformer keeps for the orders
// partitions it owns (orders, every item version, their indexes), plus the
// reset batch's buffers.
//
//	go test -run '^$' -bench OrderStateMemory -benchtime 1x ./pipeline/
func BenchmarkOrderStateMemory(b *testing.B) {
	n := envInt("ORDERFLOW_BENCH_ORDERS", 200_000)
	for it := 0; it < b.N; it++ {
		s := NewState()
		bt := NewBatch()
		var lsn uint64
		for i := int64(1); i <= 1000; i++ {
			lsn++
			ev, _, _, _ := decodeEvent(benchValue("of", TCustomers, "c", lsn, 1, customer(i, "gold", "europe")))
			_ = s.ApplySide(TCustomers, ev)
		}
		for i := int64(1); i <= 100; i++ {
			lsn++
			ev, _, _, _ := decodeEvent(benchValue("of", TProducts, "c", lsn, 1, product(i, "P")))
			_ = s.ApplySide(TProducts, ev)
		}
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		apply := func(table string, v []byte) {
			ev, rb, ra, err := decodeEventLazy(v)
			if err != nil {
				b.Fatal(err)
			}
			if table != TOrders {
				ev2, rb2, ra2, _ := decodeEventLazy(v) // the side reader's own decode
				if err := s.applySide(table, ev2, rb2, ra2); err != nil {
					b.Fatal(err)
				}
			}
			if err := s.ApplyGroup(bt, Rec{Table: table, Event: ev, rawBefore: rb, rawAfter: ra}); err != nil {
				b.Fatal(err)
			}
			if bt.Rows() > 50000 {
				bt.Reset()
			}
		}
		for i := int64(1); i <= int64(n); i++ {
			lsn++
			apply(TOrders, benchValue("of", TOrders, "c", lsn, 1, order(i, 1+i%1000, "placed")))
			apply(TOrderItems, benchValue("of", TOrderItems, "c", lsn, 1, item(3*i, i, 1+i%100, 1, "10.00")))
			apply(TOrderItems, benchValue("of", TOrderItems, "c", lsn, 1, item(3*i+1, i, 1+(i+7)%100, 2, "10.00")))
			apply(TOrderItems, benchValue("of", TOrderItems, "c", lsn, 1, item(3*i+2, i, 1+(i+9)%100, 2, "10.00")))
			lsn++
			apply(TOrders, benchValue("of", TOrders, "u", lsn, 1, order(i, 1+i%1000, "paid")))
			lsn++
			apply(TOrders, benchValue("of", TOrders, "u", lsn, 1, order(i, 1+i%1000, "shipped")))
		}
		bt.Reset()
		reportLiveHeap(b, before, n, "B/order")
		runtime.KeepAlive(s)
		runtime.KeepAlive(bt)
	}
}
