package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/orderflow/orderflow/internal/envelope"
)

// Config configures a Transformer.
type Config struct {
	Brokers     []string
	KafkaOpts   []kgo.Opt // TLS, SASL, ... applied to every client
	TopicPrefix string    // topics are <prefix>.<schema>.<table>
	Schema      string    // captured schema, default "public"
	Group       string    // consumer group, default "orderflow-transform"
	DLQTopic    string    // default <prefix>.dlq

	MaxRows  int           // flush when a batch holds this many rows (default 50,000)
	MaxBytes int           // ... or was built from this many event bytes (default 16 MiB)
	MaxAge   time.Duration // ... or its first event is this old (default 200ms)
	MaxPoll  int           // records per poll (default 10,000)

	// Backlog limits replace MaxRows, MaxBytes and MaxAge while the
	// transformer is behind: while at least MaxRows events wait in its
	// partitions (consumer lag) or a poll comes back full, freshness is
	// seconds off whatever the batch size, and larger batches cost less per
	// row (fewer, larger parts: less insert overhead and far less merging).
	// Defaults 400,000 rows, 128 MiB, 3s; a negative BacklogRows, or one at
	// most MaxRows, turns the mode off.
	BacklogRows  int
	BacklogBytes int
	BacklogAge   time.Duration

	// FetchMaxBytes bounds what the consumer buffers (default 32 MiB).
	FetchMaxBytes int32
	// InsertParallelism is how many tables of a batch are inserted at once
	// (default 1; more pays off with a Pool of engine connections).
	InsertParallelism int
	// FlushAttempts is how often a batch write is tried before the
	// transformer gives up and exits (default 8, about 10 s of backoff).
	FlushAttempts int

	// onFlush, when set (tests, benchmarks), sees every flushed batch's
	// event commit times and the insert acknowledgement time.
	onFlush func(commits []Micros, rows map[string]int, at time.Time)
}

func (c *Config) defaults() {
	if c.Schema == "" {
		c.Schema = "public"
	}
	if c.Group == "" {
		c.Group = "orderflow-transform"
	}
	if c.DLQTopic == "" {
		c.DLQTopic = c.TopicPrefix + ".dlq"
	}
	if c.MaxRows <= 0 {
		c.MaxRows = 50_000
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = 16 << 20
	}
	if c.MaxAge <= 0 {
		c.MaxAge = 200 * time.Millisecond
	}
	if c.MaxPoll <= 0 {
		c.MaxPoll = 10_000
	}
	if c.BacklogRows == 0 {
		c.BacklogRows = 400_000
	}
	if c.BacklogBytes <= 0 {
		c.BacklogBytes = 128 << 20
	}
	if c.BacklogAge <= 0 {
		c.BacklogAge = 3 * time.Second
	}
	if c.FlushAttempts <= 0 {
		c.FlushAttempts = 8
	}
	if c.FetchMaxBytes <= 0 {
		c.FetchMaxBytes = 32 << 20
	}
}

type tp struct {
	topic string
	part  int32
}

// Transformer consumes the captured topics and writes the query side.
type Transformer struct {
	cfg         Config
	w           Writer
	log         *slog.Logger
	m           *metrics
	topic       map[string]string // topic -> table
	side        []string          // dimension topics (read fully, outside the group)
	ordersTopic string
	all         []string // every captured topic (the group's)

	mu        sync.Mutex
	state     *State
	batch     *Batch
	group     *kgo.Client
	sideCl    *kgo.Client
	adm       *kadm.Client
	offsets   *offsetLister                 // the barrier's listings
	pool      *fetchPool                    // fetch buffers, lent to both consumers
	events    map[string]prometheus.Counter // events_total by topic (cheaper than a label lookup per event)
	next      map[tp]kgo.EpochOffset        // next offset to commit per group partition
	resume    map[tp]int64                  // orders partitions re-read for state up to here
	sideNext  map[tp]int64
	lag       map[tp]int64
	behind    bool // at least MaxRows events of lag, or the poll was full: backlog limits
	ready     chan struct{}
	spare     chan *Batch     // the batch not being built (one is in flight at most)
	pos       map[tp]int64    // next offset to consume per group partition
	ordersLSO map[int32]int64 // orders partitions' last stable offsets, listed at the last barrier
	// stable: every captured partition's last stable offset as listed by
	// the last barrier that completed (the side state holds every
	// dimension event committed before that listing). A poll whose
	// records all lie below it needs no new barrier: see apply.
	stable     map[tp]int64
	itemTarget map[int64]int64 // order id -> orders-partition offset to reach before its item change is derived
	inflight   *inflight
	// broken is the first failed write (or the fatal error Run ends with):
	// from then on nothing is written or committed by this process. A later
	// batch's offsets lie past the failed batch's events, so committing
	// them (say in the flush on leaving the group, the sink back by then)
	// would skip those events for good; the restart redoes them from the
	// last commit instead.
	broken error

	// reused buffers of the records of one poll and their decoded envelopes
	groupRecs, sideRecs []*kgo.Record
	groupDec, sideDec   []decoded
}

