package replay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/internal/envelope"
	"github.com/orderflow/orderflow/pipeline"
	"github.com/orderflow/orderflow/sinks"
)

// Outputs are the tables replay can rebuild (the transformer's outputs).
var Outputs = []string{
	pipeline.OutRawCustomers, pipeline.OutRawProducts, pipeline.OutRawCampaigns, pipeline.OutRawOrders, pipeline.OutRawOrderItems,
	pipeline.OutCustomers, pipeline.OutProducts, pipeline.OutCampaigns, pipeline.OutCustomerHist,
	pipeline.OutCustomerOrders, pipeline.OutOrderLines, pipeline.OutChangeLog,
}

// FactTables can be re-derived for a date range.
var FactTables = []string{pipeline.OutCustomerOrders, pipeline.OutOrderLines}

// ShadowSuffix names the table a rebuild is written to before the swap.
const ShadowSuffix = "__shadow"

// Options configure a replay.
type Options struct {
	Brokers     []string
	KafkaOpts   []kgo.Opt
	TopicPrefix string
	Schema      string // default "public"
	// Tables to rebuild (default: every output; with From/To: the facts).
	Tables []string
	// From and To (both set, or neither) re-derive only the facts placed in
	// [From, To), rounded out to whole months: the tables' partitions, which
	// are replaced one by one (ALTER TABLE ... REPLACE PARTITION).
	From, To time.Time
	// BatchRows per insert (default 200,000).
	BatchRows int
	// AllowTruncatedLog rebuilds from where each partition starts now even
	// when Kafka's retention (or DeleteRecords) removed its first records.
	// Without it such a log is an error: the rebuilt tables would lack the
	// rows of the removed events. Set it after a backfill, whose snapshot
	// events republish every current row (history tables such as
	// change_log and customer_history still lack what was removed).
	AllowTruncatedLog bool
	// Progress receives a line every ProgressInterval (default 2s).
	Progress         io.Writer
	ProgressInterval time.Duration

	// beforeSwap is called just before the swap (tests).
	beforeSwap func()
}

// Result summarizes a replay.
type Result struct {
	Events    int64            // change events applied
	Poison    int64            // events that could not be applied (skipped; the transformer dead-lettered them)
	Rows      map[string]int64 // rows written per rebuilt table
	Swapped   []string         // tables exchanged with their shadow
	Replaced  []string         // partitions replaced (date-range mode), "table:partition"
	CaughtUp  int64            // events applied after the swap (written to the live tables)
	Elapsed   time.Duration
	EndOffset map[string]int64 // per topic: sum of the offsets read up to
}

// Run rebuilds the tables in eng from the topics.
func Run(ctx context.Context, eng sinks.Engine, o Options, log *slog.Logger) (Result, error) {
	start := time.Now()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("stage", "replay")
	if o.Schema == "" {
		o.Schema = "public"
	}
	if o.BatchRows <= 0 {
		o.BatchRows = 200_000
	}
	if o.ProgressInterval <= 0 {
		o.ProgressInterval = 2 * time.Second
	}
	if len(o.Brokers) == 0 || o.TopicPrefix == "" {
		return Result{}, errors.New("replay: brokers and topic prefix are required")
	}
	ranged := !o.From.IsZero() || !o.To.IsZero()
	if ranged && (o.From.IsZero() || o.To.IsZero() || !o.From.Before(o.To)) {
		return Result{}, errors.New("replay: --from and --to go together, with from before to")
	}
	tables := o.Tables
	if len(tables) == 0 {
		tables = Outputs
		if ranged {
			tables = FactTables
		}
	}
	for _, t := range tables {
		if !slices.Contains(Outputs, t) {
			return Result{}, fmt.Errorf("replay: unknown table %q (one of %v)", t, Outputs)
		}
		if ranged && !slices.Contains(FactTables, t) {
			return Result{}, fmt.Errorf("replay: a date range re-derives facts only (%v), not %s", FactTables, t)
		}
	}
	r := &replayer{o: o, eng: eng, log: log, tables: tables, ranged: ranged, res: Result{Rows: map[string]int64{}, EndOffset: map[string]int64{}},
		state: pipeline.NewState(), batch: pipeline.NewBatch(), next: map[string]map[int32]int64{}}
	if ranged {
		r.fromMonth, r.toMonth = monthOf(o.From), monthOf(o.To.Add(-time.Microsecond))
	}
	err := r.run(ctx)
	r.res.Elapsed = time.Since(start)
	return r.res, err
}

type replayer struct {
	o      Options
	eng    sinks.Engine
	log    *slog.Logger
	tables []string
	ranged bool
	res    Result

	fromMonth, toMonth int // YYYYMM, inclusive (ranged)

	state *pipeline.State
	batch *pipeline.Batch
	next  map[string]map[int32]int64 // topic -> partition -> next offset to read
	live  bool                       // writing to the live tables (after the swap)

	applied atomic.Int64 // events applied (progress)
	written atomic.Int64 // rows written (progress)
}

func monthOf(t time.Time) int { t = t.UTC(); return t.Year()*100 + int(t.Month()) }

