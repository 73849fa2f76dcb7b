package chserver

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// benchDDL is the 20-column customer_orders-like row of the chdb benchmark in
// types 18.16 has (String for LowCardinality(String), DateTime for
// DateTime64).
const benchDDL = `CREATE TABLE facts (
	order_id Int64, customer_id Int64, campaign_id Nullable(Int64), status String,
	segment String, region String, country String, city String,
	currency String, item_count UInt32, subtotal Decimal(18, 2), discount Decimal(18, 2),
	total Decimal(18, 2), placed_at DateTime, paid_at Nullable(DateTime),
	shipped_at Nullable(DateTime), email String, name String, _version UInt64, _is_deleted UInt8
) ENGINE = ReplacingMergeTree(_version) PARTITION BY toYYYYMM(placed_at) ORDER BY order_id`

var benchColumns = []string{"order_id", "customer_id", "campaign_id", "status", "segment", "region", "country", "city",
	"currency", "item_count", "subtotal", "discount", "total", "placed_at", "paid_at", "shipped_at", "email", "name",
	"_version", "_is_deleted"}

func benchRows(n int) [][]any {
	base := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	segs := []string{"retail", "smb", "enterprise"}
	rows := make([][]any, n)
	for i := range rows {
		id := int64(i)
		placed := base.Add(time.Duration(id%86400) * time.Second)
		var campaign any
		if id%3 == 0 {
			campaign = id % 17
		}
		rows[i] = []any{id, id % 100000, campaign, "paid", segs[id%3], "emea", "DE", "Berlin",
			"EUR", uint32(id%7 + 1), "123.45", "3.00", "120.45", placed, placed.Add(time.Minute), nil,
			fmt.Sprintf("c%d@example.com", id%100000), "Customer Name", uint64(id * 10), uint8(0)}
	}
	return rows
}

// BenchmarkInsert measures Insert rows/s into the local server (18.16 on
// 127.0.0.1:59000): conversion to typed columns, native-protocol send and the
// server's MergeTree write.
func BenchmarkInsert(b *testing.B) {
	for _, batch := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			e := openEngine(b)
			mustExec(b, e, benchDDL)
			rows := benchRows(batch)
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				for k, r := range rows {
					r[0] = int64(i*batch + k)
				}
				b.StartTimer()
				if err := e.Insert(ctx, "facts", benchColumns, rows); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "rows/s")
			r, err := e.Query(ctx, "SELECT count() FROM facts FINAL", nil)
			if err != nil || r.Rows[0][0] != uint64(b.N*batch) {
				b.Fatalf("count = %v (%v), want %d", r, err, b.N*batch)
			}
		})
	}
}
