package backfill

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/internal/envelope"
	"github.com/orderflow/orderflow/pipeline"
)

// tableMeta is a table's columns as capture's decoder needs them.
type tableMeta struct {
	name  string
	ident string // quoted schema.table
	oid   uint32
	cols  []*pglogrepl.RelationMessageColumn
	key   string // the single primary-key column
	list  string // quoted column list for COPY
}

func (t *tableMeta) col(name string) int {
	for i, c := range t.cols {
		if c.Name == name {
			return i
		}
	}
	return -1
}

func (b *backfill) loadTables(ctx context.Context) error {
	b.tabs = map[string]*tableMeta{}
	names := slices.Clone(b.o.Tables)
	for i, t := range names {
		if slices.Contains(names[:i], t) {
			return fmt.Errorf("backfill: table %s listed twice", t)
		}
	}
	if b.o.Sink != nil { // direct mode joins with every dimension table
		for _, d := range dimensionTables {
			if !slices.Contains(names, d) {
				names = append(names, d)
			}
		}
	}
	for _, t := range names {
		tm := &tableMeta{name: t, ident: pgx.Identifier{b.o.Schema, t}.Sanitize()}
		if err := b.meta.QueryRow(ctx, "SELECT to_regclass($1)::oid", tm.ident).Scan(&tm.oid); err != nil {
			return fmt.Errorf("backfill: table %s.%s does not exist", b.o.Schema, t)
		}
		rows, err := b.meta.Query(ctx, `
SELECT a.attname, a.atttypid, a.atttypmod, coalesce(a.attnum = ANY (i.indkey), false)
FROM pg_attribute a LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
ORDER BY a.attnum`, tm.oid)
		if err != nil {
			return fmt.Errorf("backfill: columns of %s: %w", t, err)
		}
		var keys []string
		var keyType uint32
		var names []string
		for rows.Next() {
			var name string
			var typ uint32
			var mod int32
			var key bool
			if err := rows.Scan(&name, &typ, &mod, &key); err != nil {
				rows.Close()
				return err
			}
			var flags uint8
			if key {
				flags = 1
				keys = append(keys, name)
				keyType = typ
			}
			tm.cols = append(tm.cols, &pglogrepl.RelationMessageColumn{Flags: flags, Name: name, DataType: typ, TypeModifier: mod})
			names = append(names, pgx.Identifier{name}.Sanitize())
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(keys) != 1 || (keyType != 20 && keyType != 23 && keyType != 21) {
			return fmt.Errorf("backfill: table %s needs a single-column integer primary key (has %v)", t, keys)
		}
		tm.key, tm.list = keys[0], strings.Join(names, ", ")
		b.tabs[t] = tm
	}
	return nil
}

// worker copies chunks in its own repeatable-read transaction on the
// exported snapshot and publishes them through its own transactional
// producer, one Kafka transaction per chunk.
type worker struct {
	b       *backfill
	id      int
	conn    *pgx.Conn
	prod    *kgo.Client
	enc     map[string]*rowEncoder
	at      time.Time
	version uint64
	batch   *pipeline.Batch // direct mode: the chunk's ClickHouse rows (one batch per chunk)

	mu      sync.Mutex
	prodErr error
}

func (b *backfill) newWorker(ctx context.Context, id int, snapName string, version uint64, at time.Time) (*worker, error) {
	w := &worker{b: b, id: id, version: version, at: at, enc: map[string]*rowEncoder{}}
	if b.snap != nil {
		w.batch = pipeline.NewSnapshotBatch()
	}
	var err error
	if w.conn, err = connect(ctx, b.o.Postgres.URL, false); err != nil {
		return w, err
	}
	if _, err := w.conn.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); err != nil {
		return w, fmt.Errorf("worker %d: begin: %w", id, err)
	}
	if _, err := w.conn.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+strings.ReplaceAll(snapName, "'", "''")+"'"); err != nil {
		return w, fmt.Errorf("worker %d: import snapshot %s: %w", id, snapName, err)
	}
	w.prod, err = kgo.NewClient(append(append([]kgo.Opt{}, b.kopts...),
		kgo.TransactionalID(b.txnID(id)),
		kgo.TransactionTimeout(b.o.TxnTimeout),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.MaxBufferedBytes(64<<20),
		kgo.MaxBufferedRecords(100_000),
		kgo.ProducerBatchMaxBytes(1<<20),
		kgo.ProducerLinger(10*time.Millisecond),
		kgo.ProducerBatchCompression(kgo.Lz4Compression(), kgo.NoCompression()),
		kgo.ProduceRequestTimeout(30*time.Second),
	)...)
	if err != nil {
		return w, fmt.Errorf("worker %d: kafka producer: %w", id, err)
	}
	if _, _, err := w.prod.ProducerID(ctx); err != nil {
		return w, fmt.Errorf("worker %d: init transactional producer: %w", id, err)
	}
	for name, tm := range b.tabs {
		w.enc[name] = newRowEncoder(b.o.Kafka.TopicPrefix, b.db, b.o.Schema, tm, version, at)
	}
	return w, nil
}

