package pipeline

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// benchRecords is the drain benchmark's mix: an order with two items and a
// later status change, as records of the group topics.
func benchRecords() ([]*kgo.Record, map[string]string) {
	topic := map[string]string{}
	for _, t := range CapturedTables {
		topic["of.public."+t] = t
	}
	var recs []*kgo.Record
	add := func(table, op string, lsn uint64, img map[string]any) {
		recs = append(recs, &kgo.Record{Topic: "of.public." + table, Key: []byte(`{"id":1}`), Value: benchValue("of", table, op, lsn, 1700000000000, img)})
	}
	var lsn uint64 = 1000
	for i := int64(1); i <= 256; i++ {
		lsn++
		add(TOrders, "c", lsn, order(i, 1+i%1000, "placed"))
		add(TOrderItems, "c", lsn, item(2*i, i, 1+i%100, 1, "10.00"))
		add(TOrderItems, "c", lsn, item(2*i+1, i, 1+(i+7)%100, 2, "10.00"))
		lsn++
		add(TOrders, "u", lsn, order(i, 1+i%1000, "paid"))
	}
	return recs, topic
}

// BenchmarkDecodeAhead is the per-event cost of decoding ahead (envelope,
// key, parsed image, change_log text) on one goroutine.
func BenchmarkDecodeAhead(b *testing.B) {
	recs, topic := benchRecords()
	out := make([]decoded, len(recs))
	b.ResetTimer()
	for n := 0; n < b.N; n += len(recs) {
		decodeRange(recs, out, topic, true)
	}
}
