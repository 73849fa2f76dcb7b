package backfill

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/orderflow/orderflow/ingest/capture"
	"github.com/orderflow/orderflow/internal/config"
	"github.com/orderflow/orderflow/internal/envelope"
	"github.com/orderflow/orderflow/pipeline"
)

// DefaultTables are the captured tables, in the order they are published:
// dimensions first, then orders with their items.
var DefaultTables = []string{"customers", "products", "campaigns", "orders", "order_items"}

// Options configure a backfill. Zero values take the defaults noted.
type Options struct {
	Postgres config.Postgres // URL, Slot (capture's permanent slot), Publication
	Kafka    config.Kafka
	// Schema of the tables (default "public").
	Schema string
	// Tables to load (default DefaultTables). Every table needs a
	// single-column integer primary key; order_items is split by order_id.
	Tables []string
	// Workers copying chunks in parallel, each in its own transaction on the
	// exported snapshot (default 4, at most 64).
	Workers int
	// ChunkRows is the width of a primary-key range (default 50,000).
	ChunkRows int64
	// Partitions and ReplicationFactor of table topics created when missing
	// (as capture creates them: default 3 and the broker default).
	Partitions        int
	ReplicationFactor int
	// TopicRetentionMs is retention.ms of table topics created when missing
	// (as capture creates them: 0 or -1 keeps every event).
	TopicRetentionMs int64
	// NoCreateSlot: when capture's slot does not exist, take the snapshot
	// with a temporary slot instead of creating the permanent one.
	NoCreateSlot bool
	// Restart abandons an unfinished run and plans a new one.
	Restart bool
	// Progress receives a line per table every ProgressInterval (default 2s).
	Progress         io.Writer
	ProgressInterval time.Duration
	// TxnTimeout of the chunk transactions (default 2 minutes).
	TxnTimeout time.Duration
	// Registerer for the metrics (nil: none).
	Registerer prometheus.Registerer
	// Sink, when set, is direct mode: every chunk's ClickHouse rows (raw
	// mirror, dimensions, customer history, facts) are derived here, with
	// the transformer's code (pipeline.Snapshot), and written to Sink before
	// the chunk's Kafka transaction commits; the published events carry
	// pipeline.HeaderLoaded, so the transformer applies them to its state
	// only. Sink must be the transformer's ClickHouse database, migrated.
	Sink Sink

	// afterChunk is called after each chunk commits (tests).
	afterChunk func(table string, lo, hi int64)
	// afterWrite is called in direct mode after a chunk's rows are in
	// ClickHouse and before its Kafka transaction commits; an error aborts
	// the chunk there (tests: a crash in that window).
	afterWrite func(table string, lo, hi int64) error
}

