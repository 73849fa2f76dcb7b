package pipeline

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/sinks"
)

// Writer is the part of sinks.Engine the transformer needs: one atomic
// insert with an explicit column list.
type Writer interface {
	Insert(ctx context.Context, table string, columns []string, rows [][]any) error
}

var (
	_ Writer       = sinks.Engine(nil)
	_ Writer       = (*pool)(nil)
	_ columnWriter = (*pool)(nil)
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
	kinds    []colKind
	coalesce bool // keep only the last row per key within a batch
}

type colSpec struct {
	name string
	kind colKind
}

func spec(name string, cols []colSpec, coalesce bool) outSpec {
	o := outSpec{name: name, coalesce: coalesce}
	for _, c := range cols {
		o.cols = append(o.cols, c.name)
		o.kinds = append(o.kinds, c.kind)
	}
	return o
}

// outputs in insert order: mirrors and dimensions before facts, the change
// log last. Each column has the Go type its values are buffered as.
var outputs = []outSpec{
	spec(OutRawCustomers, []colSpec{{"id", kI64}, {"name", kStr}, {"email", kStr}, {"phone", kNullStr}, {"segment", kStr}, {"region", kStr}, {"country", kStr}, {"city", kStr}, {"created_at", kTime}, {"updated_at", kTime}, {"_version", kU64}, {"_is_deleted", kU8}, {"_commit_ts", kTime}}, true),
	spec(OutRawProducts, []colSpec{{"id", kI64}, {"sku", kStr}, {"name", kStr}, {"category", kStr}, {"price", kMoney}, {"currency", kStr}, {"created_at", kTime}, {"updated_at", kTime}, {"_version", kU64}, {"_is_deleted", kU8}, {"_commit_ts", kTime}}, true),
	spec(OutRawCampaigns, []colSpec{{"id", kI64}, {"code", kStr}, {"name", kStr}, {"starts_at", kTime}, {"ends_at", kTime}, {"discount_percent", kMoney}, {"created_at", kTime}, {"updated_at", kTime}, {"_version", kU64}, {"_is_deleted", kU8}, {"_commit_ts", kTime}}, true),
	spec(OutRawOrders, []colSpec{{"id", kI64}, {"customer_id", kI64}, {"campaign_id", kNullI64}, {"status", kStr}, {"currency", kStr}, {"subtotal", kMoney}, {"discount", kMoney}, {"total", kMoney}, {"placed_at", kTime}, {"paid_at", kNullTime}, {"shipped_at", kNullTime}, {"delivered_at", kNullTime}, {"cancelled_at", kNullTime}, {"refunded_at", kNullTime}, {"created_at", kTime}, {"updated_at", kTime}, {"_version", kU64}, {"_is_deleted", kU8}, {"_commit_ts", kTime}}, true),
	spec(OutRawOrderItems, []colSpec{{"id", kI64}, {"order_id", kI64}, {"line_no", kI32}, {"product_id", kI64}, {"quantity", kI32}, {"unit_price", kMoney}, {"discount", kMoney}, {"created_at", kTime}, {"updated_at", kTime}, {"_version", kU64}, {"_is_deleted", kU8}, {"_commit_ts", kTime}}, true),
	spec(OutCustomers, []colSpec{{"customer_id", kI64}, {"name", kStr}, {"email", kStr}, {"phone", kNullStr}, {"segment", kStr}, {"region", kStr}, {"country", kStr}, {"city", kStr}, {"signup_at", kTime}, {"updated_at", kTime}, {"_version", kU64}, {"_is_deleted", kU8}}, true),
	spec(OutProducts, []colSpec{{"product_id", kI64}, {"sku", kStr}, {"name", kStr}, {"category", kStr}, {"price", kMoney}, {"currency", kStr}, {"updated_at", kTime}, {"_version", kU64}, {"_is_deleted", kU8}}, true),
	spec(OutCampaigns, []colSpec{{"campaign_id", kI64}, {"code", kStr}, {"name", kStr}, {"starts_at", kTime}, {"ends_at", kTime}, {"discount_percent", kMoney}, {"updated_at", kTime}, {"_version", kU64}, {"_is_deleted", kU8}}, true),
	spec(OutCustomerHist, []colSpec{{"customer_id", kI64}, {"valid_from_lsn", kU64}, {"valid_from", kTime}, {"name", kStr}, {"email", kStr}, {"phone", kNullStr}, {"segment", kStr}, {"region", kStr}, {"country", kStr}, {"city", kStr}, {"signup_at", kTime}, {"_version", kU64}, {"_is_deleted", kU8}}, true),
	spec(OutCustomerOrders, []colSpec{{"order_id", kI64}, {"customer_id", kI64}, {"customer_name", kStr}, {"customer_email", kStr}, {"customer_segment", kStr}, {"customer_region", kStr}, {"customer_country", kStr}, {"customer_city", kStr}, {"customer_signup_at", kTime}, {"customer_version", kU64}, {"campaign_id", kNullI64}, {"campaign_code", kStr}, {"status", kStr}, {"currency", kStr}, {"placed_at", kTime}, {"paid_at", kNullTime}, {"shipped_at", kNullTime}, {"delivered_at", kNullTime}, {"cancelled_at", kNullTime}, {"refunded_at", kNullTime}, {"item_count", kU32}, {"units", kU32}, {"subtotal", kMoney}, {"discount", kMoney}, {"total", kMoney}, {"updated_at", kTime}, {"_version", kU64}, {"_is_deleted", kU8}}, true),
	spec(OutOrderLines, []colSpec{{"order_id", kI64}, {"item_id", kI64}, {"line_no", kI32}, {"product_id", kI64}, {"product_sku", kStr}, {"product_name", kStr}, {"product_category", kStr}, {"quantity", kI32}, {"unit_price", kMoney}, {"discount", kMoney}, {"line_total", kMoney}, {"customer_id", kI64}, {"customer_segment", kStr}, {"customer_region", kStr}, {"customer_country", kStr}, {"campaign_id", kNullI64}, {"status", kStr}, {"placed_at", kTime}, {"product_first", kU8}, {"_version", kU64}, {"_is_deleted", kU8}}, true),
	spec(OutChangeLog, []colSpec{{"table_name", kStr}, {"key", kStr}, {"op", kStr}, {"lsn", kU64}, {"txid", kI64}, {"commit_ts", kTime}, {"before", kBytes}, {"after", kBytes}, {"event_id", kU64}}, false),
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

// tableBuf holds one output table's rows column by column (typed slices:
// no value is boxed).
type tableBuf struct {
	spec outSpec
	n    int
	cols []column
	vers []uint64 // _version of each row (coalescing keeps the newest)
	// row index by key, for coalescing (idx is nil when the table is not
	// coalesced): keys {id, 0} (most tables) in idx1, by id; keys {a, b}
	// (order_lines: order and item id) in idx2, by b, with a; idx holds a
	// key {a, b} whose b idx2 holds with another a (an item moved to
	// another order). The idMaps' lookups cost a fraction of the
	// struct-keyed map's.
	idx1 idMap[int32]
	idx2 idMap[keyRow]
	idx  map[rowKey]int32
	// pend, for the tables the apply writes most, holds the last rows
	// (t.n-pend.len() on) as compact structs: the writer turns them into
	// columns (materialize) off the sequential apply's goroutine.
	pend pendingRows
}

// pendingRows are a table's rows not yet in its columns.
type pendingRows interface {
	len() int
	fill(t *tableBuf) // appends every pending row to t's columns, in order
	reset()
}

// lazyRow is a row kept as a struct until its batch is written; write puts
// its values into a table's columns.
type lazyRow[T any] interface {
	*T
	write(r rowW)
}

// pendRows holds a table's pending rows of type T.
type pendRows[T any, P lazyRow[T]] struct {
	rows []T
	tmp  T // a row being written into the columns (addLazy)
}

func (p *pendRows[T, P]) len() int { return len(p.rows) }

func (p *pendRows[T, P]) fill(t *tableBuf) {
	for i := range p.rows {
		P(&p.rows[i]).write(rowW{t: t, app: true})
	}
	p.reset()
}

func (p *pendRows[T, P]) reset() {
	clear(p.rows) // no references kept to a written batch's strings
	p.rows = p.rows[:0]
}

// materialize moves the table's pending rows into its columns.
func (t *tableBuf) materialize() {
	if t.pend != nil && t.pend.len() > 0 {
		t.pend.fill(t)
	}
}

// addLazy adds (or coalesces) a row of t kept as a struct in p until the
// batch is written; it keeps the versions and coalescing of Batch.row.
func addLazy[T any, P lazyRow[T]](b *Batch, t *tableBuf, p *pendRows[T, P], key rowKey, ver uint64, row P) {
	inCols := t.n - len(p.rows)
	switch r := b.slot(t, key, ver); {
	case r.skip:
	case r.app:
		p.rows = append(p.rows, *row)
	case r.i >= inCols:
		p.rows[r.i-inCols] = *row
	default: // coalesced onto a row already in the columns
		// written from a copy held by p: calling write on row itself
		// would make every caller's row escape to the heap
		p.tmp = *row
		P(&p.tmp).write(r)
		var zero T
		p.tmp = zero
	}
}

// lookup returns the row index of key and whether it has one, else records
// that key is row n.
func (t *tableBuf) lookup(key rowKey, n int) (int, bool) {
	if key.b == 0 {
		p, added := t.idx1.slot(key.a)
		if !added {
			return int(*p), true
		}
		*p = int32(n)
		return 0, false
	}
	p, added := t.idx2.slot(key.b)
	switch {
	case added:
		*p = keyRow{a: key.a, i: int32(n)}
		return 0, false
	case p.a == key.a:
		return int(p.i), true
	}
	if i, ok := t.idx[key]; ok {
		return int(i), true
	}
	t.idx[key] = int32(n)
	return 0, false
}

// keyRow is idx2's value: the key's first part and the row index.
type keyRow struct {
	a int64
	i int32
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
	// held: the polled records whose values the rows reference (bytes
	// columns), recycled by the transformer once the batch is written
	held []*kgo.Record

	// The facts and change_log rows are kept as structs (tableBuf.pend)
	// and put into columns by the batch's writer: that takes about a
	// quarter of the sequential apply's CPU off its goroutine, onto the
	// writer's, which waited for the apply half of the time. The raw
	// mirrors' rows stay written in place: moving them too made the writer
	// the slower of the two (BenchmarkDrain, see the README).
	facts, lines, clog *tableBuf
	factRows           pendRows[factRow, *factRow]
	lineRows           pendRows[lineRow, *lineRow]
	clogRows           pendRows[clogRow, *clogRow]
}

// NewBatch returns an empty batch.
func NewBatch() *Batch {
	b := &Batch{byName: make(map[string]*tableBuf, len(outputs))}
	for _, o := range outputs {
		t := &tableBuf{spec: o, cols: make([]column, len(o.kinds))}
		for j, k := range o.kinds {
			t.cols[j].kind = k
		}
		if o.coalesce {
			t.idx = make(map[rowKey]int32)
		}
		b.bufs = append(b.bufs, t)
		b.byName[o.name] = t
	}
	b.facts, b.lines, b.clog = b.byName[OutCustomerOrders], b.byName[OutOrderLines], b.byName[OutChangeLog]
	b.facts.pend, b.lines.pend, b.clog.pend = &b.factRows, &b.lineRows, &b.clogRows
	return b
}

// row starts a row of table with key and version: the returned writer takes
// the row's values in column order and must be finished with end. A row of a
// coalesced table replaces the buffered row of its key when ver is at least
// that row's version, and is dropped otherwise.
func (b *Batch) row(table string, key rowKey, ver uint64) rowW {
	t := b.byName[table]
	if t == nil {
		panic("pipeline: unknown output table " + table)
	}
	t.materialize() // a row written in place follows the pending ones
	return b.slot(t, key, ver)
}

// slot is Batch.row for a table whose pending rows the caller accounts for.
func (b *Batch) slot(t *tableBuf, key rowKey, ver uint64) rowW {
	if b.rows == 0 && b.events == 0 {
		b.started = time.Now()
	}
	if t.idx != nil {
		if i, ok := t.lookup(key, t.n); ok {
			if ver >= t.vers[i] {
				t.vers[i] = ver
				return rowW{t: t, i: i}
			}
			return rowW{t: t, skip: true}
		}
	}
	t.vers = append(t.vers, ver)
	t.n++
	b.rows++
	return rowW{t: t, i: t.n - 1, app: true}
}

// add appends (or coalesces) a row given as values in column order (nil is
// NULL, or the zero value of a non-Nullable column).
func (b *Batch) add(table string, key rowKey, ver uint64, row []any) {
	t := b.byName[table]
	if t != nil && len(row) != len(t.spec.cols) {
		panic(fmt.Sprintf("pipeline: %s row has %d values for %d columns", table, len(row), len(t.spec.cols)))
	}
	r := b.row(table, key, ver)
	for _, v := range row {
		r = r.value(v)
	}
	r.end()
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

// Table returns the rows buffered for table, one []any per row (NULL as
// nil).
func (b *Batch) Table(table string) [][]any {
	if t := b.byName[table]; t != nil {
		return t.rowValues()
	}
	return nil
}

// Reset empties the batch for reuse.
func (b *Batch) Reset() {
	for _, t := range b.bufs {
		for j := range t.cols {
			t.cols[j].reset()
		}
		if t.pend != nil {
			t.pend.reset()
		}
		t.n = 0
		t.vers = t.vers[:0]
		if t.idx != nil {
			t.idx1.clear()
			t.idx2.clear()
			clear(t.idx)
		}
	}
	b.rows, b.bytes, b.events = 0, 0, 0
	b.commits = b.commits[:0]
	clear(b.held) // not written: the records go to the garbage collector
	b.held = b.held[:0]
}

// RowsByTable reports the row count of every non-empty table.
func (b *Batch) RowsByTable() map[string]int {
	m := map[string]int{}
	for _, t := range b.bufs {
		if t.n > 0 {
			m[t.spec.name] = t.n
		}
	}
	return m
}

// columnWriter is implemented by writers that take a batch column by column
// (sinks/chdb): typed slices, nothing boxed. See chdb.Engine.InsertColumns.
type columnWriter interface {
	InsertColumns(ctx context.Context, table string, columns []string, data []any) error
}

// insert writes one table's rows through w.
func (t *tableBuf) insert(ctx context.Context, w Writer) error {
	var err error
	if cw, ok := w.(columnWriter); ok {
		err = cw.InsertColumns(ctx, t.spec.name, t.spec.cols, t.columnData())
	} else {
		err = w.Insert(ctx, t.spec.name, t.spec.cols, t.rowValues())
	}
	if err != nil {
		return fmt.Errorf("insert %s batch (%d rows): %w", t.spec.name, t.n, err)
	}
	return nil
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
			if t.n == 0 {
				continue
			}
			if err := t.insert(ctx, w); err != nil {
				return err
			}
		}
		return nil
	}
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for _, t := range b.bufs {
		if t.n == 0 {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(t *tableBuf) {
			defer func() { <-sem; wg.Done() }()
			if err := t.insert(ctx, w); err != nil {
				mu.Lock()
				if first == nil {
					first = err
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

// InsertColumns passes a columnar batch on, as rows to a writer that only
// takes rows.
func (p *pool) InsertColumns(ctx context.Context, table string, columns []string, data []any) error {
	var w Writer
	select {
	case w = <-p.idle:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { p.idle <- w }()
	if cw, ok := w.(columnWriter); ok {
		return cw.InsertColumns(ctx, table, columns, data)
	}
	return w.Insert(ctx, table, columns, rowsOf(data))
}
