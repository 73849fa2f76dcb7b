package pipeline

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/orderflow/orderflow/sinks"
)

// Writer is the part of sinks.Engine the transformer needs: one atomic
// insert with an explicit column list.
type Writer interface {
	Insert(ctx context.Context, table string, columns []string, rows [][]any) error
}

var (
	_ Writer = sinks.Engine(nil)
	_ Writer = (*pool)(nil)
)

// Output tables and their columns, matching sinks/chschema.
const (
	OutRawCustomers   = "raw_customers"
	OutRawProducts    = "raw_products"
	OutRawCampaigns   = "raw_campaigns"
	OutRawOrders      = "raw_orders"
	OutRawOrderItems  = "raw_order_items"
	OutCustomers      = "customers"
	OutProducts       = "products"
	OutCampaigns      = "campaigns"
	OutCustomerHist   = "customer_history"
	OutCustomerOrders = "customer_orders"
	OutOrderLines     = "order_lines"
	OutChangeLog      = "change_log"
)

type outSpec struct {
	name     string
	cols     []string
	coalesce bool // keep only the last row per key within a batch
}

// outputs in insert order: mirrors and dimensions before facts, the change
// log last.
var outputs = []outSpec{
	{OutRawCustomers, []string{"id", "name", "email", "phone", "segment", "region", "country", "city", "created_at", "updated_at", "_version", "_is_deleted", "_commit_ts"}, true},
	{OutRawProducts, []string{"id", "sku", "name", "category", "price", "currency", "created_at", "updated_at", "_version", "_is_deleted", "_commit_ts"}, true},
	{OutRawCampaigns, []string{"id", "code", "name", "starts_at", "ends_at", "discount_percent", "created_at", "updated_at", "_version", "_is_deleted", "_commit_ts"}, true},
	{OutRawOrders, []string{"id", "customer_id", "campaign_id", "status", "currency", "subtotal", "discount", "total", "placed_at", "paid_at", "shipped_at", "delivered_at", "cancelled_at", "refunded_at", "created_at", "updated_at", "_version", "_is_deleted", "_commit_ts"}, true},
	{OutRawOrderItems, []string{"id", "order_id", "line_no", "product_id", "quantity", "unit_price", "discount", "created_at", "updated_at", "_version", "_is_deleted", "_commit_ts"}, true},
	{OutCustomers, []string{"customer_id", "name", "email", "phone", "segment", "region", "country", "city", "signup_at", "updated_at", "_version", "_is_deleted"}, true},
	{OutProducts, []string{"product_id", "sku", "name", "category", "price", "currency", "updated_at", "_version", "_is_deleted"}, true},
	{OutCampaigns, []string{"campaign_id", "code", "name", "starts_at", "ends_at", "discount_percent", "updated_at", "_version", "_is_deleted"}, true},
	{OutCustomerHist, []string{"customer_id", "valid_from_lsn", "valid_from", "name", "email", "phone", "segment", "region", "country", "city", "signup_at", "_version", "_is_deleted"}, true},
	{OutCustomerOrders, []string{"order_id", "customer_id", "customer_name", "customer_email", "customer_segment", "customer_region", "customer_country", "customer_city", "customer_signup_at", "customer_version", "campaign_id", "campaign_code", "status", "currency", "placed_at", "paid_at", "shipped_at", "delivered_at", "cancelled_at", "refunded_at", "item_count", "units", "subtotal", "discount", "total", "updated_at", "_version", "_is_deleted"}, true},
	{OutOrderLines, []string{"order_id", "item_id", "line_no", "product_id", "product_sku", "product_name", "product_category", "quantity", "unit_price", "discount", "line_total", "customer_id", "customer_segment", "customer_region", "customer_country", "campaign_id", "status", "placed_at", "_version", "_is_deleted"}, true},
	{OutChangeLog, []string{"table_name", "key", "op", "lsn", "txid", "commit_ts", "before", "after", "event_id"}, false},
}

// Columns returns the insert columns of an output table.
func Columns(table string) []string {
	for _, o := range outputs {
		if o.name == table {
			return o.cols
		}
	}
	return nil
}

type rowKey struct{ a, b int64 }

type tableBuf struct {
	spec outSpec
	rows [][]any
	vers []uint64 // _version of each row (coalescing keeps the newest)
	idx  map[rowKey]int
}

// Batch accumulates the rows built from a run of events, per output table.
// Rows of a versioned table are coalesced by key within the batch (the newest
// version wins, equal versions: the later one), so one insert never carries
// two rows of one key.
type Batch struct {
	bufs    []*tableBuf
	byName  map[string]*tableBuf
	rows    int
	bytes   int
	events  int
	started time.Time
	commits []Micros // commit times of the events in the batch (freshness)
}

