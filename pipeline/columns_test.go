package pipeline

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/sinks/chdb"
)

// The embedded engine takes batches column by column (a signature drift
// would silently fall back to rows).
var _ columnWriter = (*chdb.Engine)(nil)

// rowsOnly hides a writer's columnar insert: the batch goes as rows.
type rowsOnly struct{ w Writer }

func (r rowsOnly) Insert(ctx context.Context, table string, cols []string, rows [][]any) error {
	return r.w.Insert(ctx, table, cols, rows)
}

// equivalenceBatch is a batch with rows in every output table: NULL and
// non-NULL nullable values, deletes, coalesced keys, several versions.
func equivalenceBatch(t *testing.T) *Batch {
	t.Helper()
	s := NewState()
	b := NewBatch()
	c1 := customer(1, "gold", "europe")
	c2 := customer(2, "silver", "asia")
	c2["phone"] = "+49 30 1234"
	dim(t, s, b, TCustomers, ev(TCustomers, "c", 10, nil, c1))
	dim(t, s, b, TCustomers, ev(TCustomers, "c", 11, nil, c2))
	dim(t, s, b, TProducts, ev(TProducts, "c", 12, nil, product(1, "Book")))
	dim(t, s, b, TProducts, ev(TProducts, "c", 13, nil, product(2, "Pen")))
	dim(t, s, b, TCampaigns, ev(TCampaigns, "c", 14, nil, map[string]any{"id": 7, "code": "SPRING", "name": "Spring",
		"starts_at": ts(0), "ends_at": ts(99999), "discount_percent": "15.00", "created_at": ts(0), "updated_at": ts(0)}))
	for i := int64(1); i <= 20; i++ {
		lsn := uint64(100 + 10*i)
		o := order(i, 1+i%2, "placed")
		if i%3 == 0 {
			o["campaign_id"] = 7
		}
		dim(t, s, b, TOrderItems, ev(TOrderItems, "c", lsn, nil, item(2*i, i, 1, 1, "10.00")))
		dim(t, s, b, TOrderItems, ev(TOrderItems, "c", lsn, nil, item(2*i+1, i, 2, 3, "2.55")))
		if err := groupApply(s, b, TOrders, ev(TOrders, "c", lsn, nil, o)); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if err := groupApply(s, b, TOrders, ev(TOrders, "u", lsn+1, nil, order(i, 1+i%2, "shipped"))); err != nil {
				t.Fatal(err)
			}
		}
	}
	dim(t, s, b, TOrderItems, ev(TOrderItems, "d", 400, map[string]any{"id": 3}, nil))
	if err := groupApply(s, b, TOrders, ev(TOrders, "d", 401, map[string]any{"id": 5}, nil)); err != nil {
		t.Fatal(err)
	}
	dim(t, s, b, TCustomers, ev(TCustomers, "u", 402, nil, customer(1, "platinum", "europe")))
	for _, tb := range b.bufs {
		if tb.n == 0 {
			t.Fatalf("equivalence batch has no %s rows", tb.spec.name)
		}
	}
	return b
}

// TestColumnarWriteSameAsRows: a batch written column by column (what the
// transformer does with the embedded engine) stores exactly the rows the
// same batch stores when written as rows.
func TestColumnarWriteSameAsRows(t *testing.T) {
	b := equivalenceBatch(t)
	byCols, byRows := openDB(t), openDB(t)
	if err := b.Write(context.Background(), byCols); err != nil {
		t.Fatal(err)
	}
	if err := b.WriteParallel(context.Background(), Pool(rowsOnly{byRows}, rowsOnly{byRows}), 2); err != nil {
		t.Fatal(err)
	}
	for _, o := range outputs {
		q := fmt.Sprintf("SELECT %s FROM %%s.%s ORDER BY %s", strings.Join(o.cols, ", "), o.name, strings.Join(o.cols, ", "))
		a := query(t, byCols, fmt.Sprintf(q, byCols.Database()))
		r := query(t, byRows, fmt.Sprintf(q, byRows.Database()))
		if len(a) == 0 || !reflect.DeepEqual(a, r) {
			t.Errorf("%s: columnar write stored %d rows, row write %d, or they differ:\n%v\n%v", o.name, len(a), len(r), a, r)
		}
	}
}

// TestTableValues: Batch.Table gives the values the rows were built from
// (NULL as nil), and coalescing replaces a row in place.
func TestTableValues(t *testing.T) {
	b := NewBatch()
	b.row(OutOrderLines, rowKey{1, 2}, 5).i64(1).i64(2).i32(3).i64(4).str("S").str("N").str("C").i32(2).money(1250).money(0).money(2500).
		i64(9).str("gold").str("eu").str("DE").nullInt(NullInt{}).str("paid").time(Micros(t0.UnixMicro())).u8(1).u64(5).u8(0).end()
	b.row(OutOrderLines, rowKey{1, 2}, 6).i64(1).i64(2).i32(3).i64(4).str("S").str("N").str("C").i32(2).money(1250).money(0).money(2500).
		i64(9).str("gold").str("eu").str("DE").nullInt(NullInt{V: 7, Valid: true}).str("paid").time(NullTime).u8(0).u64(6).u8(1).end()
	b.row(OutOrderLines, rowKey{1, 2}, 4).i64(0).i64(0).i32(0).i64(0).str("").str("").str("").i32(0).money(0).money(0).money(0).
		i64(0).str("").str("").str("").nullInt(NullInt{}).str("").time(0).u8(1).u64(4).u8(0).end()
	got := b.Table(OutOrderLines)
	want := [][]any{{int64(1), int64(2), int32(3), int64(4), "S", "N", "C", int32(2), "12.50", "0.00", "25.00",
		int64(9), "gold", "eu", "DE", int64(7), "paid", NullTime.NotNull(), uint8(0), uint64(6), uint8(1)}}
	if !reflect.DeepEqual(got, want) || b.Rows() != 1 {
		t.Fatalf("rows %d:\n got %#v\nwant %#v", b.Rows(), got, want)
	}
	defer func() {
		if recover() == nil {
			t.Error("a row with a missing value did not panic")
		}
	}()
	b.row(OutChangeLog, rowKey{}, 1).str("orders").end()
}

