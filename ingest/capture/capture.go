package capture

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/internal/config"
	"github.com/orderflow/orderflow/internal/envelope"
)

// Options configure capture. Zero values take the defaults noted.
type Options struct {
	Postgres config.Postgres
	Kafka    config.Kafka

	// Tables to publish when capture creates the publication: "schema.table"
	// or "table" (public). Empty: every table in schema public
	// (FOR TABLES IN SCHEMA public).
	Tables []string
	// Partitions of each table topic capture creates (default 3).
	Partitions int
	// ReplicationFactor of created topics (-1 = broker default).
	ReplicationFactor int
	// TopicRetentionMs is retention.ms of each table topic capture creates
	// (0 or -1: -1, every event kept; see TableTopicConfigs).
	TopicRetentionMs int64
	// TransactionalID of the Kafka producer (default "<prefix>-capture-<slot>").
	TransactionalID string
	// FlushInterval is the longest a Kafka transaction stays open while
	// changes arrive (default 250ms); MaxTxnEvents caps its size (default 200000,
	// never splitting a PostgreSQL transaction).
	FlushInterval time.Duration
	MaxTxnEvents  int
	// StatusInterval between standby status updates (default 10s; keep it
	// well under wal_sender_timeout).
	StatusInterval time.Duration
	// HeartbeatInterval between pg_logical_emit_message heartbeats and slot
	// lag samples (default 10s; 0 keeps the default, negative disables).
	HeartbeatInterval time.Duration
	// SpoolDir holds streamed in-progress transactions (default os.TempDir()).
	SpoolDir string
	// DecodingWorkMem sets logical_decoding_work_mem for the walsender (e.g.
	// "64MB"): transactions larger than it are streamed before commit.
	// Empty keeps the server's setting.
	DecodingWorkMem string
	// KafkaTxnTimeout is the Kafka transaction timeout (default 10m; the
	// broker caps it at transaction.max.timeout.ms, 15m by default). One
	// PostgreSQL transaction must be produced within it.
	KafkaTxnTimeout time.Duration
	// MaxBufferedBytes bounds the records waiting for Kafka (default 16 MiB).
	MaxBufferedBytes int
	// RetryBackoff is the first pause before restarting after an error
	// (default 1s, doubling up to 30s). MaxRetries 0 retries forever.
	RetryBackoff time.Duration
	MaxRetries   int
	// OnReady is called when replication is streaming (for readiness).
	OnReady func(bool)
}

func (o *Options) defaults() {
	if o.Partitions <= 0 {
		o.Partitions = 3
	}
	if o.ReplicationFactor == 0 {
		o.ReplicationFactor = -1
	}
	if o.TransactionalID == "" {
		o.TransactionalID = o.Kafka.TopicPrefix + "-capture-" + o.Postgres.Slot
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = 250 * time.Millisecond
	}
	if o.MaxTxnEvents <= 0 {
		o.MaxTxnEvents = 200000
	}
	if o.StatusInterval <= 0 {
		o.StatusInterval = 10 * time.Second
	}
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval = 10 * time.Second
	}
	if o.KafkaTxnTimeout <= 0 {
		o.KafkaTxnTimeout = 10 * time.Minute
	}
	if o.MaxBufferedBytes <= 0 {
		o.MaxBufferedBytes = 16 << 20
	}
	if o.RetryBackoff <= 0 {
		o.RetryBackoff = time.Second
	}
}

// HeartbeatPrefix is the pg_logical_emit_message prefix of heartbeats.
const HeartbeatPrefix = "orderflow_heartbeat"

// Capture streams a PostgreSQL replication slot into Kafka.
type Capture struct {
	opts Options
	log  *slog.Logger
	met  *Metrics

	ready atomic.Bool
	// flushed is the LSN most recently made durable in Kafka (or passed
	// while idle); it is what the slot is told.
	flushed atomic.Uint64
}

// New returns a capture; met may come from NewMetrics(nil) in tests.
func New(opts Options, log *slog.Logger, met *Metrics) *Capture {
	opts.defaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if met == nil {
		met = NewMetrics(nil)
	}
	return &Capture{opts: opts, log: log.With("stage", "capture", "slot", opts.Postgres.Slot), met: met}
}

// Ready reports whether replication is streaming.
func (c *Capture) Ready() bool { return c.ready.Load() }

// ErrTerminal marks errors a restart does not fix (configuration, rights).
var ErrTerminal = errors.New("terminal")

func terminal(err error) error { return fmt.Errorf("%w: %w", ErrTerminal, err) }