// New returns a transformer writing through w. reg may be nil.
func New(cfg Config, w Writer, reg prometheus.Registerer, log *slog.Logger) (*Transformer, error) {
	if len(cfg.Brokers) == 0 || cfg.TopicPrefix == "" {
		return nil, errors.New("transform: brokers and topic prefix are required")
	}
	cfg.defaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &Transformer{
		cfg: cfg, w: w, log: log.With("stage", "transform"), m: newMetrics(reg),
		topic: map[string]string{}, state: NewState(), batch: NewBatch(),
		next: map[tp]kgo.EpochOffset{}, resume: map[tp]int64{}, sideNext: map[tp]int64{}, lag: map[tp]int64{},
		ready: make(chan struct{}), spare: make(chan *Batch, 1),
		pool: &fetchPool{}, pos: map[tp]int64{}, ordersLSO: map[int32]int64{}, itemTarget: map[int64]int64{}, stable: map[tp]int64{}, events: map[string]prometheus.Counter{},
	}
	t.state.DeferDerivations() // apply calls DeriveDirty after each poll
	t.spare <- NewBatch()
	for _, tb := range CapturedTables {
		name := envelope.Topic(cfg.TopicPrefix, cfg.Schema, tb)
		t.topic[name] = tb
		t.all = append(t.all, name)
		if tb != TOrders {
			t.side = append(t.side, name)
		} else {
			t.ordersTopic = name
		}
	}
	return t, nil
}

// Topics returns every captured topic the transformer consumes.
func (t *Transformer) Topics() []string { return append([]string(nil), t.all...) }

// Ready is closed once the dimension state is loaded and the group consumer
// has started.
func (t *Transformer) Ready() <-chan struct{} { return t.ready }

