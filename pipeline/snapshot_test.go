package pipeline

import (
	"fmt"
	"slices"
	"testing"
)

// snapRec is a snapshot row as the backfill publishes it: its encoded
// envelope (op "r") and the image inside.
type snapRec struct {
	table string
	key   []byte
	value []byte
	image []byte
}

const snapLSN, snapMs = 5000, 1_773_000_000_000

func snapRow(t *testing.T, table string, after map[string]any) snapRec {
	t.Helper()
	v := benchValue("of", table, "r", snapLSN, snapMs, after)
	_, _, ra, err := decodeEventLazy(v)
	if err != nil {
		t.Fatal(err)
	}
	return snapRec{table: table, key: []byte(fmt.Sprintf(`{"id":%v}`, after["id"])), value: v, image: ra}
}

// snapshotData: customers, products, a campaign, orders with a campaign,
// with two lines of one product, without items, deleted-free.
func snapshotData(t *testing.T) (dims, items, orders []snapRec) {
	for i := int64(1); i <= 3; i++ {
		dims = append(dims, snapRow(t, TCustomers, customer(i, []string{"gold", "silver", "bronze"}[i-1], "europe")))
	}
	dims = append(dims, snapRow(t, TProducts, product(7, "Book")), snapRow(t, TProducts, product(8, "Pen")))
	dims = append(dims, snapRow(t, TCampaigns, map[string]any{"id": int64(3), "code": "SPRING", "name": "Spring", "starts_at": ts(0), "ends_at": ts(1000),
		"discount_pct": "10.00", "created_at": ts(0), "updated_at": ts(0)}))
	o1, o2, o3, o4 := order(1, 1, "placed"), order(2, 2, "paid"), order(3, 3, "shipped"), order(4, 1, "paid")
	o2["campaign_id"] = int64(3)
	for _, o := range []map[string]any{o1, o2, o3, o4} {
		orders = append(orders, snapRow(t, TOrders, o))
	}
	for _, it := range []map[string]any{item(11, 1, 7, 2, "10.00"), item(12, 1, 8, 1, "3.50"), item(21, 2, 7, 1, "10.00"),
		item(22, 2, 7, 3, "9.00"), item(23, 2, 8, 1, "3.50"), item(41, 4, 8, 5, "3.50")} {
		items = append(items, snapRow(t, TOrderItems, it))
	}
	return dims, items, orders
}