// Run captures until ctx is done, restarting the session after retryable
// errors (a lost connection, a broker hiccup, the slot still held by a
// killed predecessor). It returns ctx's error on shutdown.
func (c *Capture) Run(ctx context.Context) error {
	backoff := c.opts.RetryBackoff
	for attempt := 1; ; attempt++ {
		start := time.Now()
		err := c.session(ctx)
		c.setReady(false)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err == nil {
			err = errors.New("replication stream ended")
		}
		if errors.Is(err, ErrTerminal) {
			return err
		}
		if c.opts.MaxRetries > 0 && attempt >= c.opts.MaxRetries {
			return err
		}
		if time.Since(start) > time.Minute {
			backoff = c.opts.RetryBackoff
		}
		c.met.Restarts.Inc()
		wait := backoff + time.Duration(rand.Int64N(int64(backoff)/4+1))
		c.log.Warn("capture session failed; restarting", "err", err, "in", wait.String())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

func (c *Capture) setReady(v bool) {
	c.ready.Store(v)
	if c.opts.OnReady != nil {
		c.opts.OnReady(v)
	}
}

// item is what the replication reader hands the processor.
type item struct {
	walStart uint64
	data     []byte // pgoutput message; nil for a keepalive position
}

// session is one replication session: connect, find where Kafka left off,
// stream until an error.
func (c *Capture) session(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	o := c.opts

	meta, err := pgx.Connect(ctx, o.Postgres.URL)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer func() { _ = meta.Close(context.Background()) }()
	db := meta.Config().Database
	if err := c.ensurePublication(ctx, meta); err != nil {
		return err
	}

	kopts, err := KafkaClientOpts(o.Kafka)
	if err != nil {
		return terminal(err)
	}
	snk, err := newSink(kopts, o.TransactionalID, int32(o.Partitions), int16(o.ReplicationFactor), o.MaxBufferedBytes, o.KafkaTxnTimeout)
	if err != nil {
		return err
	}
	defer snk.close()
	ckTopic := CheckpointTopic(o.Kafka.TopicPrefix)
	compact := "compact"
	if err := snk.ensureTopic(ctx, ckTopic, 1, map[string]*string{"cleanup.policy": &compact}); err != nil {
		return err
	}
	if err := snk.ensureTopic(ctx, DLQTopic(o.Kafka.TopicPrefix), 1, nil); err != nil {
		return err
	}
	// Topics of every published table exist from the start, so consumers can
	// subscribe before the first change arrives (Relation messages still add
	// the topics of tables published later).
	if err := c.ensureTableTopics(ctx, meta, snk); err != nil {
		return err
	}
	if err := snk.init(ctx); err != nil {
		return err
	}
	ckKey := db + "/" + o.Postgres.Slot
	ck, err := readCheckpoint(ctx, kopts, ckTopic, ckKey)
	if err != nil {
		return err
	}

	repl, err := c.connectReplication(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = repl.Close(context.Background()) }()
	if err := c.ensureSlot(ctx, meta, repl, db); err != nil {
		return err
	}
	var resume pglogrepl.LSN
	if ck != nil {
		resume = pglogrepl.LSN(ck.LSN)
	}
	args := []string{"proto_version '2'", "publication_names '" + o.Postgres.Publication + "'", "messages 'true'", "streaming 'on'"}
	if err := pglogrepl.StartReplication(ctx, repl, o.Postgres.Slot, resume, pglogrepl.StartReplicationOptions{PluginArgs: args}); err != nil {
		return classifyPG(fmt.Errorf("start replication on slot %s: %w", o.Postgres.Slot, err))
	}
	var confirmed pglogrepl.LSN
	_ = meta.QueryRow(ctx, "SELECT coalesce(confirmed_flush_lsn, '0/0')::text FROM pg_replication_slots WHERE slot_name = $1", o.Postgres.Slot).Scan(&confirmed)
	c.flushed.Store(uint64(max(resume, confirmed)))
	c.met.FlushedLSN.Set(float64(c.flushed.Load()))
	c.log.Info("replication started", "resume_lsn", resume.String(), "confirmed_flush_lsn", confirmed.String(), "db", db, "publication", o.Postgres.Publication)
	c.setReady(true)

	items := make(chan []item, 32)
	kick := make(chan struct{}, 1)
	errc := make(chan error, 3)
	go func() { errc <- c.read(ctx, repl, items, kick) }()
	p := &processor{c: c, snk: snk, dec: NewDecoder(o.Kafka.TopicPrefix, db, catalogResolver{conn: meta}), resume: resume,
		ckTopic: ckTopic, ckKey: ckKey, db: db, spools: map[uint32]*spool{}, kick: kick, counts: map[[2]string]int{}, bytes: map[string]int{}}
	go func() { errc <- p.run(ctx, items) }()
	hb := make(chan struct{})
	go func() {
		defer close(hb)
		c.heartbeat(ctx)
	}()
	err = <-errc
	cancel()
	// Wait for the other of read and run: read uses repl until it returns,
	// and repl is written to and closed below.
	<-errc
	<-hb
	p.closeSpools()
	// A clean shutdown commits what is complete; anything else is aborted
	// (and will be captured again, exactly once, by the next session).
	shut, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	if errors.Is(err, context.Canceled) && !p.inTx && !p.stream.active && p.batchTxns > 0 && snk.err() == nil {
		if cerr := p.commitBatch(shut); cerr == nil {
			_ = pglogrepl.SendStandbyStatusUpdate(shut, repl, pglogrepl.StandbyStatusUpdate{WALWritePosition: pglogrepl.LSN(c.flushed.Load())})
		}
	} else {
		_ = snk.abort(shut)
	}
	return err
}

// connectReplication opens the replication connection with the session
// settings the text decoding relies on (ISO dates, UTC).
func (c *Capture) connectReplication(ctx context.Context) (*pgconn.PgConn, error) {
	cfg, err := pgconn.ParseConfig(c.opts.Postgres.URL)
	if err != nil {
		return nil, terminal(fmt.Errorf("parse PostgreSQL URL: %w", err))
	}
	cfg.RuntimeParams["replication"] = "database"
	cfg.RuntimeParams["application_name"] = "orderflow-capture"
	cfg.RuntimeParams["DateStyle"] = "ISO, MDY"
	cfg.RuntimeParams["TimeZone"] = "UTC"
	cfg.RuntimeParams["IntervalStyle"] = "iso_8601"
	cfg.RuntimeParams["extra_float_digits"] = "3"
	if c.opts.DecodingWorkMem != "" {
		cfg.RuntimeParams["logical_decoding_work_mem"] = c.opts.DecodingWorkMem
	}
	cfg.BuildFrontend = func(r io.Reader, w io.Writer) *pgproto3.Frontend {
		return pgproto3.NewFrontend(bufferedReader{bufio.NewReaderSize(r, 256<<10)}, w)
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, classifyPG(fmt.Errorf("open replication connection: %w", err))
	}
	return conn, nil
}

// bufferedReader reads the replication stream through a large buffer, so
// that while PostgreSQL is ahead one system call carries many messages
// (pgproto3 alone reads at most 8 KiB at a time).
type bufferedReader struct{ r *bufio.Reader }

func (b bufferedReader) Read(p []byte) (int, error) { return b.r.Read(p) }

// classifyPG marks PostgreSQL errors no retry fixes as terminal.
func classifyPG(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "42501", "28000", "28P01", "3D000", "42704", "0A000", "55000":
			// insufficient privilege, bad login, no database, undefined
			// object (publication), feature not supported, wal_level.
			return terminal(err)
		}
	}
	return err
}

