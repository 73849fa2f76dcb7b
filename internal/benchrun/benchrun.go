// Package benchrun is `orderflow bench`: a reproducible benchmark of the whole
// pipeline with every service on this machine. It starts its own `orderflow
// run` child process on a fresh namespace (PostgreSQL database, topic prefix,
// slot, embedded-engine directory) and measures, from outside the pipeline:
//
//   - sustained: open-loop fixed-rate workloads (the load generator keeps its
//     schedule whatever the system does, so slow responses cannot slow the
//     offered load: no coordinated omission); for each rate the achieved
//     changes/s (row changes counted by PostgreSQL's own statistics) and the
//     freshness of probe orders: (time the order is visible in ClickHouse,
//     polled through the process's read-only /v1/sql) − (time just before its
//     PostgreSQL COMMIT was sent). The probe's clock reading precedes the
//     commit, so freshness is over-, never under-estimated, by the commit's
//     latency;
//   - drain: the child is stopped, a backlog of changes is written, the child
//     is started again and timed until ClickHouse holds every order and the
//     consumer lag is zero (start-up and state restore included);
//   - peak RSS (VmHWM) of the child.
//
// Results are written as JSON and a markdown table.
package benchrun

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/ingest/load"
	"github.com/orderflow/orderflow/ingest/pgschema"
)

// Options configure a benchmark run.
type Options struct {
	Bin          string        // the orderflow binary to run as the child
	AdminPGURL   string        // a PostgreSQL superuser URL on the stack
	Brokers      string        // Kafka brokers
	ChdbLib      string        // libchdb.so
	WorkDir      string        // scratch directory (chDB data, child log)
	HTTPAddr     string        // the child's HTTP address
	Rates        []float64     // sustained phases, in orders/s
	PhaseTime    time.Duration // length of each sustained phase
	DrainChanges int           // backlog size for the drain phase, in row changes
	Commit       string        // recorded with the results
	Log          *slog.Logger
	Progress     io.Writer
}

// Sustained is one fixed-rate phase.
type Sustained struct {
	OfferedOrdersPerSec float64 `json:"offered_orders_per_s"`
	Changes             int64   `json:"changes"`
	Seconds             float64 `json:"seconds"`
	ChangesPerSec       float64 `json:"changes_per_s"`
	MaxScheduleLagMs    float64 `json:"max_schedule_lag_ms"`
	Probes              int     `json:"probes"`
	ProbesUnseen        int     `json:"probes_unseen"`
	FreshP50Ms          float64 `json:"freshness_p50_ms"`
	FreshP99Ms          float64 `json:"freshness_p99_ms"`
	FreshMaxMs          float64 `json:"freshness_max_ms"`
}

// Drain is the backlog phase.
type Drain struct {
	Changes       int64   `json:"changes"`
	Orders        int64   `json:"orders"`
	Seconds       float64 `json:"seconds"`
	ChangesPerSec float64 `json:"changes_per_s"`
}

// Results of a run.
type Results struct {
	Date      time.Time   `json:"date"`
	Commit    string      `json:"commit"`
	Cores     int         `json:"cores"`
	Engine    string      `json:"clickhouse_engine"`
	Sustained []Sustained `json:"sustained"`
	Drain     *Drain      `json:"drain,omitempty"`
	PeakRSSMB float64     `json:"run_process_peak_rss_mib"`
	Extra     []Extra     `json:"extra,omitempty"`
}

// Extra is a figure measured by another benchmark (backfill, reports) and
// merged into the results by the caller.
type Extra struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	Target string  `json:"target"`
}

type bench struct {
	o     Options
	ns    string
	dbURL string
	child *exec.Cmd
	done  chan error
	rss   float64
}

