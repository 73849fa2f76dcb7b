package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/orderflow/orderflow/internal/envelope"
)

var t0 = time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)

func ev(table, op string, lsn uint64, before, after map[string]any, unchanged ...string) *envelope.Event {
	conv := func(m map[string]any) envelope.Row {
		if m == nil {
			return nil
		}
		b, _ := json.Marshal(m)
		e, err := envelope.Decode([]byte(fmt.Sprintf(`{"op":"c","after":%s,"source":{"table":"x"}}`, b)))
		if err != nil {
			panic(err)
		}
		return e.After
	}
	return &envelope.Event{Op: op, Before: conv(before), After: conv(after), Unchanged: unchanged,
		Source: envelope.Source{Table: table, LSN: lsn, TxID: int64(lsn), TsMs: t0.Add(time.Duration(lsn) * time.Second).UnixMilli()}}
}

func ts(sec int) string { return envelope.FormatTime(t0.Add(time.Duration(sec) * time.Second)) }

func customer(id int64, segment, region string) map[string]any {
	return map[string]any{"id": id, "name": fmt.Sprintf("C%d", id), "email": fmt.Sprintf("c%d@x.io", id), "phone": nil,
		"segment": segment, "region": region, "country": "DE", "city": "Berlin", "created_at": ts(0), "updated_at": ts(0)}
}

func order(id, cust int64, status string) map[string]any {
	o := map[string]any{"id": id, "customer_id": cust, "campaign_id": nil, "status": status, "currency": "EUR",
		"subtotal": "30.00", "discount": "0.00", "total": "30.00", "placed_at": ts(100), "paid_at": nil, "shipped_at": nil,
		"delivered_at": nil, "cancelled_at": nil, "refunded_at": nil, "created_at": ts(100), "updated_at": ts(100)}
	if status != "placed" {
		o["paid_at"] = ts(200)
	}
	if status == "shipped" {
		o["shipped_at"] = ts(300)
	}
	return o
}

func item(id, oid, pid int64, qty int, price string) map[string]any {
	return map[string]any{"id": id, "order_id": oid, "line_no": id, "product_id": pid, "quantity": qty, "unit_price": price,
		"discount": "0.00", "created_at": ts(100), "updated_at": ts(100)}
}

func product(id int64, name string) map[string]any {
	return map[string]any{"id": id, "sku": fmt.Sprintf("SKU-%d", id), "name": name, "category": "books", "price": "10.00",
		"currency": "EUR", "created_at": ts(0), "updated_at": ts(0)}
}

// row returns the only (or the key's) row of table as column -> value.
func row(t *testing.T, b *Batch, table string, pick func(map[string]any) bool) map[string]any {
	t.Helper()
	var found map[string]any
	for _, r := range b.Table(table) {
		m := map[string]any{}
		for i, c := range Columns(table) {
			m[c] = r[i]
		}
		if pick == nil || pick(m) {
			if found != nil {
				t.Fatalf("%s: more than one row matches", table)
			}
			found = m
		}
	}
	if found == nil {
		t.Fatalf("%s: no row (have %d)", table, len(b.Table(table)))
	}
	return found
}

// side applies a dimension event the way the transformer does: the side
// reader first, then the group path.
func dim(t *testing.T, s *State, b *Batch, table string, e *envelope.Event) {
	t.Helper()
	if err := sideApply(s, table, e); err != nil {
		t.Fatal(err)
	}
	if err := groupApply(s, b, table, e); err != nil {
		t.Fatal(err)
	}
}

func fact(t *testing.T, s *State, b *Batch, e *envelope.Event) map[string]any {
	t.Helper()
	if err := groupApply(s, b, TOrders, e); err != nil {
		t.Fatal(err)
	}
	return row(t, b, OutCustomerOrders, nil)
}