// ensurePublication creates the publication when it is missing (this needs
// ownership of the tables, or superuser for FOR TABLES IN SCHEMA; a
// restricted capture role relies on `orderflow capture -setup`).
func (c *Capture) ensurePublication(ctx context.Context, conn *pgx.Conn) error {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)", c.opts.Postgres.Publication).Scan(&exists); err != nil {
		return fmt.Errorf("look up publication: %w", err)
	}
	if exists {
		return nil
	}
	stmt := PublicationSQL(c.opts.Postgres.Publication, c.opts.Tables)
	if _, err := conn.Exec(ctx, stmt); err != nil {
		return classifyPG(fmt.Errorf("create publication %s (run `orderflow capture -setup` as an administrator if the capture role may not): %w", c.opts.Postgres.Publication, err))
	}
	c.log.Info("publication created", "publication", c.opts.Postgres.Publication, "sql", stmt)
	return nil
}

// ensureTableTopics creates the topic of every table in the publication.
func (c *Capture) ensureTableTopics(ctx context.Context, conn *pgx.Conn, snk *sink) error {
	rows, err := conn.Query(ctx, "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = $1", c.opts.Postgres.Publication)
	if err != nil {
		return fmt.Errorf("list the tables of publication %s: %w", c.opts.Postgres.Publication, err)
	}
	var topics []string
	for rows.Next() {
		var schema, table string
		if err := rows.Scan(&schema, &table); err != nil {
			rows.Close()
			return err
		}
		topics = append(topics, envelope.Topic(c.opts.Kafka.TopicPrefix, schema, table))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list the tables of publication %s: %w", c.opts.Postgres.Publication, err)
	}
	for _, t := range topics {
		if err := snk.ensureTopic(ctx, t, 0, TableTopicConfigs(c.opts.TopicRetentionMs)); err != nil {
			return err
		}
	}
	c.warnRetention(ctx, snk.adm, topics)
	return nil
}