// TestPendingRows: rows kept as structs until the batch is written coalesce
// like rows written in place, wherever the newer row lands: onto a pending
// row, onto a row already in the columns, or after rows written in place.
func TestPendingRows(t *testing.T) {
	b := NewBatch()
	add := func(id int64, ver uint64) {
		row := factRow{o: Order{ID: id, Status: symOf("paid")}, ver: ver}
		addLazy(b, b.facts, &b.factRows, rowKey{id, 0}, ver, &row)
	}
	check := func(step string, want ...int64) {
		t.Helper()
		var got []int64
		for _, r := range b.Table(OutCustomerOrders) {
			got = append(got, r[0].(int64), int64(r[26].(uint64)))
		}
		if !reflect.DeepEqual(got, want) || b.Rows() != len(want)/2 {
			t.Fatalf("%s: rows (id, _version) %v (Rows %d), want %v", step, got, b.Rows(), want)
		}
	}
	add(1, 5)
	add(1, 4) // older: dropped
	add(2, 5)
	add(1, 6) // onto a pending row
	check("pending", 1, 6, 2, 5)
	add(3, 1)
	add(2, 7) // onto a row in the columns (Table wrote them)
	b.add(OutCustomerOrders, rowKey{5, 0}, 2, append([]any{int64(5)}, make([]any, len(Columns(OutCustomerOrders))-1)...))
	add(6, 1)
	check("mixed", 1, 6, 2, 7, 3, 1, 5, 0, 6, 1)
	b.Reset()
	add(7, 1)
	check("after reset", 7, 1)
	if b.factRows.len() != 0 {
		t.Errorf("%d rows still pending after Table", b.factRows.len())
	}
}

// TestTwoPartKeys: order_lines rows coalesce by (order, item): an item
// under a second order (moved) is a row of its own, and each of the two
// keys keeps coalescing onto its own row, after a Reset too.
func TestTwoPartKeys(t *testing.T) {
	b := NewBatch()
	add := func(oid, iid int64, ver uint64) {
		row := lineRow{orderID: oid, it: Item{ID: iid, OrderID: oid}, ver: ver}
		addLazy(b, b.lines, &b.lineRows, rowKey{oid, iid}, ver, &row)
	}
	check := func(step string, want ...int64) {
		t.Helper()
		var got []int64
		for _, r := range b.Table(OutOrderLines) {
			got = append(got, r[0].(int64), r[1].(int64), int64(r[19].(uint64)))
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: rows (order, item, _version) %v, want %v", step, got, want)
		}
	}
	add(1, 10, 5)
	add(2, 10, 6) // item 10 moved to order 2: another key
	add(1, 11, 5)
	add(1, 10, 7) // coalesces onto (1, 10)
	add(2, 10, 4) // older than (2, 10)'s row: dropped
	add(2, 10, 8)
	add(3, 12, 1)
	check("two orders", 1, 10, 7, 2, 10, 8, 1, 11, 5, 3, 12, 1)
	b.Reset()
	add(2, 10, 9)
	add(1, 10, 9)
	add(2, 10, 10)
	check("after reset", 2, 10, 10, 1, 10, 9)
}

// TestDecodingPathsSameRows: the rows built from events decoded into maps,
// decoded lazily (images parsed at apply) and decoded ahead (key, images and
// change_log text derived before the apply) are the same.
func TestDecodingPathsSameRows(t *testing.T) {
	build := func(l, p bool) map[string][][]any {
		lazy, predecoded = l, p
		defer func() { lazy, predecoded = false, false }()
		b := equivalenceBatch(t)
		out := map[string][][]any{}
		for _, o := range outputs {
			out[o.name] = b.Table(o.name)
		}
		return out
	}
	maps, lazyRows, pre := build(false, false), build(true, false), build(true, true)
	for _, o := range outputs {
		if !reflect.DeepEqual(maps[o.name], lazyRows[o.name]) {
			t.Errorf("%s: lazy decoding built other rows than maps:\n%v\n%v", o.name, lazyRows[o.name], maps[o.name])
		}
		if !reflect.DeepEqual(pre[o.name], lazyRows[o.name]) {
			t.Errorf("%s: decoding ahead built other rows:\n%v\n%v", o.name, pre[o.name], lazyRows[o.name])
		}
	}
}