func TestFactLifecycle(t *testing.T) {
	s := NewState()
	b := NewBatch()
	dim(t, s, b, TCustomers, ev(TCustomers, "c", 10, nil, customer(1, "gold", "europe")))
	dim(t, s, b, TProducts, ev(TProducts, "c", 11, nil, product(7, "Go book")))
	// order and its two items in one transaction (LSN 20)
	for _, it := range []map[string]any{item(101, 5, 7, 2, "10.00"), item(102, 5, 7, 1, "10.00")} {
		dim(t, s, b, TOrderItems, ev(TOrderItems, "c", 20, nil, it))
	}
	b.Reset()
	f := fact(t, s, b, ev(TOrders, "c", 20, nil, order(5, 1, "placed")))
	want := map[string]any{"order_id": int64(5), "customer_segment": "gold", "customer_region": "europe", "status": "placed",
		"item_count": uint32(2), "units": uint32(3), "total": "30.00", "_version": uint64(20), "_is_deleted": uint8(0), "customer_version": uint64(10), "paid_at": nil}
	for k, v := range want {
		if f[k] != v {
			t.Errorf("placed: %s = %#v, want %#v", k, f[k], v)
		}
	}
	if n := len(b.Table(OutOrderLines)); n != 2 {
		t.Fatalf("order_lines: %d rows, want 2", n)
	}
	l := row(t, b, OutOrderLines, func(m map[string]any) bool { return m["item_id"] == int64(101) })
	if l["product_name"] != "Go book" || l["line_total"] != "20.00" || l["customer_segment"] != "gold" || l["_version"] != uint64(20) {
		t.Errorf("line: %v", l)
	}

	// status change: paid, then shipped
	b.Reset()
	f = fact(t, s, b, ev(TOrders, "u", 30, nil, order(5, 1, "paid")))
	if f["status"] != "paid" || f["_version"] != uint64(30) || f["paid_at"] != t0.Add(200*time.Second) {
		t.Errorf("paid: %v", f)
	}
	b.Reset()
	f = fact(t, s, b, ev(TOrders, "u", 40, nil, order(5, 1, "shipped")))
	if f["status"] != "shipped" || f["shipped_at"] != t0.Add(300*time.Second) || f["_version"] != uint64(40) {
		t.Errorf("shipped: %v", f)
	}

	// delete with a key-only before image: the row comes from state
	b.Reset()
	f = fact(t, s, b, ev(TOrders, "d", 50, map[string]any{"id": 5}, nil))
	if f["_is_deleted"] != uint8(1) || f["_version"] != uint64(50) || f["status"] != "shipped" || f["customer_segment"] != "gold" || f["placed_at"] != t0.Add(100*time.Second) {
		t.Errorf("deleted: %v", f)
	}
	for _, l := range b.Table(OutOrderLines) {
		if l[len(l)-1] != uint8(1) {
			t.Errorf("line of a deleted order not deleted: %v", l)
		}
	}
	raw := row(t, b, OutRawOrders, nil)
	if raw["_is_deleted"] != uint8(1) || raw["customer_id"] != int64(1) {
		t.Errorf("raw delete: %v", raw)
	}
}

// TestAsOfCustomerChangedLater: the side reader is ahead (it has already seen
// the customer's later update) when the order is applied; the fact keeps the
// attributes as of the order's placement.
func TestAsOfCustomerChangedLater(t *testing.T) {
	s := NewState()
	b := NewBatch()
	dim(t, s, b, TCustomers, ev(TCustomers, "c", 10, nil, customer(1, "silver", "europe")))
	if err := sideApply(s, TCustomers, ev(TCustomers, "u", 30, nil, customer(1, "platinum", "asia_pacific"))); err != nil {
		t.Fatal(err)
	}
	b.Reset()
	f := fact(t, s, b, ev(TOrders, "c", 20, nil, order(5, 1, "placed")))
	if f["customer_segment"] != "silver" || f["customer_region"] != "europe" {
		t.Fatalf("as of placement: %v/%v, want silver/europe", f["customer_segment"], f["customer_region"])
	}
	// a later status change still uses the placement's customer version
	b.Reset()
	f = fact(t, s, b, ev(TOrders, "u", 40, nil, order(5, 1, "paid")))
	if f["customer_segment"] != "silver" {
		t.Fatalf("after status change: %v, want silver", f["customer_segment"])
	}
	// an order placed after the update sees the new attributes
	b.Reset()
	f = fact(t, s, b, ev(TOrders, "c", 35, nil, order(6, 1, "placed")))
	if f["customer_segment"] != "platinum" {
		t.Fatalf("order after update: %v, want platinum", f["customer_segment"])
	}
}