// warnRetention logs every table topic whose events expire: retention.ms
// not -1 and no compaction (a topic created before capture set -1, or by
// hand). The transformer's restart and replay then lose the rows of expired
// events.
func (c *Capture) warnRetention(ctx context.Context, adm *kadm.Client, topics []string) {
	if len(topics) == 0 {
		return
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, topics...)
	if err != nil {
		c.log.Warn("describe the table topics' configuration", "err", err)
		return
	}
	for _, rc := range rcs {
		if rc.Err != nil {
			continue
		}
		var retention, policy string
		for _, cf := range rc.Configs {
			switch cf.Key {
			case "retention.ms":
				retention = cf.MaybeValue()
			case "cleanup.policy":
				policy = cf.MaybeValue()
			}
		}
		if retention != "" && retention != "-1" && !strings.Contains(policy, "compact") {
			c.log.Warn("table topic deletes its events after retention.ms: once they are gone the transformer's restart and `orderflow replay` lack their rows; "+
				"set retention.ms=-1 on it (kafka-configs --alter --add-config retention.ms=-1) or compact it",
				"topic", rc.Name, "retention_ms", retention, "cleanup_policy", policy)
		}
	}
}

// PublicationSQL is the CREATE PUBLICATION statement for tables (empty: all
// of schema public).
func PublicationSQL(pub string, tables []string) string {
	if len(tables) == 0 {
		return "CREATE PUBLICATION " + pgx.Identifier{pub}.Sanitize() + " FOR TABLES IN SCHEMA public"
	}
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = qualified(t)
	}
	return "CREATE PUBLICATION " + pgx.Identifier{pub}.Sanitize() + " FOR TABLE " + strings.Join(names, ", ")
}

func qualified(t string) string {
	if s, n, ok := strings.Cut(t, "."); ok {
		return pgx.Identifier{s, n}.Sanitize()
	}
	return pgx.Identifier{"public", t}.Sanitize()
}

// ensureSlot creates the logical slot when it is missing.
func (c *Capture) ensureSlot(ctx context.Context, meta *pgx.Conn, repl *pgconn.PgConn, db string) error {
	var slotDB, plugin string
	err := meta.QueryRow(ctx, "SELECT coalesce(database, ''), coalesce(plugin, '') FROM pg_replication_slots WHERE slot_name = $1", c.opts.Postgres.Slot).Scan(&slotDB, &plugin)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		c.log.Info("creating replication slot (waits for transactions running in the cluster to end)")
		res, err := pglogrepl.CreateReplicationSlot(ctx, repl, c.opts.Postgres.Slot, "pgoutput", pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: "NOEXPORT_SNAPSHOT"})
		if err != nil {
			var pe *pgconn.PgError
			if errors.As(err, &pe) && pe.Code == "42710" { // created concurrently
				return nil
			}
			return classifyPG(fmt.Errorf("create replication slot %s: %w", c.opts.Postgres.Slot, err))
		}
		c.log.Info("replication slot created", "consistent_point", res.ConsistentPoint)
		return nil
	case err != nil:
		return fmt.Errorf("look up replication slot: %w", err)
	case slotDB != db || plugin != "pgoutput":
		return terminal(fmt.Errorf("replication slot %s belongs to database %q with plugin %q, not %q with pgoutput; choose another -pg-slot", c.opts.Postgres.Slot, slotDB, plugin, db))
	}
	return nil
}

// read is the only user of the replication connection: it receives WAL,
// hands it to the processor in order, answers keepalives at once and sends
// standby status with the flushed (Kafka-durable) LSN.
// maxBatch is the most items (and 128 KiB) the reader hands over at once;
// batches only grow while the processor is busy (a backlog), so an idle
// stream goes item by item without waiting. With 32 batches queued, at most
// 4 MiB of messages wait between the reader and the processor.
const maxBatch = 256