func (o *Options) defaults() error {
	if o.Schema == "" {
		o.Schema = "public"
	}
	if len(o.Tables) == 0 {
		o.Tables = DefaultTables
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.Workers > 64 {
		return fmt.Errorf("backfill: at most 64 workers, got %d", o.Workers)
	}
	if o.ChunkRows <= 0 {
		o.ChunkRows = 50_000
	}
	if o.Partitions <= 0 {
		o.Partitions = 3
	}
	if o.ReplicationFactor == 0 {
		o.ReplicationFactor = -1
	}
	if o.ProgressInterval <= 0 {
		o.ProgressInterval = 2 * time.Second
	}
	if o.TxnTimeout <= 0 {
		o.TxnTimeout = 2 * time.Minute
	}
	if o.Postgres.Slot == "" || o.Kafka.TopicPrefix == "" || len(o.Kafka.Brokers) == 0 {
		return errors.New("backfill: PostgreSQL slot, Kafka brokers and topic prefix are required")
	}
	if o.Sink != nil {
		for _, t := range o.Tables {
			if !slices.Contains(DefaultTables, t) {
				return fmt.Errorf("backfill: direct mode derives the rows of %s only; %s is not one (leave out --direct to publish it for the transformer)",
					strings.Join(DefaultTables, ", "), t)
			}
		}
	}
	return nil
}

// dimensionTables are the tables a fact joins with.
var dimensionTables = []string{"customers", "products", "campaigns"}

// Sink is where direct mode writes: the transformer's ClickHouse database
// (a sinks.Engine).
type Sink interface {
	pipeline.Writer
	// Exec runs a statement without result (the tombstones of a resumed
	// run, see worker.chunk).
	Exec(ctx context.Context, query string) error
}

// Result summarizes one backfill attempt.
type Result struct {
	Run         string           // run id (the same across resumed attempts)
	Resumed     bool             // this attempt continued an unfinished run
	SnapshotLSN uint64           // _version of the rows this attempt published
	SlotCreated bool             // capture's slot was created with this snapshot
	Chunks      int              // chunks copied by this attempt
	Skipped     int              // chunks found done and skipped
	Rows        map[string]int64 // rows published by this attempt, per table
	Elapsed     time.Duration
}

// Run backfills until every chunk of the run is done or ctx ends.
func Run(ctx context.Context, o Options, log *slog.Logger) (Result, error) {
	start := time.Now()
	if err := o.defaults(); err != nil {
		return Result{}, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("stage", "backfill")
	met := newMetrics(o.Registerer)
	b := &backfill{o: o, log: log, met: met}
	return b.run(ctx, start)
}

type backfill struct {
	o     Options
	log   *slog.Logger
	met   *metrics
	kopts []kgo.Opt
	db    string
	meta  *pgx.Conn
	metaM sync.Mutex
	tabs  map[string]*tableMeta
	snap  *pipeline.Snapshot // direct mode's join state and row derivation
	// firstVersion is the version of the run's first attempt when this
	// attempt resumes it (0 otherwise): direct mode's rows of a chunk that
	// attempt wrote before dying are at or above it.
	firstVersion uint64
}

func (b *backfill) run(ctx context.Context, start time.Time) (Result, error) {
	o := b.o
	var err error
	if b.kopts, err = capture.KafkaClientOpts(o.Kafka); err != nil {
		return Result{}, err
	}
	b.meta, err = connect(ctx, o.Postgres.URL, false)
	if err != nil {
		return Result{}, err
	}
	defer func() { _ = b.meta.Close(context.Background()) }()
	b.db = b.meta.Config().Database
	if err := b.loadTables(ctx); err != nil {
		return Result{}, err
	}
	units, err := b.units()
	if err != nil {
		return Result{}, err
	}

	admCl, err := kgo.NewClient(b.kopts...)
	if err != nil {
		return Result{}, fmt.Errorf("kafka client: %w", err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	ckTopic := CheckpointTopic(o.Kafka.TopicPrefix)
	compact := "compact"
	if err := ensureTopic(ctx, adm, ckTopic, 1, int16(o.ReplicationFactor), map[string]*string{"cleanup.policy": &compact}); err != nil {
		return Result{}, err
	}
	for _, t := range o.Tables {
		if err := ensureTopic(ctx, adm, envelope.Topic(o.Kafka.TopicPrefix, o.Schema, t), int32(o.Partitions), int16(o.ReplicationFactor),
			capture.TableTopicConfigs(o.TopicRetentionMs)); err != nil {
			return Result{}, err
		}
	}
	if err := ensureTopic(ctx, adm, capture.DLQTopic(o.Kafka.TopicPrefix), 1, int16(o.ReplicationFactor), nil); err != nil {
		return Result{}, err
	}

	// Fence every producer an earlier attempt may have left with an open
	// transaction, then read the checkpoints read_committed.
	prev, _, err := readCheckpoints(ctx, b.kopts, ckTopic, b.db, o.Postgres.Slot, false)
	if err != nil {
		return Result{}, err
	}
	nFence := o.Workers
	if prev != nil {
		nFence = max(nFence, prev.Workers)
	}
	if err := fence(ctx, admCl, b.txnIDs(nFence), o.TxnTimeout); err != nil {
		return Result{}, err
	}
	run, done, err := readCheckpoints(ctx, b.kopts, ckTopic, b.db, o.Postgres.Slot, true)
	if err != nil {
		return Result{}, err
	}
	resume := run != nil && run.State == "running" && !o.Restart
	if resume && !sameUnits(run.Units, units) {
		return Result{}, fmt.Errorf("backfill: run %s (tables %s) is unfinished; run it again with the same --tables, or pass --restart to abandon it",
			run.ID, strings.Join(unitTables(run.Units), ","))
	}

	snap, err := exportSnapshot(ctx, o.Postgres, !o.NoCreateSlot, b.log)
	if err != nil {
		return Result{}, err
	}
	defer snap.close()
	version := snap.version()
	if o.Sink != nil {
		b.snap = pipeline.NewSnapshot(version, snap.at.UnixMilli())
	}
	b.log.Info("snapshot exported", "snapshot", snap.name, "consistent_point", snap.lsn.String(), "version", version,
		"slot", snap.slot, "temporary", !snap.created, "resume", resume)

	workers := make([]*worker, o.Workers)
	defer func() {
		for _, w := range workers {
			if w != nil {
				w.close()
			}
		}
	}()
	{
		g, gctx := errgroup.WithContext(ctx)
		for i := range workers {
			g.Go(func() error {
				w, err := b.newWorker(gctx, i, snap.name, version, snap.at)
				workers[i] = w
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return Result{}, err
		}
	}
	// Every worker holds the snapshot now; the exporting connection may go.
	snap.release()

	res := Result{Resumed: resume, SnapshotLSN: version, SlotCreated: snap.created, Rows: map[string]int64{}}
	if !resume {
		if run != nil && run.State == "running" {
			b.log.Warn("abandoning unfinished run (--restart)", "run", run.ID)
		}
		planned, err := b.plan(ctx, workers[0], units)
		if err != nil {
			return Result{}, err
		}
		run = &runRecord{Kind: "run", ID: strconv.FormatInt(time.Now().UnixMilli(), 36), State: "running", DB: b.db, Slot: o.Postgres.Slot,
			ChunkRows: o.ChunkRows, Units: planned, SnapLSN: version, StartedMs: time.Now().UnixMilli()}
	}
	if resume {
		b.firstVersion = run.SnapLSN
	}
	run.Workers = max(run.Workers, o.Workers)
	if err := writeRun(ctx, admCl, ckTopic, run); err != nil {
		return Result{}, err
	}
	res.Run = run.ID
	b.log.Info("backfill run", "run", run.ID, "resumed", resume, "workers", o.Workers, "chunk_rows", run.ChunkRows)

	// Tasks: phase 0 (everything but orders and their items), then phase 1,
	// so that the transformer has every customer, product and campaign
	// before the first order that refers to them.
	prog := newProgress(run.Units)
	var phases [2][]task
	for _, u := range run.Units {
		ph := 0
		if u.Table == "orders" || u.Table == "order_items" {
			ph = 1
		}
		for _, c := range u.chunks(run.ChunkRows) {
			key := chunkKey(b.db, o.Postgres.Slot, run.ID, u.Table, c[0])
			if cr, ok := done[key]; ok && cr.Hi == c[1] {
				b.log.Info("chunk done, skipping", "run", run.ID, "table", u.Table, "lo", c[0], "hi", c[1], "lsn", cr.LSN)
				prog.skip(cr.Rows)
				res.Skipped++
				b.met.chunks.WithLabelValues("skipped").Inc()
				continue
			}
			phases[ph] = append(phases[ph], task{u: u, lo: c[0], hi: c[1], key: key})
		}
	}
	if b.snap != nil && len(phases[1]) > 0 {
		// Direct mode derives facts here: the join state needs every
		// dimension row, including those of chunks done by an earlier
		// attempt and of dimension tables outside --tables. They are
		// copied from this attempt's snapshot, state only.
		inRun := map[string]bool{}
		for _, u := range run.Units {
			inRun[u.Table] = true
			if !slices.Contains(dimensionTables, u.Table) {
				continue
			}
			for _, c := range u.chunks(run.ChunkRows) {
				if _, ok := done[chunkKey(b.db, o.Postgres.Slot, run.ID, u.Table, c[0])]; ok {
					phases[0] = append(phases[0], task{u: u, lo: c[0], hi: c[1], stateOnly: true})
				}
			}
		}
		for _, d := range dimensionTables {
			if !inRun[d] {
				phases[0] = append(phases[0], task{u: unit{Table: d, Key: b.tabs[d].key, Copies: []string{d}}, lo: math.MinInt64, hi: math.MaxInt64, stateOnly: true})
			}
		}
	}
	stopProg := prog.start(o.Progress, o.ProgressInterval)
	var mu sync.Mutex
	for _, tasks := range phases {
		q := make(chan task)
		g, gctx := errgroup.WithContext(ctx)
		for _, w := range workers {
			g.Go(func() error {
				for t := range q {
					rows, err := w.chunk(gctx, run.ID, ckTopic, t, prog)
					if err != nil {
						return fmt.Errorf("backfill chunk %s [%d, %d]: %w", t.u.Table, t.lo, t.hi, err)
					}
					if t.stateOnly {
						continue
					}
					mu.Lock()
					res.Chunks++
					for k, v := range rows {
						res.Rows[k] += v
					}
					mu.Unlock()
					b.met.chunks.WithLabelValues("done").Inc()
					b.log.Debug("chunk committed", "run", run.ID, "table", t.u.Table, "lo", t.lo, "hi", t.hi, "rows", rows)
					if o.afterChunk != nil {
						o.afterChunk(t.u.Table, t.lo, t.hi)
					}
				}
				return nil
			})
		}
	feed:
		for _, t := range tasks {
			select {
			case q <- t:
			case <-gctx.Done():
				break feed
			}
		}
		close(q)
		if err := g.Wait(); err != nil {
			stopProg()
			return res, err
		}
		if err := ctx.Err(); err != nil {
			stopProg()
			return res, err
		}
	}
	stopProg()
	run.State, run.FinishedMs = "done", time.Now().UnixMilli()
	if err := writeRun(ctx, admCl, ckTopic, run); err != nil {
		return res, err
	}
	for _, w := range workers {
		w.close()
	}
	res.Elapsed = time.Since(start)
	b.log.Info("backfill done", "run", run.ID, "chunks", res.Chunks, "skipped", res.Skipped, "rows", res.Rows, "seconds", res.Elapsed.Seconds())
	return res, nil
}

func (b *backfill) txnIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = b.txnID(i)
	}
	return ids
}

func (b *backfill) txnID(i int) string {
	return fmt.Sprintf("%s-backfill-%s-%s-%d", b.o.Kafka.TopicPrefix, b.db, b.o.Postgres.Slot, i)
}

func writeRun(ctx context.Context, cl *kgo.Client, topic string, r *runRecord) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte(runKey(r.DB, r.Slot)), Value: v}).FirstErr(); err != nil {
		return fmt.Errorf("write backfill run record: %w", err)
	}
	return nil
}

func ensureTopic(ctx context.Context, adm *kadm.Client, topic string, partitions int32, rf int16, configs map[string]*string) error {
	resp, err := adm.CreateTopic(ctx, partitions, rf, configs, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	return nil
}

// units turns the requested tables into plan units (without ranges).
func (b *backfill) units() ([]unit, error) {
	want := map[string]bool{}
	for _, t := range b.o.Tables {
		want[t] = true
	}
	var out []unit
	for _, t := range b.o.Tables {
		switch {
		case t == "orders":
			u := unit{Table: "orders", Key: b.tabs[t].key, Copies: []string{"orders"}}
			if want["order_items"] {
				u.Copies = append(u.Copies, "order_items")
			}
			out = append(out, u)
		case t == "order_items" && want["orders"]:
			// copied with its orders
		case t == "order_items":
			if b.tabs[t].col("order_id") < 0 {
				return nil, errors.New("backfill: order_items has no order_id column")
			}
			out = append(out, unit{Table: t, Key: "order_id", Copies: []string{t}})
		default:
			out = append(out, unit{Table: t, Key: b.tabs[t].key, Copies: []string{t}})
		}
	}
	slices.SortStableFunc(out, func(a, c unit) int {
		pa, pc := a.Table == "orders" || a.Table == "order_items", c.Table == "orders" || c.Table == "order_items"
		switch {
		case pa == pc:
			return 0
		case pc:
			return -1
		}
		return 1
	})
	return out, nil
}

func sameUnits(a, c []unit) bool {
	return slices.Equal(unitTables(a), unitTables(c))
}

func unitTables(us []unit) []string {
	var out []string
	for _, u := range us {
		out = append(out, u.Copies...)
	}
	slices.Sort(out)
	return out
}

// plan measures every unit in the snapshot: key range and row counts.
func (b *backfill) plan(ctx context.Context, w *worker, units []unit) ([]unit, error) {
	out := make([]unit, len(units))
	for i, u := range units {
		u.Rows = map[string]int64{}
		var n int64
		q := fmt.Sprintf("SELECT count(*), coalesce(min(%[1]s), 0), coalesce(max(%[1]s), -1) FROM %[2]s",
			pgx.Identifier{u.Key}.Sanitize(), b.tabs[u.Table].ident)
		if err := w.conn.QueryRow(ctx, q).Scan(&n, &u.Min, &u.Max); err != nil {
			return nil, fmt.Errorf("plan %s: %w", u.Table, err)
		}
		u.Rows[u.Table] = n
		for _, c := range u.Copies {
			if c == u.Table {
				continue
			}
			if err := w.conn.QueryRow(ctx, "SELECT count(*) FROM "+b.tabs[c].ident).Scan(&n); err != nil {
				return nil, fmt.Errorf("plan %s: %w", c, err)
			}
			u.Rows[c] = n
		}
		out[i] = u
	}
	return out, nil
}

// progress counts rows per table.
type progress struct {
	tables []string
	total  map[string]int64
	prior  map[string]*atomic.Int64 // rows of chunks done by earlier attempts
	done   map[string]*atomic.Int64 // rows of this attempt
	began  time.Time
}

func newProgress(units []unit) *progress {
	p := &progress{total: map[string]int64{}, prior: map[string]*atomic.Int64{}, done: map[string]*atomic.Int64{}, began: time.Now()}
	for _, u := range units {
		for _, c := range u.Copies {
			p.tables = append(p.tables, c)
			p.total[c] = u.Rows[c]
			p.prior[c], p.done[c] = &atomic.Int64{}, &atomic.Int64{}
		}
	}
	return p
}

func (p *progress) skip(rows map[string]int64) {
	for t, n := range rows {
		if c := p.prior[t]; c != nil {
			c.Add(n)
		}
	}
}

func (p *progress) add(table string, n int64) {
	if c := p.done[table]; c != nil {
		c.Add(n)
	}
}

func (p *progress) print(w io.Writer) {
	el := time.Since(p.began).Seconds()
	for _, t := range p.tables {
		d, pr := p.done[t].Load(), p.prior[t].Load()
		all, tot := d+pr, p.total[t]
		rate := float64(d) / max(el, 1e-3)
		pct := 100.0
		if tot > 0 {
			pct = min(100*float64(all)/float64(tot), 100)
		}
		eta := "-"
		if all >= tot {
			eta = "0s"
		} else if rate > 0 {
			eta = (time.Duration(float64(tot-all)/rate) * time.Second).Round(time.Second).String()
		}
		fmt.Fprintf(w, "backfill %-12s %12d/%-12d rows %5.1f%%  %9.0f rows/s  ETA %s\n", t, all, tot, pct, rate, eta)
	}
}

func (p *progress) start(w io.Writer, every time.Duration) func() {
	if w == nil {
		return func() {}
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-stop:
				p.print(w)
				return
			case <-t.C:
				p.print(w)
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(stop)
			<-done
		})
	}
}

type metrics struct {
	rows    *prometheus.CounterVec
	chunks  *prometheus.CounterVec
	written prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "orderflow_backfill_rows_total",
			Help: "Snapshot rows published to Kafka, by table."}, []string{"table"}),
		chunks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "orderflow_backfill_chunks_total",
			Help: "Backfill chunks, by result (done: copied and committed; skipped: done by an earlier attempt)."}, []string{"result"}),
	}
	m.written = prometheus.NewCounter(prometheus.CounterOpts{Name: "orderflow_backfill_clickhouse_rows_total",
		Help: "Rows written to ClickHouse by a direct backfill (raw mirror, dimensions, history and facts)."})
	if reg != nil {
		reg.MustRegister(m.rows, m.chunks, m.written)
	}
	return m
}

// lsnText renders an LSN like PostgreSQL.
func lsnText(v uint64) string { return pglogrepl.LSN(v).String() }