// NewBatch returns an empty batch.
func NewBatch() *Batch {
	b := &Batch{byName: make(map[string]*tableBuf, len(outputs))}
	for _, o := range outputs {
		t := &tableBuf{spec: o}
		if o.coalesce {
			t.idx = make(map[rowKey]int)
		}
		b.bufs = append(b.bufs, t)
		b.byName[o.name] = t
	}
	return b
}

// add appends (or coalesces) a row.
func (b *Batch) add(table string, key rowKey, ver uint64, row []any) {
	t := b.byName[table]
	if t == nil {
		panic("pipeline: unknown output table " + table)
	}
	if len(row) != len(t.spec.cols) {
		panic(fmt.Sprintf("pipeline: %s row has %d values for %d columns", table, len(row), len(t.spec.cols)))
	}
	if b.rows == 0 && b.events == 0 {
		b.started = time.Now()
	}
	if t.idx != nil {
		if i, ok := t.idx[key]; ok {
			if ver >= t.vers[i] {
				t.rows[i], t.vers[i] = row, ver
			}
			return
		}
		t.idx[key] = len(t.rows)
	}
	t.rows = append(t.rows, row)
	t.vers = append(t.vers, ver)
	b.rows++
}

// noteEvent accounts one consumed event of size bytes committed at ts.
func (b *Batch) noteEvent(bytes int, ts Micros) {
	if b.rows == 0 && b.events == 0 {
		b.started = time.Now()
	}
	b.events++
	b.bytes += bytes
	if ts != 0 && ts != NullTime {
		b.commits = append(b.commits, ts)
	}
}

// Rows is the number of rows in the batch.
func (b *Batch) Rows() int { return b.rows }

// Bytes is the size of the events the batch was built from.
func (b *Batch) Bytes() int { return b.bytes }

// Events is the number of events the batch was built from.
func (b *Batch) Events() int { return b.events }

// Age is how long ago the first event entered the batch.
func (b *Batch) Age(now time.Time) time.Duration {
	if b.events == 0 && b.rows == 0 {
		return 0
	}
	return now.Sub(b.started)
}

// Table returns the rows buffered for table.
func (b *Batch) Table(table string) [][]any {
	if t := b.byName[table]; t != nil {
		return t.rows
	}
	return nil
}

// Reset empties the batch for reuse.
func (b *Batch) Reset() {
	for _, t := range b.bufs {
		t.rows = t.rows[:0]
		t.vers = t.vers[:0]
		if t.idx != nil {
			clear(t.idx)
		}
	}
	b.rows, b.bytes, b.events = 0, 0, 0
	b.commits = b.commits[:0]
}

// RowsByTable reports the row count of every non-empty table.
func (b *Batch) RowsByTable() map[string]int {
	m := map[string]int{}
	for _, t := range b.bufs {
		if len(t.rows) > 0 {
			m[t.spec.name] = len(t.rows)
		}
	}
	return m
}

// Write inserts every non-empty table, one insert each, in dependency order.
// It is safe to call again after an error: rows carry versions, so a table
// written twice holds the same rows after FINAL.
func (b *Batch) Write(ctx context.Context, w Writer) error { return b.WriteParallel(ctx, w, 1) }

// WriteParallel inserts the tables with up to n inserts at a time (each
// table is still one atomic insert; the order between tables does not
// matter for correctness, only the offset commit after all of them does).
func (b *Batch) WriteParallel(ctx context.Context, w Writer, n int) error {
	if n <= 1 {
		for _, t := range b.bufs {
			if len(t.rows) == 0 {
				continue
			}
			if err := w.Insert(ctx, t.spec.name, t.spec.cols, t.rows); err != nil {
				return fmt.Errorf("insert %s batch (%d rows): %w", t.spec.name, len(t.rows), err)
			}
		}
		return nil
	}
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for _, t := range b.bufs {
		if len(t.rows) == 0 {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(t *tableBuf) {
			defer func() { <-sem; wg.Done() }()
			if err := w.Insert(ctx, t.spec.name, t.spec.cols, t.rows); err != nil {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("insert %s batch (%d rows): %w", t.spec.name, len(t.rows), err)
				}
				mu.Unlock()
			}
		}(t)
	}
	wg.Wait()
	return first
}

// Pool spreads concurrent inserts over several writers (e.g. several
// connections of one engine), each used by one insert at a time.
func Pool(ws ...Writer) Writer {
	p := &pool{idle: make(chan Writer, len(ws))}
	for _, w := range ws {
		p.idle <- w
	}
	return p
}

type pool struct{ idle chan Writer }

func (p *pool) Insert(ctx context.Context, table string, columns []string, rows [][]any) error {
	var w Writer
	select {
	case w = <-p.idle:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { p.idle <- w }()
	return w.Insert(ctx, table, columns, rows)
}