func (c *Capture) read(ctx context.Context, conn *pgconn.PgConn, items chan<- []item, kick <-chan struct{}) error {
	var (
		received   uint64
		lastSent   uint64
		lastStatus time.Time
		deadline   time.Time
	)
	// Unblock a pending read at shutdown.
	stop := context.AfterFunc(ctx, func() { _ = conn.Conn().SetReadDeadline(time.Now()) })
	defer stop()
	send := func() error {
		f := c.flushed.Load()
		w := max(received, f)
		if err := pglogrepl.SendStandbyStatusUpdate(ctx, conn, pglogrepl.StandbyStatusUpdate{
			WALWritePosition: pglogrepl.LSN(w), WALFlushPosition: pglogrepl.LSN(f), WALApplyPosition: pglogrepl.LSN(f),
		}); err != nil {
			return fmt.Errorf("send standby status: %w", err)
		}
		lastSent, lastStatus = f, time.Now()
		c.met.FlushedLSN.Set(float64(f))
		return nil
	}
	maybeSend := func() error {
		if time.Since(lastStatus) >= c.opts.StatusInterval || (c.flushed.Load() != lastSent && time.Since(lastStatus) >= 200*time.Millisecond) {
			return send()
		}
		return nil
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var (
		pending []item
		slab    []byte
	)
	// flush hands pending over: at once if the processor is waiting, else
	// only when block is set (the batch is full or the stream paused).
	flush := func(block bool) error {
		if len(pending) == 0 {
			return nil
		}
		select {
		case items <- pending:
			pending = make([]item, 0, 16)
			return nil
		default:
		}
		if !block {
			return nil
		}
		for {
			select {
			case items <- pending:
				pending = make([]item, 0, maxBatch)
				return nil
			case <-ctx.Done():
				return ctx.Err()
			case <-tick.C:
				// The processor is behind (Kafka is slow): keep the
				// walsender from timing out while we wait.
				if err := maybeSend(); err != nil {
					return err
				}
			}
		}
	}
	var pendingBytes int
	push := func(it item) error {
		pending = append(pending, it)
		pendingBytes += len(it.data)
		if len(pending) >= maxBatch || pendingBytes >= 128<<10 {
			pendingBytes = 0
			return flush(true)
		}
		if err := flush(false); err != nil {
			return err
		}
		if len(pending) == 0 {
			pendingBytes = 0
		}
		return nil
	}
	// own copies the message out of the connection's buffer into a shared
	// slab (one allocation per 256 KiB, not per message).
	own := func(b []byte) []byte {
		if len(slab)+len(b) > cap(slab) {
			slab = make([]byte, 0, max(256<<10, len(b)))
		}
		start := len(slab)
		slab = append(slab, b...)
		return slab[start:len(slab):len(slab)]
	}
	for {
		select {
		case <-kick:
			if err := maybeSend(); err != nil {
				return err
			}
		default:
		}
		if err := maybeSend(); err != nil {
			return err
		}
		// A read deadline on the socket rather than a context per message:
		// it bounds the wait when idle without a timer and a watcher
		// goroutine per message when busy. pgconn keeps the connection
		// after a timeout and resumes a partly read message.
		// While items wait for a busy processor, look again soon.
		now := time.Now()
		wait := 200 * time.Millisecond
		if len(pending) > 0 {
			wait = 2 * time.Millisecond
		}
		if left := deadline.Sub(now); left < wait/2 || left > wait {
			deadline = now.Add(wait)
			if err := conn.Conn().SetReadDeadline(deadline); err != nil {
				return fmt.Errorf("set read deadline: %w", err)
			}
		}
		msg, err := conn.ReceiveMessage(context.Background())
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				deadline = time.Time{}
				if err := flush(true); err != nil {
					return err
				}
				continue
			}
			return fmt.Errorf("receive replication message: %w", err)
		}
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			if len(m.Data) == 0 {
				continue
			}
			switch m.Data[0] {
			case pglogrepl.PrimaryKeepaliveMessageByteID:
				ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(m.Data[1:])
				if err != nil {
					return fmt.Errorf("parse keepalive: %w", err)
				}
				received = max(received, uint64(ka.ServerWALEnd))
				if ka.ReplyRequested {
					if err := send(); err != nil {
						return err
					}
				}
				if err := push(item{walStart: uint64(ka.ServerWALEnd)}); err != nil {
					return err
				}
			case pglogrepl.XLogDataByteID:
				x, err := pglogrepl.ParseXLogData(m.Data[1:])
				if err != nil {
					return fmt.Errorf("parse XLogData: %w", err)
				}
				if len(x.WALData) == 0 {
					continue
				}
				received = max(received, uint64(x.WALStart))
				// The connection reuses its buffer: copy.
				if err := push(item{walStart: uint64(x.WALStart), data: own(x.WALData)}); err != nil {
					return err
				}
			}
		case *pgproto3.ErrorResponse:
			return classifyPG(fmt.Errorf("replication stream: %w", pgconn.ErrorResponseToPgError(m)))
		case *pgproto3.CopyDone:
			return errors.New("replication stream closed by the server")
		}
	}
}

// heartbeat emits a non-transactional logical message now and then so the
// slot's position moves while the published tables are idle, and samples the
// slot lag.
func (c *Capture) heartbeat(ctx context.Context) {
	if c.opts.HeartbeatInterval < 0 {
		return
	}
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			_ = conn.Close(context.Background())
		}
	}()
	t := time.NewTicker(c.opts.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if conn == nil || conn.IsClosed() {
			var err error
			if conn, err = pgx.Connect(ctx, c.opts.Postgres.URL); err != nil {
				c.log.Warn("heartbeat connection", "err", err)
				conn = nil
				continue
			}
		}
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if _, err := conn.Exec(qctx, "SELECT pg_logical_emit_message(false, $1, $2)", HeartbeatPrefix, strconv.FormatInt(time.Now().UnixMilli(), 10)); err != nil && ctx.Err() == nil {
			c.log.Warn("heartbeat", "err", err)
		}
		var lag *int64
		if err := conn.QueryRow(qctx, "SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::bigint FROM pg_replication_slots WHERE slot_name = $1", c.opts.Postgres.Slot).Scan(&lag); err == nil && lag != nil {
			c.met.SlotLag.Set(float64(*lag))
		} else if err != nil && ctx.Err() == nil {
			c.log.Warn("sample slot lag", "err", err)
		}
		cancel()
	}
}