func (r *replayer) topic(table string) string {
	return envelope.Topic(r.o.TopicPrefix, r.o.Schema, table)
}

func (r *replayer) run(ctx context.Context) error {
	for _, t := range r.tables {
		sh := sinks.QuoteIdent(t + ShadowSuffix)
		if err := r.eng.Exec(ctx, "DROP TABLE IF EXISTS "+sh); err != nil {
			return fmt.Errorf("replay: drop old shadow of %s: %w", t, err)
		}
		if err := r.eng.Exec(ctx, "CREATE TABLE "+sh+" AS "+sinks.QuoteIdent(t)); err != nil {
			return fmt.Errorf("replay: create shadow of %s: %w", t, err)
		}
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, t := range r.tables {
			_ = r.eng.Exec(dctx, "DROP TABLE IF EXISTS "+sinks.QuoteIdent(t+ShadowSuffix))
		}
	}()
	stopProg := r.progress()
	defer stopProg()

	// Build the shadows from the start of the log to its end as of now, then
	// once more to the end as of then (the transformer kept writing the live
	// tables meanwhile), then swap, then apply what arrived during the swap
	// to the live tables.
	for pass := 0; pass < 2; pass++ {
		if err := r.readToEnd(ctx); err != nil {
			return err
		}
	}
	if r.o.beforeSwap != nil {
		r.o.beforeSwap()
	}
	if err := r.swap(ctx); err != nil {
		return err
	}
	r.live = true
	before := r.res.Events
	if err := r.readToEnd(ctx); err != nil {
		return err
	}
	r.res.CaughtUp = r.res.Events - before
	r.log.Info("replay done", "events", r.res.Events, "rows", r.res.Rows, "swapped", r.res.Swapped, "replaced", r.res.Replaced, "caught_up", r.res.CaughtUp)
	return nil
}

// readToEnd applies every committed event up to the topics' current last
// stable offsets: the dimension topics and order items first (every
// version, so every as-of join is answered), then orders.
func (r *replayer) readToEnd(ctx context.Context) error {
	side := []string{r.topic(pipeline.TCustomers), r.topic(pipeline.TProducts), r.topic(pipeline.TCampaigns), r.topic(pipeline.TOrderItems)}
	if err := r.consume(ctx, side); err != nil {
		return err
	}
	r.state.DrainRepairs(r.batch)
	if err := r.consume(ctx, []string{r.topic(pipeline.TOrders)}); err != nil {
		return err
	}
	return r.flush(ctx)
}

func (r *replayer) consume(ctx context.Context, topics []string) error {
	base := append([]kgo.Opt{kgo.SeedBrokers(r.o.Brokers...)}, r.o.KafkaOpts...)
	admCl, err := kgo.NewClient(base...)
	if err != nil {
		return fmt.Errorf("replay: kafka client: %w", err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	lso, err := adm.ListCommittedOffsets(ctx, topics...)
	if err != nil {
		return fmt.Errorf("replay: list last stable offsets: %w", err)
	}
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		return fmt.Errorf("replay: list start offsets: %w", err)
	}
	target := map[string]map[int32]int64{}
	parts := map[string]map[int32]kgo.Offset{}
	var missing error
	lso.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			missing = fmt.Errorf("replay: topic %s: %w", o.Topic, o.Err)
			return
		}
		from := r.next[o.Topic][o.Partition]
		if s, ok := starts.Lookup(o.Topic, o.Partition); ok && s.Err == nil && s.Offset > from {
			if !r.o.AllowTruncatedLog && missing == nil {
				missing = fmt.Errorf("replay: %s[%d] starts at offset %d, not %d: its earlier events were deleted (Kafka retention or DeleteRecords), "+
					"so the rebuilt tables would lack their rows; nothing was swapped. Keep the captured topics' history (retention.ms=-1, or "+
					"cleanup.policy=compact), or run `orderflow backfill` (it republishes every current row) and then replay with -allow-truncated-log",
					o.Topic, o.Partition, s.Offset, from)
				return
			}
			from = s.Offset
		}
		if from >= o.Offset {
			return
		}
		if target[o.Topic] == nil {
			target[o.Topic], parts[o.Topic] = map[int32]int64{}, map[int32]kgo.Offset{}
		}
		target[o.Topic][o.Partition] = o.Offset
		parts[o.Topic][o.Partition] = kgo.NewOffset().At(from)
	})
	if missing != nil {
		return missing
	}
	if len(parts) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(append(base, kgo.ConsumePartitions(parts), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(), kgo.FetchMaxBytes(64<<20))...)
	if err != nil {
		return fmt.Errorf("replay: kafka consumer: %w", err)
	}
	defer cl.Close()
	table := map[string]string{}
	for _, t := range pipeline.CapturedTables {
		table[r.topic(t)] = t
	}
	remaining := 0
	for _, ps := range target {
		remaining += len(ps)
	}
	for remaining > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			if !kerr.IsRetriable(err) && ferr == nil {
				ferr = fmt.Errorf("replay: fetch %s[%d]: %w", t, p, err)
			}
		})
		if ferr != nil {
			return ferr
		}
		var aerr error
		fs.EachRecord(func(rec *kgo.Record) {
			if aerr != nil {
				return
			}
			tgt := target[rec.Topic][rec.Partition]
			if tgt == 0 || rec.Offset >= tgt {
				return
			}
			if r.next[rec.Topic] == nil {
				r.next[rec.Topic] = map[int32]int64{}
			}
			r.next[rec.Topic][rec.Partition] = rec.Offset + 1
			if rec.Offset+1 >= tgt {
				delete(target[rec.Topic], rec.Partition)
				remaining--
			}
			if rec.Attrs.IsControl() || len(rec.Value) == 0 {
				return
			}
			aerr = r.apply(ctx, table[rec.Topic], rec)
		})
		if aerr != nil {
			return aerr
		}
	}
	for t, ps := range r.next {
		var sum int64
		for _, n := range ps {
			sum += n
		}
		r.res.EndOffset[t] = sum
	}
	return nil
}