// transformerBatch derives the rows the transformer writes for the events.
func transformerBatch(t *testing.T, dims, items, orders []snapRec) (*State, *Batch) {
	t.Helper()
	s, b := NewState(), NewBatch()
	all := slices.Concat(dims, items, orders)
	for _, r := range all {
		if r.table == TOrders {
			continue
		}
		ev, rb, ra, err := decodeEventLazy(r.value)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.applySide(r.table, ev, rb, ra); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range all {
		ev, rb, ra, err := decodeEventLazy(r.value)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.ApplyGroup(b, Rec{Table: r.table, Key: r.key, Size: len(r.value), Event: ev, rawBefore: rb, rawAfter: ra}); err != nil {
			t.Fatal(err)
		}
	}
	return s, b
}

func sortedRows(b *Batch, table string) []string {
	var out []string
	for _, r := range b.Table(table) {
		out = append(out, fmt.Sprint(r...))
	}
	slices.Sort(out)
	return out
}

// TestSnapshotRowsEqualTransformer: the rows a direct backfill derives with
// Snapshot equal, table by table, the rows the transformer derives from the
// same snapshot events, except change_log (none for snapshot reads).
func TestSnapshotRowsEqualTransformer(t *testing.T) {
	dims, items, orders := snapshotData(t)
	_, want := transformerBatch(t, dims, items, orders)

	snap := NewSnapshot(snapLSN, snapMs)
	got := NewSnapshotBatch()
	for _, r := range dims {
		if err := snap.Dimension(got, r.table, r.key, r.image); err != nil {
			t.Fatal(err)
		}
	}
	rows := func(rs []snapRec) []Row {
		var out []Row
		for _, r := range rs {
			out = append(out, Row{Key: r.key, Image: r.image})
		}
		return out
	}
	// two chunks: orders 1-2 with their items, orders 3-4 with theirs
	if err := snap.Orders(got, rows(orders[:2]), rows(items[:5])); err != nil {
		t.Fatal(err)
	}
	if err := snap.Orders(got, rows(orders[2:]), rows(items[5:])); err != nil {
		t.Fatal(err)
	}
	for _, o := range outputs {
		w, g := sortedRows(want, o.name), sortedRows(got, o.name)
		if o.name == OutChangeLog {
			if len(w) != len(dims)+len(items)+len(orders) || len(g) != 0 {
				t.Fatalf("change_log: transformer %d rows, snapshot %d; want %d and 0", len(w), len(g), len(dims)+len(items)+len(orders))
			}
			continue
		}
		if !slices.Equal(w, g) {
			t.Errorf("%s differs:\ntransformer %q\nsnapshot    %q", o.name, w, g)
		}
	}
	if n := len(got.Table(OutCustomerOrders)); n != 4 {
		t.Fatalf("customer_orders rows = %d, want 4", n)
	}
	f := row(t, got, OutCustomerOrders, func(m map[string]any) bool { return m["order_id"] == int64(2) })
	if f["campaign_code"] != "SPRING" || f["item_count"] != uint32(3) || f["units"] != uint32(5) || f["customer_segment"] != "silver" {
		t.Fatalf("order 2 fact = %v", f)
	}
	if err := snap.Dimension(got, TOrders, nil, nil); err == nil {
		t.Fatal("Dimension accepted orders")
	}
}

// TestLoadedEventsStateOnly: events whose rows a direct backfill wrote
// (HeaderLoaded) produce no rows and no repairs in the transformer, and a
// later streamed change of such an order derives its fact from the loaded
// state (items, customer as of the snapshot).
func TestLoadedEventsStateOnly(t *testing.T) {
	dims, items, orders := snapshotData(t)
	s, b := NewState(), NewBatch()
	for _, r := range slices.Concat(dims, items) {
		ev, rb, ra, _ := decodeEventLazy(r.value)
		if err := s.applySide(r.table, ev, rb, ra); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range slices.Concat(dims, items, orders) {
		ev, rb, ra, _ := decodeEventLazy(r.value)
		if err := s.applyLoaded(Rec{Table: r.table, Key: r.key, Event: ev, rawBefore: rb, rawAfter: ra}); err != nil {
			t.Fatal(err)
		}
	}
	if b.Rows() != 0 {
		t.Fatalf("loaded events produced %d rows", b.Rows())
	}
	// a customer change after the snapshot: no repair of a loaded fact
	dim(t, s, b, TCustomers, ev(TCustomers, "u", snapLSN+10, nil, customer(2, "platinum", "europe")))
	if n := s.DrainRepairs(b); n != 0 {
		t.Fatalf("repairs after loaded orders = %d, want 0", n)
	}
	if n := len(s.ItemChanges()); n != 0 {
		t.Fatalf("item changes after loaded orders = %d, want 0", n)
	}
	// a streamed status change of order 2
	o2 := order(2, 2, "shipped")
	o2["campaign_id"] = int64(3)
	f := fact(t, s, b, ev(TOrders, "u", snapLSN+20, nil, o2))
	if f["status"] != "shipped" || f["item_count"] != uint32(3) || f["units"] != uint32(5) || f["customer_segment"] != "silver" ||
		f["campaign_code"] != "SPRING" || f["_version"] != uint64(snapLSN+20) {
		t.Fatalf("streamed change of a loaded order: fact = %v", f)
	}
	// a streamed item added to loaded order 1: re-derived at the item's LSN
	if err := sideApply(s, TOrderItems, ev(TOrderItems, "c", snapLSN+30, nil, item(13, 1, 8, 4, "3.50"))); err != nil {
		t.Fatal(err)
	}
	b.Reset()
	if n := s.DrainItemChanges(b, []int64{1}); n != 1 {
		t.Fatalf("item change of a loaded order re-derived %d facts, want 1", n)
	}
	f = row(t, b, OutCustomerOrders, nil)
	if f["order_id"] != int64(1) || f["item_count"] != uint32(3) || f["units"] != uint32(7) || f["_version"] != uint64(snapLSN+30) {
		t.Fatalf("item added to a loaded order: fact = %v", f)
	}
}