// catalogResolver looks types up in pg_type.
type catalogResolver struct{ conn *pgx.Conn }

var _ TypeResolver = catalogResolver{}

func (r catalogResolver) ResolveType(ctx context.Context, oid uint32) (TypeDesc, error) {
	var td TypeDesc
	var typ, cat string
	err := r.conn.QueryRow(ctx, "SELECT typname, typtype::text, typbasetype, typelem, typcategory::text FROM pg_type WHERE oid = $1", oid).
		Scan(&td.Name, &typ, &td.BaseOID, &td.ElemOID, &cat)
	if errors.Is(err, pgx.ErrNoRows) {
		return TypeDesc{Name: "oid " + strconv.FormatUint(uint64(oid), 10)}, nil
	}
	if err != nil {
		return td, fmt.Errorf("look up type %d: %w", oid, err)
	}
	if typ != "" {
		td.Type = typ[0]
	}
	if cat != "" {
		td.Category = cat[0]
	}
	return td, nil
}

// processor applies the replication stream to Kafka: events of each
// PostgreSQL transaction go into the open Kafka transaction; the Kafka
// transaction commits (with a checkpoint) between PostgreSQL transactions.
type processor struct {
	c       *Capture
	snk     *sink
	dec     *Decoder
	resume  pglogrepl.LSN
	ckTopic string
	ckKey   string
	db      string
	kick    chan struct{}

	inTx   bool
	skip   bool
	tx     Tx
	stream struct {
		active bool
		xid    uint32
	}
	spools map[uint32]*spool

	// The open Kafka transaction.
	batchTxns   int
	batchEvents int
	batchStart  time.Time
	lastTx      Tx
	lastEnd     pglogrepl.LSN
	idleAfter   uint64 // a position passed outside any transaction after the batch's last commit
	counts      map[[2]string]int
	bytes       map[string]int
	dlq         map[string]int
	out         []Record
	row         RowChange
	backlog     func() bool // more input is already waiting
	hdr         []kgo.RecordHeader
	hdrTx       Tx
}

func (p *processor) run(ctx context.Context, items <-chan []item) error {
	p.backlog = func() bool { return len(items) > 0 }
	tick := time.NewTicker(max(p.c.opts.FlushInterval/2, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case batch := <-items:
			for _, it := range batch {
				if err := p.handle(ctx, it); err != nil {
					return err
				}
			}
		case <-tick.C:
			if err := p.maybeCommit(ctx, false); err != nil {
				return err
			}
		}
		if err := p.snk.err(); err != nil {
			return err
		}
	}
}

func (p *processor) handle(ctx context.Context, it item) error {
	if it.data == nil {
		// A keepalive: everything before it has been handed to us.
		if !p.inTx {
			p.passed(it.walStart)
		}
		return nil
	}
	if p.stream.active {
		switch pglogrepl.MessageType(it.data[0]) {
		case pglogrepl.MessageTypeStreamStop:
			p.stream.active = false
			return nil
		case pglogrepl.MessageTypeInsert, pglogrepl.MessageTypeUpdate, pglogrepl.MessageTypeDelete,
			pglogrepl.MessageTypeRelation, pglogrepl.MessageTypeType, pglogrepl.MessageTypeTruncate, pglogrepl.MessageTypeMessage:
			if len(it.data) < 5 {
				return fmt.Errorf("short in-stream message %q", it.data[0])
			}
			sp := p.spools[p.stream.xid]
			if sp == nil {
				return fmt.Errorf("stream data for xid %d without a spool", p.stream.xid)
			}
			sub := uint32(it.data[1])<<24 | uint32(it.data[2])<<16 | uint32(it.data[3])<<8 | uint32(it.data[4])
			return sp.append(sub, it.walStart, it.data)
		}
	}
	if isRow, err := ParseRowChange(it.data, false, &p.row); isRow {
		if err != nil {
			return fmt.Errorf("parse pgoutput %q message: %w", it.data[0], err)
		}
		if p.skip {
			return nil
		}
		return p.change(ctx)
	}
	msg, err := pglogrepl.ParseV2(it.data, false)
	if err != nil {
		return fmt.Errorf("parse pgoutput message %q: %w", it.data[0], err)
	}
	switch m := msg.(type) {
	case *pglogrepl.BeginMessage:
		p.inTx = true
		p.tx = Tx{Xid: m.Xid, CommitLSN: m.FinalLSN, CommitTime: m.CommitTime}
		p.skip = m.FinalLSN < p.resume
	case *pglogrepl.CommitMessage:
		p.inTx = false
		if p.skip {
			p.c.met.SkippedTxns.Inc()
			p.skip = false
			p.passed(uint64(m.TransactionEndLSN))
			return nil
		}
		return p.committed(ctx, m.TransactionEndLSN)
	case *pglogrepl.RelationMessageV2:
		return p.relation(ctx, &m.RelationMessage)
	case *pglogrepl.TruncateMessageV2:
		p.c.log.Warn("TRUNCATE is not captured (no envelope op); downstream keeps the rows", "relations", m.RelationIDs)
	case *pglogrepl.LogicalDecodingMessageV2:
		if m.Prefix == HeartbeatPrefix {
			p.c.met.Heartbeats.Inc()
			if !m.Transactional && !p.inTx {
				p.passed(uint64(m.LSN))
			}
		}
	case *pglogrepl.StreamStartMessageV2:
		p.c.met.SpooledChunks.Inc()
		p.stream.active, p.stream.xid = true, m.Xid
		if p.spools[m.Xid] == nil {
			sp, err := newSpool(spoolDir(p.c.opts.SpoolDir), m.Xid)
			if err != nil {
				return err
			}
			p.spools[m.Xid] = sp
		}
	case *pglogrepl.StreamStopMessageV2:
		p.stream.active = false
	case *pglogrepl.StreamAbortMessageV2:
		sp := p.spools[m.Xid]
		if sp == nil {
			return nil
		}
		if m.SubXid == m.Xid {
			sp.close()
			delete(p.spools, m.Xid)
			return nil
		}
		return sp.abortSubxact(m.SubXid)
	case *pglogrepl.StreamCommitMessageV2:
		return p.streamCommit(ctx, m)
	case *pglogrepl.TypeMessageV2, *pglogrepl.OriginMessage:
	}
	return nil
}