func (w *worker) close() {
	if w.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, _ = w.conn.Exec(ctx, "COMMIT")
		_ = w.conn.Close(ctx)
		cancel()
		w.conn = nil
	}
	if w.prod != nil {
		w.prod.Close()
		w.prod = nil
	}
}

type task struct {
	u      unit
	lo, hi int64
	key    string
	// stateOnly (direct mode): copy the dimension rows into the join state
	// only (rows published and written by an earlier attempt, or a table
	// outside --tables that the facts join with).
	stateOnly bool
}

func (w *worker) fail(err error) {
	w.mu.Lock()
	if w.prodErr == nil {
		w.prodErr = err
	}
	w.mu.Unlock()
}

// copyRows runs COPY of table's rows with keyCol in [lo, hi] in the
// worker's snapshot, handing each row's record key, value and image (a
// sub-slice of the value) to row.
func (w *worker) copyRows(ctx context.Context, table, keyCol string, lo, hi int64, row func(k, v, img []byte) error) error {
	tm := w.b.tabs[table]
	enc := w.enc[table]
	nowMs := time.Now().UnixMilli()
	p := newCopyParser(len(tm.cols), func(td *pglogrepl.TupleData) error {
		k, v, end := enc.encode(td, nowMs)
		return row(k, v, v[imageAt:end])
	})
	q := fmt.Sprintf("COPY (SELECT %s FROM %s WHERE %s BETWEEN %d AND %d) TO STDOUT", tm.list, tm.ident, pgx.Identifier{keyCol}.Sanitize(), lo, hi)
	if _, err := w.conn.PgConn().CopyTo(ctx, p, q); err != nil {
		return fmt.Errorf("copy %s: %w", table, err)
	}
	if err := p.finish(); err != nil {
		return fmt.Errorf("copy %s: %w", table, err)
	}
	return nil
}

// loadState copies a dimension range into the direct mode's join state.
func (w *worker) loadState(ctx context.Context, t task) error {
	return w.copyRows(ctx, t.u.Table, t.u.Key, t.lo, t.hi, func(k, _, img []byte) error {
		return w.b.snap.Dimension(nil, t.u.Table, k, img)
	})
}

// tombstones (direct mode, resumed run) deletes the chunk's rows that an
// earlier attempt of the run wrote to ClickHouse before dying and that this
// attempt's snapshot no longer has: an order or item deleted in between.
// Its delete event carries the key only, so without the order's state the
// transformer cannot place the delete in the facts' partition (placed_at);
// and the aborted attempt's events never reached it. Run after this
// attempt's rows are written: FINAL then shows, below this attempt's
// version and at or above the run's first, exactly the rows absent from
// this snapshot, and they are re-inserted as deleted at this version.
// Tables keyed by id alone and unpartitioned (dimensions, raw items) are
// deleted by their streamed delete events.
func (w *worker) tombstones(ctx context.Context, t task) error {
	b := w.b
	if b.firstVersion == 0 || t.u.Table != "orders" {
		return nil
	}
	for _, tk := range [][2]string{{"customer_orders", "order_id"}, {"order_lines", "order_id"}, {"raw_orders", "id"}} {
		// (the filter in a subquery: REPLACE's aliases would shadow the
		// columns in the same SELECT's WHERE)
		q := fmt.Sprintf("INSERT INTO %[1]s SELECT * REPLACE (toUInt64(%[3]d) AS _version, toUInt8(1) AS _is_deleted) FROM (SELECT * FROM %[1]s FINAL "+
			"WHERE %[2]s BETWEEN %[4]d AND %[5]d AND _version >= %[6]d AND _version < %[3]d AND _is_deleted = 0)",
			tk[0], tk[1], w.version, t.lo, t.hi, b.firstVersion)
		if err := b.o.Sink.Exec(ctx, q); err != nil {
			return fmt.Errorf("delete rows of %s [%d, %d] an earlier attempt wrote: %w", tk[0], t.lo, t.hi, err)
		}
	}
	return nil
}