// Run consumes until ctx ends. On shutdown it flushes and commits what it has
// applied and returns ctx's error.
func (t *Transformer) Run(ctx context.Context) error {
	base := append([]kgo.Opt{kgo.SeedBrokers(t.cfg.Brokers...)}, t.cfg.KafkaOpts...)
	admCl, err := kgo.NewClient(base...)
	if err != nil {
		return fmt.Errorf("transform: kafka admin client: %w", err)
	}
	defer admCl.Close()
	t.adm = kadm.NewClient(admCl)
	t.offsets = newOffsetLister(admCl, append(append([]string(nil), t.side...), t.ordersTopic))
	if err := t.waitTopics(ctx); err != nil {
		return err
	}
	t.warnTruncated(ctx)

	// Dimension topics: every instance reads every partition from the start
	// (state restore), read_committed, keeping control records so that the
	// position past a transaction marker is visible (the barrier compares
	// positions with last stable offsets).
	t.sideCl, err = kgo.NewClient(append(base,
		kgo.ConsumeTopics(t.side...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		kgo.FetchMaxBytes(t.cfg.FetchMaxBytes),
		kgo.WithPools(t.pool),
	)...)
	if err != nil {
		return fmt.Errorf("transform: kafka side client: %w", err)
	}
	defer t.sideCl.Close()
	start := time.Now()
	if err := t.catchUp(ctx); err != nil {
		return err
	}
	t.log.Info("dimension state loaded", "seconds", time.Since(start).Seconds(), "sizes", t.state.Sizes())

	t.group, err = kgo.NewClient(append(base,
		kgo.ConsumerGroup(t.cfg.Group),
		kgo.ConsumeTopics(t.all...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.KeepControlRecords(), // commit past transaction markers: lag 0 when caught up
		kgo.FetchMaxBytes(t.cfg.FetchMaxBytes),
		kgo.WithPools(t.pool),
		kgo.AdjustFetchOffsetsFn(t.adjustOffsets),
		kgo.OnPartitionsRevoked(t.onRevoked),
		kgo.OnPartitionsLost(t.onLost),
		kgo.ProducerLinger(0),
	)...)
	if err != nil {
		return fmt.Errorf("transform: kafka group client: %w", err)
	}
	defer t.group.Close()
	close(t.ready)

	for {
		wait := time.Second
		t.mu.Lock()
		if age := t.batch.Age(time.Now()); t.batch.Events() > 0 {
			_, _, maxAge := t.limits()
			wait = max(maxAge-age, time.Millisecond)
		}
		t.mu.Unlock()
		pctx, cancel := context.WithTimeout(ctx, wait)
		fs := t.group.PollRecords(pctx, t.cfg.MaxPoll)
		cancel()
		if ctx.Err() != nil {
			t.group.AllowRebalance()
			return t.shutdown(ctx.Err())
		}
		var fetchErr error
		fs.EachError(func(topic string, p int32, err error) {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				return
			}
			if errors.Is(err, kgo.ErrClientClosed) || !kerr.IsRetriable(err) {
				fetchErr = fmt.Errorf("transform: fetch %s[%d]: %w", topic, p, err)
				return
			}
			t.log.Warn("fetch error", "topic", topic, "partition", p, "err", err)
		})
		if fetchErr != nil {
			t.group.AllowRebalance()
			return t.shutdown(fetchErr)
		}
		t.mu.Lock()
		err := t.pollInflight()
		if err == nil {
			err = t.apply(ctx, fs)
		}
		if err == nil && t.due() {
			err = t.startFlush(ctx)
		}
		t.mu.Unlock()
		t.group.AllowRebalance()
		if err != nil {
			if ctx.Err() != nil {
				return t.shutdown(ctx.Err())
			}
			return t.shutdown(err)
		}
	}
}

func (t *Transformer) shutdown(cause error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t.mu.Lock()
	defer t.mu.Unlock()
	if errors.Is(cause, context.Canceled) || errors.Is(cause, context.DeadlineExceeded) {
		if err := t.flushLocked(ctx); err != nil {
			t.log.Error("final flush", "err", err)
		}
	} else {
		if t.inflight != nil {
			<-t.inflight.done
			t.inflight = nil
		}
		// Close leaves the group, which calls onRevoked: no flush there.
		if t.broken == nil {
			t.broken = cause
		}
	}
	return cause
}

// waitTopics waits until every captured topic exists (capture creates them)
// and creates the dead-letter topic when it is missing.
func (t *Transformer) waitTopics(ctx context.Context) error {
	for logged := false; ; {
		md, err := t.adm.ListTopics(ctx, t.all...)
		missing := []string{}
		if err == nil {
			for _, name := range t.all {
				if d, ok := md[name]; !ok || d.Err != nil {
					missing = append(missing, name)
				}
			}
		}
		if err == nil && len(missing) == 0 {
			break
		}
		if !logged {
			t.log.Info("waiting for captured topics", "missing", strings.Join(missing, ","), "err", err)
			logged = true
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	resp, err := t.adm.CreateTopic(ctx, -1, -1, nil, t.cfg.DLQTopic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("transform: create dead-letter topic %s: %w", t.cfg.DLQTopic, err)
	}
	// A topic just created is not in every broker's metadata at once.
	for i := 0; i < 50; i++ {
		md, err := t.adm.ListTopics(ctx, t.cfg.DLQTopic)
		if err == nil && md.Has(t.cfg.DLQTopic) && md[t.cfg.DLQTopic].Err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

// warnTruncated logs every captured topic partition whose log no longer
// starts at offset 0: retention or DeleteRecords removed events, so the state
// rebuilt from the topic lacks their rows (compaction keeps the start at 0).
// A later change of such a row is then derived without its earlier state (an
// order without its items, say) until a backfill republishes the current
// rows.
func (t *Transformer) warnTruncated(ctx context.Context) {
	starts, err := t.adm.ListStartOffsets(ctx, t.all...)
	if err != nil {
		t.log.Warn("list start offsets of the captured topics", "err", err)
		return
	}
	starts.Each(func(o kadm.ListedOffset) {
		if o.Err == nil && o.Offset > 0 {
			t.log.Warn("captured topic partition no longer starts at offset 0: its earlier events were deleted (retention or DeleteRecords), "+
				"so the state rebuilt from it lacks their rows; run `orderflow backfill` to republish the current rows, and keep the topics' history (retention.ms=-1)",
				"topic", o.Topic, "partition", o.Partition, "start_offset", o.Offset)
		}
	})
}

// catchUp is the as-of barrier: it reads the dimension topics up to their
// last stable offsets as of now. Called after fact records were polled, it
// guarantees that every dimension event committed before them (capture
// writes transactions in LSN order) is in state before they are applied.
func (t *Transformer) catchUp(ctx context.Context) error {
	clear(t.stable) // until this barrier completes
	t.m.barriers.Inc()
	lso, err := t.offsets.committed(ctx)
	if err != nil {
		return fmt.Errorf("transform: list last stable offsets: %w", err)
	}
	lso.Each(func(o kadm.ListedOffset) {
		if o.Topic == t.ordersTopic && o.Err == nil && o.Partition >= 0 {
			t.ordersLSO[o.Partition] = o.Offset
		}
	})
	target := map[tp]int64{}
	lso.Each(func(o kadm.ListedOffset) {
		if o.Err != nil || o.Partition < 0 || o.Topic == t.ordersTopic {
			return
		}
		if k := (tp{o.Topic, o.Partition}); t.sideNext[k] < o.Offset {
			target[k] = o.Offset
		}
	})
	if len(target) > 0 {
		starts, err := t.adm.ListStartOffsets(ctx, t.side...)
		if err != nil {
			return fmt.Errorf("transform: list start offsets: %w", err)
		}
		for k, lso := range target {
			if s, ok := starts.Lookup(k.topic, k.part); ok && s.Err == nil && s.Offset >= lso {
				delete(target, k) // nothing below the LSO is left
			}
		}
	}
	for empty := 0; len(target) > 0; {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		fs := t.sideCl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ferr error
		fs.EachError(func(topic string, p int32, err error) {
			if errors.Is(err, context.DeadlineExceeded) {
				return
			}
			if !kerr.IsRetriable(err) {
				ferr = fmt.Errorf("transform: fetch %s[%d]: %w", topic, p, err)
			}
		})
		if ferr != nil {
			return ferr
		}
		if fs.NumRecords() == 0 {
			// Three empty long polls: nothing more is readable below the
			// targets (e.g. a trailing marker was compacted away).
			if empty++; empty >= 3 {
				t.log.Warn("side catch-up: targets not reached, no more records", "remaining", len(target))
				return nil // stable stays empty: the next poll lists again
			}
			continue
		}
		empty = 0
		t.sideRecs = records(fs, t.sideRecs)
		// in chunks: a fetch may hold far more records than a poll
		for lo := 0; lo < len(t.sideRecs); lo += sideChunk {
			recs := t.sideRecs[lo:min(lo+sideChunk, len(t.sideRecs))]
			t.sideDec = grow(t.sideDec, len(recs))
			dec := startDecode(recs, t.sideDec, t.topic, false)
			for i, r := range recs {
				dec.ready(i)
				k := tp{r.Topic, r.Partition}
				t.sideNext[k] = r.Offset + 1
				if r.Offset+1 >= target[k] {
					delete(target, k)
				}
				d := &t.sideDec[i]
				if r.Attrs.IsControl() || len(r.Value) == 0 || d.err != nil || d.ev == nil {
					continue // the group path sends an undecodable event to the DLQ
				}
				if err := t.state.applySideDecoded(t.topic[r.Topic], d.ev, d.before, d.after, d); err != nil {
					t.log.Debug("side event not applied", "topic", r.Topic, "offset", r.Offset, "err", err)
				}
			}
			// t.sideDec is not cleared: decodeRange resets every entry
			// it fills, and the stale entries only point into recycled
			// fetch buffers, which nothing reads through them; clearing
			// 8,192 entries of 848 bytes cost the apply more than that.
			dec.wait()
			recycle(recs) // applied: the state keeps copies
		}
		clear(t.sideRecs)
	}
	lso.Each(func(o kadm.ListedOffset) {
		if o.Err == nil && o.Partition >= 0 {
			t.stable[tp{o.Topic, o.Partition}] = o.Offset
		}
	})
	return nil
}

// belowStable reports whether every record of recs lies below its
// partition's last stable offset listed by the last completed barrier: it
// was committed before that listing, and so was every dimension event
// committed before it, which the side state already holds. A backlog is
// then applied without listing offsets before every poll.
func (t *Transformer) belowStable(recs []*kgo.Record) bool {
	var k tp
	lso, ok := int64(0), false
	for i, r := range recs {
		if rk := (tp{r.Topic, r.Partition}); i == 0 || rk != k { // a poll's records come in runs by partition
			k = rk
			lso, ok = t.stable[k]
		}
		if !ok || r.Offset >= lso {
			return false
		}
	}
	return true
}

// sideChunk bounds the side records decoded ahead at once (memory).
const sideChunk = 8192

// grow returns s with length n, reusing its array (the caller overwrites
// every element).
func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// apply runs the barrier and applies one poll's records.
func (t *Transformer) apply(ctx context.Context, fs kgo.Fetches) error {
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		if n := len(p.Records); n > 0 {
			t.lag[tp{p.Topic, p.Partition}] = p.HighWatermark - (p.Records[n-1].Offset + 1)
		}
	})
	t.reportLag(fs.NumRecords() >= t.cfg.MaxPoll)
	if fs.NumRecords() == 0 {
		return nil
	}
	// The polled records are decoded on other goroutines while the barrier
	// reads the dimension topics, and go on being decoded ahead of the
	// apply, which takes them in order after the barrier.
	t.groupRecs = records(fs, t.groupRecs)
	t.groupDec = grow(t.groupDec, len(t.groupRecs))
	dec := startDecode(t.groupRecs, t.groupDec, t.topic, true)
	var err error
	if !t.belowStable(t.groupRecs) {
		err = t.catchUp(ctx)
	}
	var run partRun
	for i, r := range t.groupRecs {
		if err != nil {
			break
		}
		if i == 0 || (tp{r.Topic, r.Partition}) != run.k {
			t.endRun(&run)
			t.startRun(&run, r)
		}
		dec.ready(i)
		err = t.applyRecord(ctx, r, &t.groupDec[i], &run)
	}
	t.endRun(&run)
	dec.wait()
	// The batch's change_log rows reference the records' values: it holds
	// the records until it is written, then recycles them. t.groupDec is
	// not cleared (see catchUp).
	t.batch.held = append(t.batch.held, t.groupRecs...)
	clear(t.groupRecs)
	// Facts of the orders changed by this poll, each derived once, before
	// the next barrier changes the dimension state.
	t.state.DeriveDirty(t.batch)
	if err != nil {
		return err
	}
	t.state.DrainRepairs(t.batch)
	t.drainItemChanges()
	return nil
}

// drainItemChanges re-derives orders whose items changed after their last
// order event, once their orders partition has been consumed up to the last
// stable offset listed after the item change was read: no order event
// committed before the item change can then be missing from the state.
func (t *Transformer) drainItemChanges() {
	changes := t.state.ItemChanges()
	var ready []int64
	for oid, p := range changes {
		target, ok := t.itemTarget[oid]
		if !ok {
			target, ok = t.ordersLSO[p]
			if !ok {
				continue
			}
			t.itemTarget[oid] = target
		}
		if t.pos[tp{t.ordersTopic, p}] >= target {
			ready = append(ready, oid)
			delete(t.itemTarget, oid)
		}
	}
	for oid := range t.itemTarget {
		if _, ok := changes[oid]; !ok {
			delete(t.itemTarget, oid)
		}
	}
	if len(ready) > 0 {
		t.state.DrainItemChanges(t.batch, ready)
	}
}

// eventsOf returns the events_total counter of topic.
func (t *Transformer) eventsOf(topic string) prometheus.Counter {
	c, ok := t.events[topic]
	if !ok {
		c = t.m.events.WithLabelValues(topic)
		t.events[topic] = c
	}
	return c
}

// partRun is what applying a run of records of one partition reads and
// changes of the transformer's per-partition maps: looked up once per run
// (a poll's records come in runs by partition) instead of once per record,
// and written back by endRun.
type partRun struct {
	k        tp
	on       bool // started and not ended
	table    string
	events   prometheus.Counter
	resumeAt int64 // resuming: the partition is re-read for state up to here
	resuming bool
	resumed  bool // resume reached: drop the partition's resume entry
	pos      int64
	next     kgo.EpochOffset
	hasNext  bool
}

// startRun starts the run of r's partition.
func (t *Transformer) startRun(run *partRun, r *kgo.Record) {
	k := tp{r.Topic, r.Partition}
	resumeAt, resuming := t.resume[k]
	*run = partRun{k: k, on: true, table: t.topic[r.Topic], events: t.eventsOf(r.Topic), resumeAt: resumeAt, resuming: resuming}
}

// endRun writes what the run changed back to the per-partition maps.
func (t *Transformer) endRun(run *partRun) {
	if !run.on {
		return
	}
	run.on = false
	t.pos[run.k] = run.pos
	if run.hasNext {
		t.next[run.k] = run.next
	}
	if run.resumed {
		delete(t.resume, run.k)
	}
}

// applyRecord applies one polled record of run's partition; d is its
// envelope, decoded ahead.
func (t *Transformer) applyRecord(ctx context.Context, r *kgo.Record, d *decoded, run *partRun) error {
	run.pos = r.Offset + 1
	table := run.table
	replaying := run.resuming && r.Offset < run.resumeAt
	if !replaying {
		run.next, run.hasNext = kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.Offset + 1}, true
	}
	if run.resuming && (!replaying || r.Offset+1 >= run.resumeAt) {
		run.resuming, run.resumed = false, true
		t.state.SetQuiet(r.Partition, false)
	}
	if len(r.Value) == 0 || r.Attrs.IsControl() {
		return nil // tombstone or transaction marker
	}
	loaded := loadedRecord(r)
	if loaded && table != TOrders {
		// A direct backfill wrote its rows; the side reader has it in the
		// join state. Counted, so that the batch's age commits its offset.
		if !replaying {
			run.events.Inc()
			t.batch.noteEvent(len(r.Value), 0)
		}
		return nil
	}
	ev, rawBefore, rawAfter, err := d.ev, d.before, d.after, d.err
	if err == nil && ev == nil {
		return nil
	}
	if err == nil {
		rec := Rec{Table: table, Key: r.Key, Partition: r.Partition, Size: len(r.Value), Event: ev, rawBefore: rawBefore, rawAfter: rawAfter, pre: d}
		if replaying {
			_ = t.state.Replay(rec) // a poison event was sent to the DLQ the first time
			return nil
		}
		run.events.Inc()
		if loaded {
			// Its rows are in ClickHouse already (a direct backfill); count
			// it so that the batch's age commits its offset.
			err = t.state.applyLoaded(rec)
			t.batch.noteEvent(rec.Size, 0)
		} else {
			err = t.state.ApplyGroup(t.batch, rec)
		}
	}
	if err == nil || replaying {
		return nil
	}
	reason, ok := IsPoison(err)
	if !ok {
		return err
	}
	return t.deadLetter(ctx, r, reason, err)
}

// deadLetter produces a poison record to the DLQ (synchronously: the offset
// is committed only after the DLQ has it).
func (t *Transformer) deadLetter(ctx context.Context, r *kgo.Record, reason string, cause error) error {
	t.log.Warn("poison event to dead-letter topic", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "reason", reason, "err", cause)
	rec := &kgo.Record{
		Topic: t.cfg.DLQTopic, Key: r.Key, Value: r.Value,
		Headers: append([]kgo.RecordHeader{
			{Key: "reason", Value: []byte(reason)},
			{Key: "error", Value: []byte(cause.Error())},
			{Key: "source_topic", Value: []byte(r.Topic)},
			{Key: "source_partition", Value: []byte(strconv.Itoa(int(r.Partition)))},
			{Key: "source_offset", Value: []byte(strconv.FormatInt(r.Offset, 10))},
		}, r.Headers...),
	}
	var err error
	for attempt := 1; attempt <= 5; attempt++ {
		if err = t.group.ProduceSync(ctx, rec).FirstErr(); err == nil || ctx.Err() != nil {
			break
		}
		t.log.Warn("produce to dead-letter topic failed, retrying", "attempt", attempt, "err", err)
		time.Sleep(time.Duration(attempt) * 200 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("transform: produce to dead-letter topic %s: %w", t.cfg.DLQTopic, err)
	}
	t.m.dlq.WithLabelValues(reason).Inc()
	return nil
}

// reportLag publishes the consumer lag by topic and decides whether the
// transformer is behind (backlog limits apply to the batch being built): at
// least MaxRows events wait in the partitions polled so far, or the poll
// came back full (fullPoll: more records were buffered than it could take).
// The second covers partitions not polled yet, whose lag is unknown: the
// consumer hands out one partition's records at a time.
func (t *Transformer) reportLag(fullPoll bool) {
	sum := map[string]int64{}
	for k, v := range t.lag {
		sum[k.topic] += max(v, 0)
	}
	var total int64
	for topic, v := range sum {
		t.m.lag.WithLabelValues(topic).Set(float64(v))
		total += v
	}
	t.behind = t.cfg.BacklogRows > t.cfg.MaxRows && (total >= int64(t.cfg.MaxRows) || fullPoll)
	if t.behind {
		t.m.backlog.Set(1)
	} else {
		t.m.backlog.Set(0)
	}
}

// limits returns the batch limits in force: the backlog ones while behind.
func (t *Transformer) limits() (rows, bytes int, age time.Duration) {
	if t.behind {
		return t.cfg.BacklogRows, t.cfg.BacklogBytes, t.cfg.BacklogAge
	}
	return t.cfg.MaxRows, t.cfg.MaxBytes, t.cfg.MaxAge
}

func (t *Transformer) due() bool {
	b := t.batch
	rows, bytes, age := t.limits()
	return b.Rows() >= rows || b.Bytes() >= bytes || (b.Events() > 0 && b.Age(time.Now()) >= age)
}

// flushLocked writes the current batch and commits the offsets it covers,
// synchronously, after any flush in flight (revocation, shutdown).
func (t *Transformer) flushLocked(ctx context.Context) error {
	if err := t.waitInflight(); err != nil {
		return err
	}
	if t.broken != nil {
		return fmt.Errorf("transform: not flushing after an earlier failure: %w", t.broken)
	}
	b, offs := t.takeBatch()
	err := t.writeAndCommit(ctx, b, offs)
	if err != nil {
		t.broken = err
	}
	t.spare <- b
	return err
}

// startFlush hands the current batch to a background write (one in flight:
// the next batch is built while the previous one is inserted, which keeps
// both cores busy) after the previous write has finished. Offsets are
// committed by the writer once its batch is in ClickHouse.
func (t *Transformer) startFlush(ctx context.Context) error {
	if err := t.waitInflight(); err != nil {
		return err
	}
	if t.broken != nil {
		return t.broken
	}
	b, offs := t.takeBatch()
	f := &inflight{done: make(chan struct{})}
	t.inflight = f
	go func() {
		defer close(f.done)
		// A shutdown lets the write in flight finish (bounded), so the
		// final flush can follow it instead of abandoning both.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		f.err = t.writeAndCommit(wctx, b, offs)
		t.spare <- b
	}()
	return nil
}

type inflight struct {
	done chan struct{}
	err  error
}

// pollInflight returns the error of a finished background write, if any.
func (t *Transformer) pollInflight() error {
	if f := t.inflight; f != nil {
		select {
		case <-f.done:
			t.inflight = nil
			if f.err != nil && t.broken == nil {
				t.broken = f.err
			}
			return f.err
		default:
		}
	}
	return nil
}

func (t *Transformer) waitInflight() error {
	f := t.inflight
	if f == nil {
		return nil
	}
	<-f.done
	t.inflight = nil
	if f.err != nil && t.broken == nil {
		t.broken = f.err
	}
	return f.err
}

// takeBatch swaps in an empty batch and returns the full one with the
// offsets its events end at.
func (t *Transformer) takeBatch() (*Batch, map[string]map[int32]kgo.EpochOffset) {
	b := t.batch
	t.batch = <-t.spare
	t.batch.Reset()
	offs := map[string]map[int32]kgo.EpochOffset{}
	for k, eo := range t.next {
		if offs[k.topic] == nil {
			offs[k.topic] = map[int32]kgo.EpochOffset{}
		}
		offs[k.topic][k.part] = eo
	}
	clear(t.next)
	return b, offs
}

// writeAndCommit writes b (retrying with backoff; rows are versioned, so a
// retry cannot double anything) and then commits offs. A failed write is
// fatal (the process restarts from the committed offsets); a failed commit
// is not (a later commit covers it; at worst events are applied again).
func (t *Transformer) writeAndCommit(ctx context.Context, b *Batch, offs map[string]map[int32]kgo.EpochOffset) error {
	if b.Rows() > 0 {
		start := time.Now()
		backoff := 100 * time.Millisecond
		for attempt := 1; ; attempt++ {
			err := b.WriteParallel(ctx, t.w, t.cfg.InsertParallelism)
			if err == nil {
				break
			}
			if attempt >= t.cfg.FlushAttempts || ctx.Err() != nil {
				return fmt.Errorf("transform: flush: %w", err)
			}
			t.log.Warn("flush failed, retrying", "attempt", attempt, "err", err)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 5*time.Second)
		}
		now := time.Now()
		t.m.flushSecs.Observe(now.Sub(start).Seconds())
		t.m.batchRows.Observe(float64(b.Rows()))
		byTable := b.RowsByTable()
		for table, n := range byTable {
			t.m.rows.WithLabelValues(table).Add(float64(n))
		}
		nowMicros := Micros(now.UnixMicro())
		for _, c := range b.commits {
			t.m.fresh.Observe(float64(nowMicros-c) / 1e6)
		}
		if t.cfg.onFlush != nil {
			t.cfg.onFlush(b.commits, byTable, now)
		}
	}
	recycle(b.held) // written: nothing reads the records' values any more
	b.held = b.held[:0]
	if len(offs) == 0 {
		return nil
	}
	var cerr error
	t.group.CommitOffsetsSync(ctx, offs, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			cerr = err
			return
		}
		for _, rt := range resp.Topics {
			for _, rp := range rt.Partitions {
				if e := kerr.ErrorForCode(rp.ErrorCode); e != nil && cerr == nil {
					cerr = fmt.Errorf("%s[%d]: %w", rt.Topic, rp.Partition, e)
				}
			}
		}
	})
	if cerr != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		t.log.Warn("commit offsets failed; a later commit covers them", "err", cerr)
	}
	return nil
}