// Run runs every phase and returns the results.
func Run(ctx context.Context, o Options) (*Results, error) {
	b := &bench{o: o, ns: "bench" + strconv.FormatInt(time.Now().Unix()%1_000_000, 10)}
	res := &Results{Date: time.Now().UTC(), Commit: o.Commit, Cores: runtime.NumCPU(), Engine: "chdb"}
	if err := b.prepare(ctx); err != nil {
		return nil, err
	}
	defer b.cleanup()
	if err := b.start(ctx); err != nil {
		return nil, err
	}
	for i, r := range o.Rates {
		s, err := b.sustained(ctx, i, r)
		if err != nil {
			b.stop()
			return nil, fmt.Errorf("sustained phase at %.0f orders/s: %w", r, err)
		}
		res.Sustained = append(res.Sustained, *s)
	}
	if o.DrainChanges > 0 {
		d, err := b.drain(ctx)
		if err != nil {
			b.stop()
			return nil, fmt.Errorf("drain phase: %w", err)
		}
		res.Drain = d
	}
	b.stop()
	res.PeakRSSMB = b.rss
	return res, nil
}

func (b *bench) say(format string, a ...any) {
	if b.o.Progress != nil {
		fmt.Fprintf(b.o.Progress, "bench: "+format+"\n", a...)
	}
}

func (b *bench) prepare(ctx context.Context) error {
	admin, err := pgx.Connect(ctx, b.o.AdminPGURL)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer admin.Close(ctx)
	db := "orderflow_" + b.ns
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+db); err != nil {
		return fmt.Errorf("create database %s: %w", db, err)
	}
	u, err := url.Parse(b.o.AdminPGURL)
	if err != nil {
		return err
	}
	u.Path = "/" + db
	b.dbURL = u.String()
	conn, err := pgx.Connect(ctx, b.dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if _, err := pgschema.Migrate(ctx, conn); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	// a probe customer and product for the freshness probe
	_, err = conn.Exec(ctx, `
		INSERT INTO customers (name, email, segment, region, country, city, created_at, updated_at)
		VALUES ('Probe', 'probe@bench.invalid', 'bronze', 'europe', 'DE', 'Berlin', now(), now());
		INSERT INTO products (sku, name, category, price, created_at, updated_at)
		VALUES ('PROBE-1', 'Probe', 'probe', 1.00, now(), now());`)
	if err != nil {
		return fmt.Errorf("probe rows: %w", err)
	}
	return os.MkdirAll(b.o.WorkDir, 0o755)
}

func (b *bench) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, b.o.AdminPGURL)
	if err != nil {
		return
	}
	defer admin.Close(ctx)
	db := "orderflow_" + b.ns
	_, _ = admin.Exec(ctx, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1 AND NOT active", db)
	_, _ = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)")
	_ = os.RemoveAll(filepath.Join(b.o.WorkDir, "chdb-"+b.ns))
}

func (b *bench) start(ctx context.Context) error {
	logf, err := os.OpenFile(filepath.Join(b.o.WorkDir, "run-"+b.ns+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(b.o.Bin, "run", "-migrate")
	cmd.Env = append(os.Environ(),
		"ORDERFLOW_PG_URL="+b.dbURL,
		"ORDERFLOW_PG_SLOT="+b.ns,
		"ORDERFLOW_PG_PUBLICATION="+b.ns,
		"ORDERFLOW_KAFKA_BROKERS="+b.o.Brokers,
		"ORDERFLOW_KAFKA_TOPIC_PREFIX="+b.ns,
		"ORDERFLOW_TRANSFORM_GROUP="+b.ns,
		"ORDERFLOW_CLICKHOUSE_ENGINE=chdb",
		"ORDERFLOW_CHDB_LIB="+b.o.ChdbLib,
		"ORDERFLOW_CHDB_PATH="+filepath.Join(b.o.WorkDir, "chdb-"+b.ns),
		"ORDERFLOW_HTTP_ADDR="+b.o.HTTPAddr,
		"ORDERFLOW_LOG_FORMAT=json",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s run: %w", b.o.Bin, err)
	}
	b.child, b.done = cmd, make(chan error, 1)
	go func() { b.done <- cmd.Wait(); logf.Close() }()
	b.say("started orderflow run (pid %d, log %s)", cmd.Process.Pid, logf.Name())
	deadline := time.Now().Add(3 * time.Minute)
	for {
		select {
		case err := <-b.done:
			return fmt.Errorf("orderflow run exited during start-up: %v; see %s", err, logf.Name())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
		resp, err := http.Get("http://" + b.o.HTTPAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			b.stop()
			return fmt.Errorf("orderflow run not ready after 3 minutes; see %s", logf.Name())
		}
	}
}

func (b *bench) sampleRSS() {
	if b.child == nil || b.child.Process == nil {
		return
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", b.child.Process.Pid))
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseFloat(f[1], 64)
				b.rss = math.Max(b.rss, kb/1024)
			}
		}
	}
}

func (b *bench) stop() {
	if b.child == nil {
		return
	}
	b.sampleRSS()
	_ = b.child.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.done:
	case <-time.After(60 * time.Second):
		_ = b.child.Process.Kill()
		<-b.done
	}
	b.child = nil
}