// chunk copies one key range of every table of its unit into one Kafka
// transaction, with the chunk's checkpoint record. In direct mode it also
// derives the chunk's ClickHouse rows and writes them before the
// transaction commits (so a chunk is marked done only once its rows are in
// ClickHouse; a chunk copied again after a crash carries a newer snapshot
// version, which supersedes the rows of the attempt that died).
func (w *worker) chunk(ctx context.Context, run, ckTopic string, t task, prog *progress) (map[string]int64, error) {
	b := w.b
	if t.stateOnly {
		return nil, w.loadState(ctx, t)
	}
	direct := b.snap != nil
	if direct {
		w.batch.Reset()
	}
	if err := w.prod.BeginTransaction(); err != nil {
		return nil, fmt.Errorf("begin kafka transaction: %w", err)
	}
	w.prodErr = nil
	abort := func(cause error) error {
		actx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := w.prod.AbortBufferedRecords(actx); err == nil {
			_ = w.prod.EndTransaction(actx, kgo.TryAbort)
		}
		return cause
	}
	cb := func(_ *kgo.Record, err error) {
		if err != nil {
			w.fail(err)
		}
	}
	hdr := []kgo.RecordHeader{
		{Key: envelope.HeaderLSN, Value: strconv.AppendUint(nil, w.version, 10)},
		{Key: envelope.HeaderCommitTs, Value: strconv.AppendInt(nil, w.at.UnixMilli(), 10)},
		{Key: envelope.HeaderTxID, Value: []byte("0")},
		{Key: "backfill_run", Value: []byte(run)},
	}
	if direct {
		hdr = append(hdr, kgo.RecordHeader{Key: pipeline.HeaderLoaded, Value: []byte("1")})
	}
	rows := map[string]int64{}
	var orders, items []pipeline.Row
	for _, table := range t.u.Copies {
		keyCol := t.u.Key
		if table != t.u.Table {
			keyCol = "order_id" // the items of the unit's orders
		}
		var n int64
		topic := envelope.Topic(b.o.Kafka.TopicPrefix, b.o.Schema, table)
		err := w.copyRows(ctx, table, keyCol, t.lo, t.hi, func(k, v, img []byte) error {
			w.prod.Produce(ctx, &kgo.Record{Topic: topic, Key: k, Value: v, Headers: hdr}, cb)
			n++
			if n%4096 == 0 {
				prog.add(table, 4096)
			}
			if !direct {
				return nil
			}
			switch table {
			case "orders":
				orders = append(orders, pipeline.Row{Key: k, Image: img})
			case "order_items":
				items = append(items, pipeline.Row{Key: k, Image: img})
			default:
				return b.snap.Dimension(w.batch, table, k, img)
			}
			return nil
		})
		if err != nil {
			return nil, abort(err)
		}
		prog.add(table, n%4096)
		rows[table] = n
		b.met.rows.WithLabelValues(table).Add(float64(n))
	}
	if direct {
		if len(orders)+len(items) > 0 {
			if err := b.snap.Orders(w.batch, orders, items); err != nil {
				return nil, abort(err)
			}
		}
		if err := w.batch.Write(ctx, b.o.Sink); err != nil {
			return nil, abort(fmt.Errorf("write ClickHouse: %w", err))
		}
		b.met.written.Add(float64(w.batch.Rows()))
		if err := w.tombstones(ctx, t); err != nil {
			return nil, abort(err)
		}
		if b.o.afterWrite != nil {
			if err := b.o.afterWrite(t.u.Table, t.lo, t.hi); err != nil {
				return nil, abort(err)
			}
		}
	}
	cr := chunkRecord{Kind: "chunk", Run: run, Table: t.u.Table, Lo: t.lo, Hi: t.hi, Rows: rows, LSN: w.version,
		Attempt: lsnText(w.version), DoneMs: time.Now().UnixMilli()}
	v, _ := json.Marshal(cr)
	w.prod.Produce(ctx, &kgo.Record{Topic: ckTopic, Key: []byte(t.key), Value: v}, cb)
	if err := w.prod.Flush(ctx); err != nil {
		return nil, abort(fmt.Errorf("flush: %w", err))
	}
	w.mu.Lock()
	perr := w.prodErr
	w.mu.Unlock()
	if perr != nil {
		return nil, abort(fmt.Errorf("produce: %w", perr))
	}
	if err := w.prod.EndTransaction(ctx, kgo.TryCommit); err != nil {
		return nil, fmt.Errorf("commit kafka transaction: %w", err)
	}
	return rows, nil
}
