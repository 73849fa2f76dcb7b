package chdb

import (
	"context"
	"database/sql"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/orderflow/orderflow/sinks"
)

// benchDDL is a 20-column row shaped like a customer_orders fact.
const benchDDL = `CREATE TABLE facts (
	order_id Int64, customer_id Int64, campaign_id Nullable(Int64), status LowCardinality(String),
	segment LowCardinality(String), region LowCardinality(String), country LowCardinality(String), city String,
	currency LowCardinality(String), item_count UInt32, subtotal Decimal(18, 2), discount Decimal(18, 2),
	total Decimal(18, 2), placed_at DateTime64(3, 'UTC'), paid_at Nullable(DateTime64(3, 'UTC')),
	shipped_at Nullable(DateTime64(3, 'UTC')), email String, name String, _version UInt64, _is_deleted UInt8
) ENGINE = ReplacingMergeTree(_version, _is_deleted) PARTITION BY toYYYYMM(placed_at) ORDER BY order_id`

var benchColumns = []string{"order_id", "customer_id", "campaign_id", "status", "segment", "region", "country", "city",
	"currency", "item_count", "subtotal", "discount", "total", "placed_at", "paid_at", "shipped_at", "email", "name",
	"_version", "_is_deleted"}

// BenchRows builds n 20-column fact rows starting at order id start.
func benchRows(start, n int) [][]any {
	base := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	segs := []string{"retail", "smb", "enterprise"}
	rows := make([][]any, n)
	for i := range rows {
		id := int64(start + i)
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

func BenchmarkInsert(b *testing.B) {
	for _, batch := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			e := openEngine(b)
			mustExec(b, e, benchDDL)
			rows := benchRows(0, batch)
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				for k, r := range rows { // new order ids: merges must not collapse batches
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

// BenchmarkEncode is the Go side alone: Native encoding of the batch.
func BenchmarkEncode(b *testing.B) {
	var types []*chType
	e := openEngine(b)
	mustExec(b, e, benchDDL)
	types, err := e.columnTypes(context.Background(), "facts", sinks.QualifiedTable(e.db, "facts"), benchColumns)
	if err != nil {
		b.Fatal(err)
	}
	rows := benchRows(0, 100_000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := encodeNative(nil, types, benchColumns, rows); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(rows))/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkEncodeColumns is BenchmarkEncode with the batch given column by
// column (InsertColumns).
func BenchmarkEncodeColumns(b *testing.B) {
	e := openEngine(b)
	mustExec(b, e, benchDDL)
	types, err := e.columnTypes(context.Background(), "facts", sinks.QualifiedTable(e.db, "facts"), benchColumns)
	if err != nil {
		b.Fatal(err)
	}
	rows := benchRows(0, 100_000)
	data := make([]any, len(benchColumns))
	for j, name := range benchColumns {
		switch name {
		case "campaign_id", "paid_at", "shipped_at": // Nullable
			var ni []sql.Null[int64]
			var nt []sql.Null[time.Time]
			for _, r := range rows {
				v, ok := r[j].(int64)
				ni = append(ni, sql.Null[int64]{V: v, Valid: ok})
				t, ok := r[j].(time.Time)
				nt = append(nt, sql.Null[time.Time]{V: t, Valid: ok})
			}
			if name == "campaign_id" {
				data[j] = ni
			} else {
				data[j] = nt
			}
			continue
		}
		col := reflect.MakeSlice(reflect.SliceOf(reflect.TypeOf(rows[0][j])), len(rows), len(rows))
		for i, r := range rows {
			col.Index(i).Set(reflect.ValueOf(r[j]))
		}
		data[j] = col.Interface()
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := encodeColumns(nil, types, benchColumns, data, len(rows)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(rows))/b.Elapsed().Seconds(), "rows/s")
}