// sql runs a read-only query on the child through /v1/sql and returns the
// first column of each row as text.
func (b *bench) sql(ctx context.Context, q string) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+b.o.HTTPAddr+"/v1/sql?format=csv", strings.NewReader(q))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/v1/sql: HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(out))
	}
	var rows []string
	for i, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if i == 0 || line == "" { // header
			continue
		}
		rows = append(rows, strings.Trim(strings.SplitN(line, ",", 2)[0], `"`))
	}
	return rows, nil
}

// changes is PostgreSQL's own count of row changes in the command tables.
func changes(ctx context.Context, conn *pgx.Conn) (int64, error) {
	// statistics are flushed by backends at most once a second
	time.Sleep(1500 * time.Millisecond)
	var n int64
	err := conn.QueryRow(ctx, `SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::bigint
		FROM pg_stat_user_tables WHERE schemaname = 'public'
		AND relname IN ('customers','products','campaigns','orders','order_items')`).Scan(&n)
	return n, err
}

type probe struct {
	mu      sync.Mutex
	pending map[int64]time.Time
	fresh   []float64
	sent    int
}

// runProbe places one probe order every interval until stop is closed.
func (b *bench) runProbe(ctx context.Context, stop <-chan struct{}, p *probe) error {
	conn, err := pgx.Connect(ctx, b.dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var cust, prod int64
	if err := conn.QueryRow(ctx, "SELECT (SELECT id FROM customers WHERE email='probe@bench.invalid'), (SELECT id FROM products WHERE sku='PROBE-1')").Scan(&cust, &prod); err != nil {
		return err
	}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		tx, err := conn.Begin(ctx)
		if err != nil {
			return err
		}
		var id int64
		err = tx.QueryRow(ctx, `INSERT INTO orders (customer_id, status, currency, subtotal, discount, total, placed_at, created_at, updated_at)
			VALUES ($1, 'placed', 'USD', 1.00, 0, 1.00, now(), now(), now()) RETURNING id`, cust).Scan(&id)
		if err == nil {
			_, err = tx.Exec(ctx, `INSERT INTO order_items (order_id, line_no, product_id, quantity, unit_price, discount, created_at, updated_at)
				VALUES ($1, 1, $2, 1, 1.00, 0, now(), now())`, id, prod)
		}
		if err != nil {
			_ = tx.Rollback(ctx)
			return fmt.Errorf("probe order: %w", err)
		}
		before := time.Now()
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("probe commit: %w", err)
		}
		p.mu.Lock()
		p.pending[id] = before
		p.sent++
		p.mu.Unlock()
	}
}