// TestLateDimensionRepair: the order is applied before the customer's
// earlier change has been read (the barrier could not guarantee it); when the
// change arrives the fact is re-derived: no fact keeps unknown or stale
// attributes.
func TestLateDimensionRepair(t *testing.T) {
	s := NewState()
	b := NewBatch()
	f := fact(t, s, b, ev(TOrders, "c", 20, nil, order(5, 1, "placed")))
	if f["customer_segment"] != "" || f["customer_version"] != uint64(0) {
		t.Fatalf("unknown customer: %v", f)
	}
	if err := sideApply(s, TCustomers, ev(TCustomers, "c", 10, nil, customer(1, "gold", "europe"))); err != nil {
		t.Fatal(err)
	}
	b.Reset()
	if n := s.DrainRepairs(b); n != 1 {
		t.Fatalf("repairs: %d, want 1", n)
	}
	f = row(t, b, OutCustomerOrders, nil)
	if f["customer_segment"] != "gold" || f["_version"] != uint64(20) || f["customer_version"] != uint64(10) {
		t.Fatalf("repaired: %v", f)
	}
	// a newer customer version (after placement) changes nothing
	if err := sideApply(s, TCustomers, ev(TCustomers, "u", 30, nil, customer(1, "bronze", "europe"))); err != nil {
		t.Fatal(err)
	}
	b.Reset()
	if n := s.DrainRepairs(b); n != 0 {
		t.Fatalf("repairs after a later change: %d, want 0", n)
	}
	// an earlier-than-placement version that arrives late does
	if err := sideApply(s, TCustomers, ev(TCustomers, "u", 15, nil, customer(1, "silver", "europe"))); err != nil {
		t.Fatal(err)
	}
	if n := s.DrainRepairs(b); n != 1 {
		t.Fatalf("repairs after a late in-between change: %d, want 1", n)
	}
	if f = row(t, b, OutCustomerOrders, nil); f["customer_segment"] != "silver" {
		t.Fatalf("repaired to %v, want silver", f["customer_segment"])
	}
}

func TestStaleEventNeverOverwrites(t *testing.T) {
	s := NewState()
	b := NewBatch()
	dim(t, s, b, TCustomers, ev(TCustomers, "c", 10, nil, customer(1, "gold", "europe")))
	fact(t, s, b, ev(TOrders, "c", 20, nil, order(5, 1, "placed")))
	fact(t, s, b, ev(TOrders, "u", 40, nil, order(5, 1, "shipped")))
	b.Reset()
	if err := groupApply(s, b, TOrders, ev(TOrders, "u", 30, nil, order(5, 1, "paid"))); err != nil {
		t.Fatal(err)
	}
	if n := len(b.Table(OutCustomerOrders)); n != 0 {
		t.Fatalf("a replayed older event produced %d facts", n)
	}
	if st := s.orders.at(5); st.Status.String() != "shipped" || st.LSN != 40 {
		t.Fatalf("state moved back: %s@%d", st.Status, st.LSN)
	}
	// within one batch the newest version of a key wins
	b.Reset()
	b.add(OutCustomers, rowKey{1, 0}, 9, make([]any, len(Columns(OutCustomers))))
	newer := make([]any, len(Columns(OutCustomers)))
	newer[1] = "newest"
	b.add(OutCustomers, rowKey{1, 0}, 12, newer)
	b.add(OutCustomers, rowKey{1, 0}, 11, make([]any, len(Columns(OutCustomers))))
	if r := b.Table(OutCustomers); len(r) != 1 || r[0][1] != "newest" {
		t.Fatalf("coalesced: %v", r)
	}
}

