package backfill

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/internal/envelope"
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
	for _, t := range b.o.Tables {
		if _, ok := b.tabs[t]; ok {
			return fmt.Errorf("backfill: table %s listed twice", t)
		}
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

	mu      sync.Mutex
	prodErr error
}

func (b *backfill) newWorker(ctx context.Context, id int, snapName string, version uint64, at time.Time) (*worker, error) {
	w := &worker{b: b, id: id, version: version, at: at, enc: map[string]*rowEncoder{}}
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
}

func (w *worker) fail(err error) {
	w.mu.Lock()
	if w.prodErr == nil {
		w.prodErr = err
	}
	w.mu.Unlock()
}

// chunk copies one key range of every table of its unit into one Kafka
// transaction, with the chunk's checkpoint record.
func (w *worker) chunk(ctx context.Context, run, ckTopic string, t task, prog *progress) (map[string]int64, error) {
	b := w.b
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
	rows := map[string]int64{}
	for _, table := range t.u.Copies {
		tm := b.tabs[table]
		keyCol := t.u.Key
		if table != t.u.Table {
			keyCol = "order_id" // the items of the unit's orders
		}
		var n int64
		enc := w.enc[table]
		topic := envelope.Topic(b.o.Kafka.TopicPrefix, b.o.Schema, table)
		nowMs := time.Now().UnixMilli()
		p := newCopyParser(len(tm.cols), func(td *pglogrepl.TupleData) error {
			k, v := enc.encode(td, nowMs)
			w.prod.Produce(ctx, &kgo.Record{Topic: topic, Key: k, Value: v, Headers: hdr}, cb)
			n++
			if n%4096 == 0 {
				prog.add(table, 4096)
			}
			return nil
		})
		q := fmt.Sprintf("COPY (SELECT %s FROM %s WHERE %s BETWEEN %d AND %d) TO STDOUT", tm.list, tm.ident, pgx.Identifier{keyCol}.Sanitize(), t.lo, t.hi)
		if _, err := w.conn.PgConn().CopyTo(ctx, p, q); err != nil {
			return nil, abort(fmt.Errorf("copy %s: %w", table, err))
		}
		if err := p.finish(); err != nil {
			return nil, abort(fmt.Errorf("copy %s: %w", table, err))
		}
		prog.add(table, n%4096)
		rows[table] = n
		b.met.rows.WithLabelValues(table).Add(float64(n))
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