// pollProbes polls ClickHouse for pending probes until stop is closed and
// nothing is pending, or the deadline after stop passes.
func (b *bench) pollProbes(ctx context.Context, stop <-chan struct{}, p *probe, grace time.Duration) {
	var deadline time.Time
	for {
		select {
		case <-stop:
			if deadline.IsZero() {
				deadline = time.Now().Add(grace)
			}
		default:
		}
		p.mu.Lock()
		ids := make([]string, 0, len(p.pending))
		for id := range p.pending {
			ids = append(ids, strconv.FormatInt(id, 10))
		}
		p.mu.Unlock()
		if len(ids) == 0 && !deadline.IsZero() {
			return
		}
		if !deadline.IsZero() && time.Now().After(deadline) {
			return
		}
		if len(ids) > 0 {
			rows, err := b.sql(ctx, "SELECT order_id FROM customer_orders WHERE order_id IN ("+strings.Join(ids, ",")+")")
			now := time.Now()
			if err == nil {
				p.mu.Lock()
				for _, r := range rows {
					id, _ := strconv.ParseInt(r, 10, 64)
					if t0, ok := p.pending[id]; ok {
						p.fresh = append(p.fresh, now.Sub(t0).Seconds()*1000)
						delete(p.pending, id)
					}
				}
				p.mu.Unlock()
			} else {
				b.o.Log.Warn("probe poll failed", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func pct(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	if i < 0 {
		i = 0
	}
	return sorted[i]
}

func (b *bench) sustained(ctx context.Context, i int, rate float64) (*Sustained, error) {
	conn, err := pgx.Connect(ctx, b.dbURL)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	before, err := changes(ctx, conn)
	if err != nil {
		return nil, err
	}
	orders := int(rate*b.o.PhaseTime.Seconds()) + 1
	prm := load.Params{Seed: uint64(100 + i), Customers: max(1000, orders/10), Orders: orders, Products: 500, Campaigns: 6,
		Start: load.DefaultStart, Span: 90 * 24 * time.Hour, Namespace: fmt.Sprintf("s%d", i)}
	b.say("sustained phase %d: %.0f orders/s for %s", i+1, rate, b.o.PhaseTime)
	p := &probe{pending: map[int64]time.Time{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var probeErr error
	wg.Add(2)
	go func() { defer wg.Done(); probeErr = b.runProbe(ctx, stop, p) }()
	go func() { defer wg.Done(); b.pollProbes(ctx, stop, p, 30*time.Second) }()
	start := time.Now()
	sum, err := load.RunDirect(ctx, conn, prm, load.Options{Rate: rate, Duration: b.o.PhaseTime, BatchSize: 200}, false)
	elapsed := time.Since(start)
	close(stop)
	wg.Wait()
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	if probeErr != nil {
		return nil, probeErr
	}
	after, err := changes(ctx, conn)
	if err != nil {
		return nil, err
	}
	b.sampleRSS()
	sort.Float64s(p.fresh)
	s := &Sustained{OfferedOrdersPerSec: rate, Changes: after - before, Seconds: elapsed.Seconds(),
		MaxScheduleLagMs: float64(sum.MaxLag.Milliseconds()), Probes: p.sent, ProbesUnseen: len(p.pending),
		FreshP50Ms: pct(p.fresh, 0.5), FreshP99Ms: pct(p.fresh, 0.99), FreshMaxMs: pct(p.fresh, 1)}
	s.ChangesPerSec = float64(s.Changes) / s.Seconds
	b.say("  %.0f changes/s achieved; freshness p50 %.0f ms, p99 %.0f ms, max %.0f ms over %d probes (%d unseen)",
		s.ChangesPerSec, s.FreshP50Ms, s.FreshP99Ms, s.FreshMaxMs, s.Probes, s.ProbesUnseen)
	return s, nil
}

func (b *bench) drain(ctx context.Context) (*Drain, error) {
	b.say("drain phase: stopping orderflow run, writing a backlog of about %d changes", b.o.DrainChanges)
	b.stop()
	conn, err := pgx.Connect(ctx, b.dbURL)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	before, err := changes(ctx, conn)
	if err != nil {
		return nil, err
	}
	// about 6.5 row changes per order with its items and lifecycle
	orders := b.o.DrainChanges * 2 / 13
	prm := load.Params{Seed: 999, Customers: orders / 10, Orders: orders, Products: 1000, Campaigns: 12,
		Start: load.DefaultStart, Span: 180 * 24 * time.Hour, Namespace: "drain"}
	if _, err := load.RunDirect(ctx, conn, prm, load.Options{BatchSize: 2000, Progress: b.o.Progress}, false); err != nil {
		return nil, fmt.Errorf("backlog load: %w", err)
	}
	after, err := changes(ctx, conn)
	if err != nil {
		return nil, err
	}
	var pgOrders int64
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&pgOrders); err != nil {
		return nil, err
	}
	b.say("backlog of %d changes written; restarting orderflow run", after-before)
	t0 := time.Now()
	if err := b.start(ctx); err != nil {
		return nil, err
	}
	want, err := statusCounts(ctx, conn)
	if err != nil {
		return nil, err
	}
	for {
		rows, err := b.sql(ctx, "SELECT concat(toString(status), ':', toString(count())) FROM customer_orders FINAL WHERE _is_deleted = 0 GROUP BY status ORDER BY status")
		if err == nil && strings.Join(rows, " ") == want {
			break
		}
		if time.Since(t0) > 30*time.Minute {
			return nil, errors.New("backlog not drained within 30 minutes")
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	d := &Drain{Changes: after - before, Orders: pgOrders, Seconds: time.Since(t0).Seconds()}
	d.ChangesPerSec = float64(d.Changes) / d.Seconds
	b.say("  drained %d changes in %.1fs: %.0f changes/s (start-up included)", d.Changes, d.Seconds, d.ChangesPerSec)
	return d, nil
}

// statusCounts is PostgreSQL's "status:count" list of orders, the shape the
// drain phase waits for ClickHouse to show.
func statusCounts(ctx context.Context, conn *pgx.Conn) (string, error) {
	rows, err := conn.Query(ctx, "SELECT status || ':' || count(*) FROM orders GROUP BY status ORDER BY status")
	if err != nil {
		return "", err
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return strings.Join(out, " "), err
}

// Markdown renders the results as a short table with the targets.
func (r *Results) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# orderflow bench — %s, commit %s, %d cores, engine %s\n\n", r.Date.Format(time.RFC3339), r.Commit, r.Cores, r.Engine)
	b.WriteString("| phase | offered | achieved changes/s | generator behind schedule (max) | freshness p50 / p99 / max (ms) | probes (unseen) |\n|---|---|---|---|---|---|\n")
	for _, s := range r.Sustained {
		fmt.Fprintf(&b, "| sustained | %.0f orders/s | %.0f | %.1f s | %.0f / %.0f / %.0f | %d (%d) |\n",
			s.OfferedOrdersPerSec, s.ChangesPerSec, s.MaxScheduleLagMs/1000, s.FreshP50Ms, s.FreshP99Ms, s.FreshMaxMs, s.Probes, s.ProbesUnseen)
	}
	if r.Drain != nil {
		fmt.Fprintf(&b, "| drain | backlog of %d changes | %.0f | — | — | — |\n", r.Drain.Changes, r.Drain.ChangesPerSec)
	}
	b.WriteString("\nA generator behind schedule means PostgreSQL (or the machine) could not take the offered rate; the achieved rate is what the pipeline carried.\n")
	fmt.Fprintf(&b, "\nPeak RSS of `orderflow run` (API + capture + transformer + embedded ClickHouse): %.0f MiB\n", r.PeakRSSMB)
	if len(r.Extra) > 0 {
		b.WriteString("\n| measure | value | target |\n|---|---|---|\n")
		for _, x := range r.Extra {
			fmt.Fprintf(&b, "| %s | %.0f %s | %s |\n", x.Name, x.Value, x.Unit, x.Target)
		}
	}
	b.WriteString("\nTargets (DESIGN §6): sustained ≥ 25,000 changes/s with p99 freshness ≤ 1 s; drain ≥ 60,000 changes/s; backfill ≥ 250,000 rows/s; reports ≤ 500 ms on 10M orders.\n")
	return b.String()
}

// ParseGoBench reads `go test -bench` output and returns every custom metric
// (b.ReportMetric) of every benchmark line as an extra figure, e.g.
// "BenchmarkReports/daily_sales  5  ...  95.0 ms/median" becomes
// {Name: "Reports/daily_sales ms/median", Value: 95}.
func ParseGoBench(r io.Reader, targets map[string]string) []Extra {
	var out []Extra
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := strings.TrimPrefix(f[0], "Benchmark")
		if i := strings.LastIndex(name, "-"); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i] // the GOMAXPROCS suffix
			}
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			unit := f[i+1]
			if unit == "ns/op" || unit == "B/op" || unit == "allocs/op" {
				continue
			}
			out = append(out, Extra{Name: name, Value: v, Unit: unit, Target: targets[unit]})
		}
	}
	return out
}