// adjustOffsets restarts every assigned orders partition from its start so
// the order state is rebuilt (the topic is keyed by order id); events below
// the committed offset only rebuild state, events from it on produce rows.
func (t *Transformer) adjustOffsets(_ context.Context, offs map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for topic, ps := range offs {
		if t.topic[topic] != TOrders {
			continue
		}
		for p, o := range ps {
			committed := o.EpochOffset().Offset
			if committed <= 0 {
				continue
			}
			t.resume[tp{topic, p}] = committed
			t.state.SetQuiet(p, true)
			ps[p] = kgo.NewOffset().AtStart()
		}
	}
	return offs, nil
}

func (t *Transformer) onRevoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.flushLocked(ctx); err != nil {
		t.log.Error("flush on revoke", "err", err)
	}
	t.forget(revoked)
}

func (t *Transformer) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	// The partitions belong to someone else already: their offsets are not
	// committed (the new owner redoes them); rows already built from them are
	// still written, which is harmless (versioned rows).
	t.forget(lost)
}

func (t *Transformer) forget(parts map[string][]int32) {
	for topic, ps := range parts {
		for _, p := range ps {
			k := tp{topic, p}
			delete(t.next, k)
			delete(t.pos, k)
			delete(t.resume, k)
			delete(t.lag, k)
			if t.topic[topic] == TOrders {
				t.state.DropPartition(p)
			}
		}
	}
}