func (r *replayer) apply(ctx context.Context, table string, rec *kgo.Record) error {
	ev, err := envelope.Decode(rec.Value)
	if err != nil || ev == nil {
		if err != nil {
			r.res.Poison++
		}
		return nil
	}
	if table != pipeline.TOrders {
		if err := r.state.ApplySide(table, ev); err != nil {
			if _, ok := pipeline.IsPoison(err); ok {
				r.res.Poison++
				return nil
			}
			return err
		}
	}
	err = r.state.ApplyGroup(r.batch, pipeline.Rec{Table: table, Key: rec.Key, Partition: rec.Partition, Size: len(rec.Value), Event: ev})
	if err != nil {
		if _, ok := pipeline.IsPoison(err); ok {
			r.res.Poison++
			return nil
		}
		return err
	}
	r.res.Events++
	r.applied.Add(1)
	if r.batch.Rows() >= r.o.BatchRows {
		return r.flush(ctx)
	}
	return nil
}

func (r *replayer) flush(ctx context.Context) error {
	if r.batch.Rows() == 0 {
		return nil
	}
	if err := r.batch.Write(ctx, r); err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	r.batch.Reset()
	return nil
}

// Insert is the batch's writer: rows of rebuilt tables go to their shadow
// (to the live table after the swap); in date-range mode only facts placed
// in the range are kept.
func (r *replayer) Insert(ctx context.Context, table string, cols []string, rows [][]any) error {
	if !slices.Contains(r.tables, table) {
		return nil
	}
	if r.ranged {
		i := slices.Index(cols, "placed_at")
		kept := rows[:0:0]
		for _, row := range rows {
			if t, ok := row[i].(time.Time); ok {
				if m := monthOf(t); m >= r.fromMonth && m <= r.toMonth {
					kept = append(kept, row)
				}
			}
		}
		rows = kept
		if len(rows) == 0 {
			return nil
		}
	}
	name := table
	if !r.live {
		name += ShadowSuffix
	}
	if err := r.eng.Insert(ctx, name, cols, rows); err != nil {
		return err
	}
	r.res.Rows[table] += int64(len(rows))
	r.written.Add(int64(len(rows)))
	return nil
}

// swap makes the shadows live: EXCHANGE TABLES (atomic on an Atomic
// database) per table, or REPLACE PARTITION per month in date-range mode
// (atomic per partition). Readers see the old or the new table, never an
// empty or half-built one.
func (r *replayer) swap(ctx context.Context) error {
	for _, t := range r.tables {
		q, sh := sinks.QuoteIdent(t), sinks.QuoteIdent(t+ShadowSuffix)
		if !r.ranged {
			if err := r.eng.Exec(ctx, "EXCHANGE TABLES "+q+" AND "+sh); err != nil {
				return fmt.Errorf("replay: exchange %s with its shadow: %w", t, err)
			}
			r.res.Swapped = append(r.res.Swapped, t)
			continue
		}
		for m := r.fromMonth; m <= r.toMonth; m = nextMonth(m) {
			p := strconv.Itoa(m)
			if err := r.eng.Exec(ctx, "ALTER TABLE "+q+" REPLACE PARTITION "+p+" FROM "+sh); err != nil {
				return fmt.Errorf("replay: replace partition %s of %s: %w", p, t, err)
			}
			r.res.Replaced = append(r.res.Replaced, t+":"+p)
		}
	}
	return nil
}

func nextMonth(m int) int {
	if m%100 == 12 {
		return (m/100+1)*100 + 1
	}
	return m + 1
}

func (r *replayer) progress() func() {
	if r.o.Progress == nil {
		return func() {}
	}
	stop, done := make(chan struct{}), make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		t := time.NewTicker(r.o.ProgressInterval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				el := time.Since(start)
				ev := r.applied.Load()
				fmt.Fprintf(r.o.Progress, "replay: %d events applied (%.0f/s), %d rows written, %s elapsed\n",
					ev, float64(ev)/el.Seconds(), r.written.Load(), el.Round(time.Second))
			}
		}
	}()
	return func() {
		close(stop)
		<-done
	}
}