// passed records a position reached outside any transaction: flushed at
// once when no Kafka transaction is open, else when it commits.
func (p *processor) passed(pos uint64) {
	if p.batchTxns == 0 {
		p.advance(pos)
		return
	}
	p.idleAfter = max(p.idleAfter, pos)
}

// advance moves the flushed position while nothing is pending.
func (p *processor) advance(pos uint64) {
	if pos > p.c.flushed.Load() {
		p.c.flushed.Store(pos)
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
}

func (p *processor) relation(ctx context.Context, m *pglogrepl.RelationMessage) error {
	topic, err := p.dec.Relation(ctx, m)
	if err != nil {
		return err
	}
	return p.snk.ensureTopic(ctx, topic, 0, TableTopicConfigs(p.c.opts.TopicRetentionMs))
}

// TableTopicConfigs is the configuration of a table topic that capture or
// backfill creates: retention.ms, -1 (keep every event) unless retentionMs
// is positive. The transformer restores its order and join state from these
// topics and replay rebuilds tables from them, so a broker's finite default
// retention would silently take rows away from both after a while. Topics
// that exist already are left as they are.
func TableTopicConfigs(retentionMs int64) map[string]*string {
	if retentionMs <= 0 {
		retentionMs = -1
	}
	v := strconv.FormatInt(retentionMs, 10)
	return map[string]*string{"retention.ms": &v}
}

func (p *processor) change(ctx context.Context) error {
	if err := p.snk.begin(); err != nil {
		return err
	}
	if p.batchStart.IsZero() {
		p.batchStart = time.Now()
	}
	p.out = p.dec.Change(&p.row, p.tx, p.out[:0])
	for i := range p.out {
		r := &p.out[i]
		rec := &kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value, Headers: p.headers(r)}
		p.snk.produce(ctx, rec)
		p.batchEvents++
		if r.Reason != "" {
			if p.dlq == nil {
				p.dlq = map[string]int{}
			}
			p.dlq[r.Reason]++
			p.c.log.Warn("change sent to the dead-letter topic", "table", r.Table, "reason", r.Reason, "err", r.Err, "lsn", p.tx.CommitLSN.String())
			continue
		}
		p.counts[[2]string{r.Table, r.Op}]++
		p.bytes[r.Table] += len(r.Key) + len(r.Value)
	}
	return nil
}

// headers are the record headers: shared by every event of a transaction
// (franz-go only reads them), built afresh for dead letters.
func (p *processor) headers(r *Record) []kgo.RecordHeader {
	if r.Reason == "" && p.hdr != nil && p.hdrTx.Xid == p.tx.Xid && p.hdrTx.CommitLSN == p.tx.CommitLSN {
		return p.hdr
	}
	h := []kgo.RecordHeader{
		{Key: envelope.HeaderLSN, Value: strconv.AppendUint(nil, uint64(p.tx.CommitLSN), 10)},
		{Key: envelope.HeaderCommitTs, Value: strconv.AppendInt(nil, p.tx.CommitTime.UnixMilli(), 10)},
		{Key: envelope.HeaderTxID, Value: strconv.AppendUint(nil, uint64(p.tx.Xid), 10)},
	}
	if r.Reason != "" {
		return append(h, kgo.RecordHeader{Key: "reason", Value: []byte(r.Reason)}, kgo.RecordHeader{Key: "error", Value: []byte(r.Err)},
			kgo.RecordHeader{Key: "table", Value: []byte(r.Table)})
	}
	p.hdr, p.hdrTx = h[:3:3], p.tx
	return p.hdr
}

