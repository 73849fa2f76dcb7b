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
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		live := float64(after.HeapAlloc - before.HeapAlloc)
		b.ReportMetric(live/(1<<20), "MiB")
		b.ReportMetric(live/float64(n), "B/customer")
		runtime.KeepAlive(s)
	}
}

func jsonInt(v int64) any { return json.Number(strconv.FormatInt(v, 10)) }
