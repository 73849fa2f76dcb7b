package pipeline

import (
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/internal/envelope"
)

// HeaderLoaded marks a snapshot record whose ClickHouse rows a direct
// backfill (`orderflow backfill --direct`) wrote itself, with Snapshot, in
// the same sink the transformer writes: the transformer applies such a
// record to its state only. pipeline/replay, which rebuilds tables from the
// log, ignores the header and derives every row.
const HeaderLoaded = "orderflow_loaded"

// loadedRecord reports whether r carries HeaderLoaded.
func loadedRecord(r *kgo.Record) bool {
	for _, h := range r.Headers {
		if h.Key == HeaderLoaded {
			return true
		}
	}
	return false
}

// Snapshot derives the ClickHouse rows of snapshot rows (op "r", all at one
// LSN) in the process that reads them from PostgreSQL, with the
// transformer's own code: the rows equal what the transformer writes for the
// same events (raw mirror, dimensions, customer history, customer_orders and
// order_lines), except that no change_log row is written: a snapshot read is
// not a change (its events are in Kafka and its rows in the raw mirror).
//
// Dimension rows (customers, products, campaigns) go to a join state shared
// by every chunk; Orders derives one chunk of orders with all their items
// in a state of its own, dropped when it returns, so memory stays bounded by
// the dimension tables and one chunk per caller. Dimension and Orders are
// safe for concurrent use; an order is joined with the dimension rows given
// before its chunk (the backfill loads every dimension row first).
type Snapshot struct {
	mu   sync.RWMutex
	dims *State
	lsn  uint64
	tsMs int64
}

// NewSnapshot returns an empty snapshot state for rows at version lsn,
// committed (read) at tsMs.
func NewSnapshot(lsn uint64, tsMs int64) *Snapshot {
	s := NewState()
	s.noChangeLog = true
	return &Snapshot{dims: s, lsn: lsn, tsMs: tsMs}
}

// rec is the event of one snapshot row of table: image is the row's JSON
// object as the envelope's "after" carries it. The image is parsed once,
// into d, for both the state and the rows (as the transformer's decoders
// do ahead).
func (s *Snapshot) rec(d *decoded, table string, key, image []byte) Rec {
	*d = decoded{after: image}
	d.evv = envelope.Event{Op: envelope.OpRead, TsMs: s.tsMs,
		Source: envelope.Source{LSN: s.lsn, TsMs: s.tsMs, Table: table, Snapshot: "true"}}
	d.ev = &d.evv
	d.prepare(table, key, false)
	return Rec{Table: table, Key: key, Size: len(image), Event: d.ev, rawAfter: image, pre: d}
}

// Dimension applies one customers, products or campaigns row to the join
// state and, when b is not nil, adds its rows to b (nil: state only, for
// rows published by an earlier attempt).
func (s *Snapshot) Dimension(b *Batch, table string, key, image []byte) error {
	switch table {
	case TCustomers, TProducts, TCampaigns:
	default:
		return fmt.Errorf("snapshot: %s is not a dimension table", table)
	}
	var d decoded
	r := s.rec(&d, table, key, image)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.dims.applySideDecoded(table, r.Event, nil, image, &d); err != nil {
		return fmt.Errorf("snapshot %s row %s: %w", table, key, err)
	}
	if b == nil {
		return nil
	}
	if err := s.dims.applyGroup(b, r, true, false); err != nil {
		return fmt.Errorf("snapshot %s row %s: %w", table, key, err)
	}
	return nil
}

// NewSnapshotBatch returns a batch for Snapshot's rows: the rows of one
// snapshot chunk have distinct keys (one row per primary key, one fact per
// order, one line per item), so it keeps no coalescing index.
func NewSnapshotBatch() *Batch {
	b := NewBatch()
	for _, t := range b.bufs {
		t.idx = nil
	}
	return b
}

// Row is one snapshot row: its record key and its JSON image.
type Row struct{ Key, Image []byte }

// Orders adds to b the rows of a chunk of orders and every item of those
// orders: raw mirror rows of both, and each order's customer_orders fact
// and order_lines joined with the dimension rows as of the snapshot. Items
// whose order is not in orders get their raw mirror row only.
func (s *Snapshot) Orders(b *Batch, orders, items []Row) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := &State{customers: s.dims.customers, products: s.dims.products, campaigns: s.dims.campaigns,
		items:   newItems(),
		pending: map[int64]struct{}{}, quiet: map[int32]bool{}, itemOnly: map[int64]uint64{}, noChangeLog: true}
	var d decoded
	for _, it := range items {
		r := s.rec(&d, TOrderItems, it.Key, it.Image)
		if err := st.applySideDecoded(TOrderItems, r.Event, nil, it.Image, &d); err != nil {
			return fmt.Errorf("snapshot order_items row %s: %w", it.Key, err)
		}
		if err := st.applyGroup(b, r, true, false); err != nil {
			return fmt.Errorf("snapshot order_items row %s: %w", it.Key, err)
		}
	}
	for _, o := range orders {
		if err := st.applyGroup(b, s.rec(&d, TOrders, o.Key, o.Image), true, false); err != nil {
			return fmt.Errorf("snapshot orders row %s: %w", o.Key, err)
		}
	}
	return nil
}