// committed closes a PostgreSQL transaction inside the open Kafka transaction.
func (p *processor) committed(ctx context.Context, end pglogrepl.LSN) error {
	p.batchTxns++
	p.lastTx = p.tx
	p.lastEnd = end
	p.idleAfter = 0
	if !p.snk.open {
		// Nothing of it was published (no change in a published table):
		// it still needs recording once a batch commits, or nothing to do.
		if err := p.snk.begin(); err != nil {
			return err
		}
		if p.batchStart.IsZero() {
			p.batchStart = time.Now()
		}
	}
	return p.maybeCommit(ctx, false)
}

func (p *processor) maybeCommit(ctx context.Context, force bool) error {
	if p.batchTxns == 0 || p.inTx {
		return nil
	}
	if !force && p.batchEvents < p.c.opts.MaxTxnEvents {
		age := time.Since(p.batchStart)
		if age < p.c.opts.FlushInterval {
			return nil
		}
		// Draining a backlog: every commit stalls the stream (flush, then
		// EndTxn), so let the transaction grow up to 4 flush intervals.
		if p.backlog != nil && p.backlog() && age < 4*p.c.opts.FlushInterval {
			return nil
		}
	}
	return p.commitBatch(ctx)
}

// commitBatch commits the open Kafka transaction with its checkpoint, then
// lets the reader report the new flushed LSN.
func (p *processor) commitBatch(ctx context.Context) error {
	ck := Checkpoint{Slot: p.c.opts.Postgres.Slot, DB: p.db, LSN: uint64(p.lastEnd), LSNText: p.lastEnd.String(),
		CommitLSN: uint64(p.lastTx.CommitLSN), Xid: p.lastTx.Xid, CommitTsMs: p.lastTx.CommitTime.UnixMilli(), WrittenMs: time.Now().UnixMilli()}
	v, _ := json.Marshal(ck)
	start := time.Now()
	if err := p.snk.commit(ctx, &kgo.Record{Topic: p.ckTopic, Key: []byte(p.ckKey), Value: v}); err != nil {
		return err
	}
	m := p.c.met
	m.Produce.Observe(time.Since(start).Seconds())
	m.KafkaTxns.Inc()
	m.Transactions.Add(float64(p.batchTxns))
	m.LastCommit.Set(float64(p.lastTx.CommitTime.UnixNano()) / 1e9)
	for k, n := range p.counts {
		m.Events.WithLabelValues(k[0], k[1]).Add(float64(n))
		delete(p.counts, k)
	}
	for k, n := range p.bytes {
		m.Bytes.WithLabelValues(k).Add(float64(n))
		delete(p.bytes, k)
	}
	for k, n := range p.dlq {
		m.DLQ.WithLabelValues(k).Add(float64(n))
		delete(p.dlq, k)
	}
	p.resume = max(p.resume, p.lastEnd)
	p.advance(max(uint64(p.lastEnd), p.idleAfter))
	p.batchTxns, p.batchEvents, p.batchStart, p.idleAfter = 0, 0, time.Time{}, 0
	return nil
}

// streamCommit produces a streamed transaction from its spool.
func (p *processor) streamCommit(ctx context.Context, m *pglogrepl.StreamCommitMessageV2) error {
	sp := p.spools[m.Xid]
	delete(p.spools, m.Xid)
	if sp != nil {
		defer sp.close()
	}
	if m.CommitLSN < p.resume {
		p.c.met.SkippedTxns.Inc()
		p.passed(uint64(m.TransactionEndLSN))
		return nil
	}
	p.c.met.Streamed.Inc()
	p.tx = Tx{Xid: m.Xid, CommitLSN: m.CommitLSN, CommitTime: m.CommitTime}
	if sp != nil {
		p.inTx = true
		err := sp.replay(func(_ uint64, data []byte) error {
			if isRow, err := ParseRowChange(data, true, &p.row); isRow {
				if err != nil {
					return fmt.Errorf("parse spooled %q message: %w", data[0], err)
				}
				if err := p.change(ctx); err != nil {
					return err
				}
				return p.snk.err()
			}
			msg, err := pglogrepl.ParseV2(data, true)
			if err != nil {
				return fmt.Errorf("parse spooled message %q: %w", data[0], err)
			}
			switch mm := msg.(type) {
			case *pglogrepl.RelationMessageV2:
				return p.relation(ctx, &mm.RelationMessage)
			}
			return nil
		})
		p.inTx = false
		if err != nil {
			return err
		}
	}
	return p.committed(ctx, m.TransactionEndLSN)
}

func (p *processor) closeSpools() {
	for x, sp := range p.spools {
		sp.close()
		delete(p.spools, x)
	}
}