func TestToastCarriedForward(t *testing.T) {
	s := NewState()
	b := NewBatch()
	dim(t, s, b, TCustomers, ev(TCustomers, "c", 10, nil, customer(1, "gold", "europe")))
	upd := customer(1, "platinum", "europe")
	delete(upd, "name")
	delete(upd, "email")
	b.Reset()
	dim(t, s, b, TCustomers, ev(TCustomers, "u", 20, nil, upd, "name", "email"))
	r := row(t, b, OutRawCustomers, nil)
	if r["name"] != "C1" || r["email"] != "c1@x.io" || r["segment"] != "platinum" || r["_version"] != uint64(20) {
		t.Fatalf("TOAST: %v", r)
	}
	h := row(t, b, OutCustomerHist, nil)
	if h["name"] != "C1" || h["valid_from_lsn"] != uint64(20) {
		t.Fatalf("history: %v", h)
	}
	// Debezium's placeholder decodes to the same thing
	e, err := envelope.Decode([]byte(`{"op":"u","after":{"id":1,"name":"__debezium_unavailable_value","segment":"bronze"},"source":{"table":"customers","lsn":30,"ts_ms":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	b.Reset()
	dim(t, s, b, TCustomers, e)
	if r := row(t, b, OutRawCustomers, nil); r["name"] != "C1" || r["segment"] != "bronze" {
		t.Fatalf("debezium TOAST: %v", r)
	}
	// order TOAST: an unchanged column keeps the order state's value
	fact(t, s, b, ev(TOrders, "c", 40, nil, order(5, 1, "placed")))
	o := order(5, 1, "paid")
	delete(o, "currency")
	b.Reset()
	if f := fact(t, s, b, ev(TOrders, "u", 50, nil, o, "currency")); f["currency"] != "EUR" {
		t.Fatalf("order TOAST: %v", f["currency"])
	}
}

func TestPoison(t *testing.T) {
	s := NewState()
	b := NewBatch()
	bad := order(5, 1, "placed")
	bad["total"] = "not-a-number"
	err := groupApply(s, b, TOrders, ev(TOrders, "c", 20, nil, bad))
	if reason, ok := IsPoison(err); !ok || reason != ReasonColumn {
		t.Fatalf("err %v: reason %q", err, reason)
	}
	if b.Rows() != 0 || s.orders.len() != 0 {
		t.Fatal("a poison event changed state or produced rows")
	}
	_, err = envelope.Decode([]byte(`{"op":"x"}`))
	if reason, ok := IsPoison(err); !ok || reason != ReasonDecode {
		t.Fatalf("decode err %v: reason %q", err, reason)
	}
}

func TestMoney(t *testing.T) {
	for in, want := range map[string]string{"12.5": "12.50", "-0.05": "-0.05", "3": "3.00", "10.000": "10.00", "0.10": "0.10"} {
		m, err := ParseMoney(in)
		if err != nil || m.String() != want {
			t.Errorf("%s: %v %v, want %s", in, m, err, want)
		}
	}
	if _, err := ParseMoney("1.234"); err == nil {
		t.Error("1.234: want an error")
	}
}

type memWriter struct{ rows map[string]int }

func (w *memWriter) Insert(_ context.Context, table string, _ []string, rows [][]any) error {
	w.rows[table] += len(rows)
	return nil
}

func TestBatchWrite(t *testing.T) {
	s := NewState()
	b := NewBatch()
	dim(t, s, b, TCustomers, ev(TCustomers, "c", 10, nil, customer(1, "gold", "europe")))
	fact(t, s, b, ev(TOrders, "c", 20, nil, order(5, 1, "placed")))
	w := &memWriter{rows: map[string]int{}}
	if err := b.Write(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	if w.rows[OutCustomerOrders] != 1 || w.rows[OutChangeLog] != 2 || w.rows[OutCustomerHist] != 1 {
		t.Fatalf("written: %v", w.rows)
	}
}

// TestLateItemRepair: an item committed with (or before) its order but read
// after the order's fact was derived re-derives the fact.
func TestLateItemRepair(t *testing.T) {
	s := NewState()
	b := NewBatch()
	dim(t, s, b, TCustomers, ev(TCustomers, "c", 10, nil, customer(1, "gold", "europe")))
	if err := sideApply(s, TOrderItems, ev(TOrderItems, "c", 20, nil, item(101, 5, 7, 2, "10.00"))); err != nil {
		t.Fatal(err)
	}
	b.Reset()
	if f := fact(t, s, b, ev(TOrders, "c", 20, nil, order(5, 1, "placed"))); f["item_count"] != uint32(1) {
		t.Fatalf("item_count %v, want 1", f["item_count"])
	}
	if err := sideApply(s, TOrderItems, ev(TOrderItems, "c", 20, nil, item(102, 5, 7, 1, "10.00"))); err != nil {
		t.Fatal(err)
	}
	b.Reset()
	if n := s.DrainRepairs(b); n != 1 {
		t.Fatalf("repairs %d, want 1", n)
	}
	if f := row(t, b, OutCustomerOrders, nil); f["item_count"] != uint32(2) || f["units"] != uint32(3) || f["_version"] != uint64(20) {
		t.Fatalf("repaired: %v", f)
	}
	// an item-only change after the order's event is not a repair
	if err := sideApply(s, TOrderItems, ev(TOrderItems, "u", 30, nil, item(102, 5, 7, 5, "10.00"))); err != nil {
		t.Fatal(err)
	}
	if n := s.DrainRepairs(b); n != 0 {
		t.Fatalf("repairs after an item-only change %d, want 0", n)
	}
	// a redelivered item already included is not a repair either
	if err := sideApply(s, TOrderItems, ev(TOrderItems, "c", 20, nil, item(101, 5, 7, 2, "10.00"))); err != nil {
		t.Fatal(err)
	}
	if n := s.DrainRepairs(b); n != 0 {
		t.Fatalf("repairs after a redelivered item %d, want 0", n)
	}
}

// lazy makes the helpers feed events the way the transformer does: encoded,
// then decoded without maps, the images decoded straight into the structs.
var lazy bool

func lazyEvent(e *envelope.Event) (*envelope.Event, []byte, []byte) {
	if !lazy {
		return e, nil, nil
	}
	v, err := json.Marshal(e)
	if err != nil {
		panic(err)
	}
	le, rb, ra, err := decodeEventLazy(v)
	if err != nil {
		panic(err)
	}
	return le, rb, ra
}

// predecoded (with lazy) makes the helpers also derive the key, the parsed
// image and the change_log text ahead, as the transformer's decoders do.
var predecoded bool

func sideApply(s *State, table string, e *envelope.Event) error {
	le, rb, ra := lazyEvent(e)
	if predecoded {
		d := &decoded{ev: le, before: rb, after: ra}
		d.prepare(table, nil, false)
		return s.applySideDecoded(table, le, rb, ra, d)
	}
	return s.applySide(table, le, rb, ra)
}

func groupApply(s *State, b *Batch, table string, e *envelope.Event) error {
	le, rb, ra := lazyEvent(e)
	var d *decoded
	if predecoded {
		d = &decoded{ev: le, before: rb, after: ra}
		d.prepare(table, nil, true)
	}
	return s.ApplyGroup(b, Rec{Table: table, Event: le, rawBefore: rb, rawAfter: ra, pre: d})
}

// TestCoreLazy runs the core tests on the transformer's decoding path.
func TestCoreLazy(t *testing.T) {
	lazy = true
	defer func() { lazy = false }()
	coreTests(t)
}

// TestCorePredecoded runs the core tests with what the transformer derives
// ahead of the apply (key, parsed image, change_log text).
func TestCorePredecoded(t *testing.T) {
	lazy, predecoded = true, true
	defer func() { lazy, predecoded = false, false }()
	coreTests(t)
}

func coreTests(t *testing.T) {
	for name, f := range map[string]func(*testing.T){
		"FactLifecycle": TestFactLifecycle, "AsOfCustomerChangedLater": TestAsOfCustomerChangedLater,
		"LateDimensionRepair": TestLateDimensionRepair, "StaleEventNeverOverwrites": TestStaleEventNeverOverwrites,
		"ToastCarriedForward": TestToastCarriedForward, "Poison": TestPoison, "BatchWrite": TestBatchWrite, "LateItemRepair": TestLateItemRepair,
		"ItemOnlyChange": TestItemOnlyChange,
	} {
		t.Run(name, f)
	}
}

// TestItemOnlyChange: an item changed in a transaction that does not touch
// the order row re-derives the fact at the item's LSN once the caller says
// the order's partition is consumed far enough.
func TestItemOnlyChange(t *testing.T) {
	s := NewState()
	b := NewBatch()
	dim(t, s, b, TCustomers, ev(TCustomers, "c", 10, nil, customer(1, "gold", "europe")))
	if err := sideApply(s, TOrderItems, ev(TOrderItems, "c", 20, nil, item(101, 5, 7, 2, "10.00"))); err != nil {
		t.Fatal(err)
	}
	fact(t, s, b, ev(TOrders, "c", 20, nil, order(5, 1, "placed")))
	if err := sideApply(s, TOrderItems, ev(TOrderItems, "c", 30, nil, item(102, 5, 7, 3, "10.00"))); err != nil {
		t.Fatal(err)
	}
	ch := s.ItemChanges()
	if len(ch) != 1 {
		t.Fatalf("item changes %v, want order 5", ch)
	}
	b.Reset()
	if n := s.DrainItemChanges(b, []int64{5}); n != 1 {
		t.Fatalf("drained %d, want 1", n)
	}
	f := row(t, b, OutCustomerOrders, nil)
	if f["item_count"] != uint32(2) || f["units"] != uint32(5) || f["_version"] != uint64(30) || f["status"] != "placed" || f["customer_segment"] != "gold" {
		t.Fatalf("after the item-only change: %v", f)
	}
	if n := len(b.Table(OutOrderLines)); n != 2 {
		t.Fatalf("order_lines %d, want 2", n)
	}
	// a later order event derives at its own LSN with both items
	b.Reset()
	if f := fact(t, s, b, ev(TOrders, "u", 40, nil, order(5, 1, "paid"))); f["item_count"] != uint32(2) || f["_version"] != uint64(40) {
		t.Fatalf("paid: %v", f)
	}
	if len(s.ItemChanges()) != 0 {
		t.Fatal("item change still pending after a newer order event")
	}
	// an item change in the same transaction as a later order event is
	// covered by that event: nothing is left once it is applied
	if err := sideApply(s, TOrderItems, ev(TOrderItems, "d", 50, map[string]any{"id": 101}, nil)); err != nil {
		t.Fatal(err)
	}
	b.Reset()
	if f := fact(t, s, b, ev(TOrders, "u", 50, nil, order(5, 1, "paid"))); f["item_count"] != uint32(1) {
		t.Fatalf("item deleted with the order update: %v", f)
	}
	if len(s.ItemChanges()) != 0 {
		t.Fatal("item change pending although its order event covered it")
	}
}

// TestProductFirst: product_first marks the first live line of each product
// in an order (by item id), so that sum(product_first) counts orders per
// product; deleting that line moves the mark to the product's next line.
func TestProductFirst(t *testing.T) {
	s := NewState()
	b := NewBatch()
	dim(t, s, b, TCustomers, ev(TCustomers, "c", 10, nil, customer(1, "gold", "europe")))
	dim(t, s, b, TProducts, ev(TProducts, "c", 11, nil, product(7, "Go book")))
	dim(t, s, b, TProducts, ev(TProducts, "c", 12, nil, product(8, "Kafka book")))
	for _, it := range []map[string]any{item(101, 5, 7, 2, "10.00"), item(102, 5, 7, 1, "10.00"), item(103, 5, 8, 1, "10.00")} {
		dim(t, s, b, TOrderItems, ev(TOrderItems, "c", 20, nil, it))
	}
	flags := func() string {
		out := ""
		for _, id := range []int64{101, 102, 103} {
			l := row(t, b, OutOrderLines, func(m map[string]any) bool { return m["item_id"] == id })
			out += fmt.Sprintf("%d:%v/%v ", id, l["product_first"], l["_is_deleted"])
		}
		return out
	}
	b.Reset()
	fact(t, s, b, ev(TOrders, "c", 20, nil, order(5, 1, "placed")))
	if got := flags(); got != "101:1/0 102:0/0 103:1/0 " {
		t.Errorf("placed: product_first/_is_deleted %s", got)
	}
	// item 101 deleted in the transaction that pays the order
	b.Reset()
	dim(t, s, b, TOrderItems, ev(TOrderItems, "d", 30, item(101, 5, 7, 2, "10.00"), nil))
	fact(t, s, b, ev(TOrders, "u", 30, nil, order(5, 1, "paid")))
	if got := flags(); got != "101:0/1 102:1/0 103:1/0 " {
		t.Errorf("after deleting item 101: product_first/_is_deleted %s", got)
	}
}
