package backfill_test

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/orderflow/orderflow/ingest/backfill"
	"github.com/orderflow/orderflow/internal/testenv"
)

// chCount runs a count query on the test's ClickHouse database.
func (e *env) chCount(q string) int64 {
	e.t.Helper()
	res, err := e.eng.Query(context.Background(), q, nil)
	if err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
	var n int64
	fmt.Sscan(fmt.Sprint(res.Rows[0][0]), &n)
	return n
}

// TestDirectBackfillWhileWriting: direct mode (--direct) while a writer
// changes the database, before capture and the transformer run. When Run
// returns, every snapshot row's ClickHouse rows are there already, written
// by the backfill at the snapshot's version (raw mirror, dimensions, facts;
// no change_log rows). The transformer then applies the snapshot events to
// its state only (it writes no row for them) and streams the changes made
// during and after the backfill: ClickHouse equals PostgreSQL per order.
func TestDirectBackfillWhileWriting(t *testing.T) {
	e := newEnv(t)
	e.seed(3000, 800)
	stop := e.writer(11)
	res, err := backfill.Run(context.Background(), backfill.Options{
		Postgres: e.pgConfig(), Kafka: e.kafkaConfig(), Workers: 3, ChunkRows: 250, Sink: e.eng,
	}, testLog(t, 0))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	n := stop()
	t.Logf("backfill: %+v; writer committed %d transactions meanwhile", res, n)
	if !res.SlotCreated || res.Chunks == 0 {
		t.Fatalf("unexpected result %+v", res)
	}
	v := res.SnapshotLSN
	for table, want := range map[string]int64{
		"customer_orders": res.Rows["orders"], "order_lines": res.Rows["order_items"], "raw_orders": res.Rows["orders"],
		"raw_order_items": res.Rows["order_items"], "raw_customers": res.Rows["customers"], "customers": res.Rows["customers"],
		"customer_history": res.Rows["customers"], "raw_products": res.Rows["products"], "products": res.Rows["products"],
	} {
		if got := e.chCount(fmt.Sprintf("SELECT count() FROM %s FINAL WHERE _version = %d", table, v)); got != want || want == 0 {
			t.Errorf("%s: %d rows at the snapshot version after the backfill, want %d", table, got, want)
		}
	}
	if got := e.chCount("SELECT count() FROM change_log"); got != 0 {
		t.Errorf("change_log has %d rows after a direct backfill, want 0 (snapshot reads are not changes)", got)
	}
	// a fact joined in the backfill: the customer as of the snapshot
	if got := e.chCount(fmt.Sprintf(`SELECT count() FROM customer_orders AS f FINAL
		JOIN (SELECT id, name FROM raw_customers FINAL WHERE _version = %d) AS c ON c.id = f.customer_id
		WHERE f._version = %d AND f.customer_name = c.name AND f.item_count > 0`, v, v)); got != res.Rows["orders"] {
		t.Errorf("%d snapshot facts carry their customer's snapshot name and items, want %d", got, res.Rows["orders"])
	}

	e.startCapture()
	e.startTransformer()
	e.waitExact(90 * time.Second)
	if got := e.chCount("SELECT count() FROM change_log WHERE op = 'r'"); got != 0 {
		t.Errorf("the transformer wrote %d change_log rows for loaded snapshot events, want 0", got)
	}
	if got := e.chCount("SELECT count() FROM change_log"); got == 0 {
		t.Error("no change_log rows for the streamed changes")
	}
	// changes of pre-snapshot orders after the backfill: the transformer
	// derives them from the state it loaded from the snapshot events
	e.writeAWhile(12)
	e.waitExact(60 * time.Second)
}

// TestDirectBackfillCrashAfterWrite: direct mode fails chunks after their
// rows are in ClickHouse and before their Kafka transaction commits (the
// window a crash can hit), twice; each new attempt skips the committed
// chunks and copies the failed ones again from a new snapshot, whose newer
// version supersedes the rows of the attempt that died. The transformer
// then makes ClickHouse equal PostgreSQL, with one snapshot event per row.
func TestDirectBackfillCrashAfterWrite(t *testing.T) {
	e := newEnv(t)
	e.seed(2000, 500)
	e.startCapture()
	stop := e.writer(13)
	crash := errors.New("injected crash after the ClickHouse write")
	for attempt, at := range []int64{9, 15} {
		var written atomic.Int64
		o := backfill.WithAfterWrite(backfill.Options{Postgres: e.pgConfig(), Kafka: e.kafkaConfig(), Workers: 2, ChunkRows: 100, Sink: e.eng},
			func(table string, lo, hi int64) error {
				if written.Add(1) == at {
					return crash
				}
				return nil
			})
		res, err := backfill.Run(context.Background(), o, testLog(t, 0))
		if !errors.Is(err, crash) {
			t.Fatalf("attempt %d: %v, want the injected crash", attempt+1, err)
		}
		if attempt > 0 && res.Skipped == 0 {
			t.Errorf("attempt %d skipped no chunk", attempt+1)
		}
		t.Logf("attempt %d crashed after %d chunk writes: %+v", attempt+1, at, res)
	}
	res, err := backfill.Run(context.Background(), backfill.Options{Postgres: e.pgConfig(), Kafka: e.kafkaConfig(), Workers: 2, ChunkRows: 100, Sink: e.eng}, testLog(t, 0))
	if err != nil {
		t.Fatal(err)
	}
	n := stop()
	t.Logf("final attempt: %+v; writer committed %d transactions", res, n)
	if !res.Resumed || res.Skipped == 0 {
		t.Fatalf("final attempt did not resume: %+v", res)
	}
	e.startTransformer()
	e.waitExact(90 * time.Second)
	e.oneSnapshotEventPerRow()
	if got := e.chCount("SELECT count() FROM change_log WHERE op = 'r'"); got != 0 {
		t.Errorf("%d change_log rows for loaded snapshot events, want 0", got)
	}
}

// TestDirectBackfillRefusesOtherTables: direct mode derives rows for the
// captured tables only.
func TestDirectBackfillRefusesOtherTables(t *testing.T) {
	e := newEnv(t)
	_, err := backfill.Run(context.Background(), backfill.Options{Postgres: e.pgConfig(), Kafka: e.kafkaConfig(), Tables: []string{"customers", "audit"}, Sink: e.eng}, nil)
	if err == nil || !strings.Contains(err.Error(), "audit") || !strings.Contains(err.Error(), "direct") {
		t.Fatalf("err = %v, want direct mode refusing table audit", err)
	}
}

// TestDirectBackfillKillResume: `orderflow backfill -direct` writing into an
// embedded engine's data directory is killed with SIGKILL three times
// mid-way while the database takes writes, then run to the end; each attempt
// after the first logs chunks skipped as done. `orderflow run` (capture,
// transformer and SQL API on that directory) then makes ClickHouse equal
// PostgreSQL per order, and every row has exactly one snapshot event.
func TestDirectBackfillKillResume(t *testing.T) {
	bin := binary(t)
	e := newEnv(t)
	e.seed(4000, 1000)
	dir := t.TempDir()
	common := []string{"-pg-url", e.pgURL, "-pg-slot", e.slot, "-pg-publication", e.pub,
		"-kafka-brokers", strings.Join(e.brokers, ","), "-kafka-topic-prefix", e.prefix,
		"-chdb-lib", testenv.ChdbLib(t), "-chdb-path", dir}
	stop := e.writer(21)
	// -migrate: the first attempt creates the ClickHouse schema
	args := append([]string{"backfill", "-direct", "-migrate", "-workers", "2", "-chunk-rows", "50", "-progress-interval", "250ms", "-log-level", "debug"}, common...)
	for attempt := 1; attempt <= 3; attempt++ {
		log, killed := runAndKill(t, bin, args, 8)
		if !killed {
			t.Fatalf("attempt %d finished before the kill landed", attempt)
		}
		if attempt > 1 && !strings.Contains(log, "chunk done, skipping") {
			t.Errorf("attempt %d: no chunk skipped:\n%s", attempt, lastLines(log, 20))
		}
	}
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("final backfill: %v\n%s", err, out)
	}
	skipped := strings.Count(string(out), "chunk done, skipping")
	t.Logf("final attempt skipped %d chunks\n%s", skipped, lastLines(string(out), 3))
	if skipped == 0 {
		t.Fatal("the final attempt skipped no chunk")
	}

	addr := freeAddr(t)
	run := exec.Command(bin, append([]string{"run", "-run-skip", "api", "-http-addr", addr, "-capture-spool-dir", t.TempDir(),
		"-transform-group", e.prefix + "-run", "-transform-max-age", "100ms", "-sql-max-rows", "1000000"}, common...)...)
	var runLog strings.Builder
	run.Stdout, run.Stderr = &runLog, &runLog
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = run.Process.Signal(syscall.SIGTERM)
		_ = run.Wait()
	})
	time.Sleep(time.Second) // some writes streamed after the backfill
	n := stop()
	t.Logf("writer committed %d transactions", n)
	var pg, ch []string
	deadline := time.Now().Add(2 * time.Minute)
	for {
		pg, ch = e.pgFacts(), sqlFacts(t, "http://"+addr)
		if equal(pg, ch) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ClickHouse differs from PostgreSQL: %d vs %d orders\n%s\nrun log:\n%s", len(pg), len(ch), diff(pg, ch), lastLines(runLog.String(), 20))
		}
		time.Sleep(2 * time.Second)
	}
	t.Logf("ClickHouse equals PostgreSQL: %d orders; by status %v", len(pg), byStatus(pg))
	e.oneSnapshotEventPerRow()
}

// freeAddr returns a free 127.0.0.1 port.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// sqlFacts is chFacts read through POST /v1/sql of a running orderflow (nil
// while it is not answering yet).
func sqlFacts(t *testing.T, base string) []string {
	t.Helper()
	resp, err := http.Post(base+"/v1/sql?format=csv", "text/plain", strings.NewReader(chFactsQuery))
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	recs, err := csv.NewReader(resp.Body).ReadAll()
	if err != nil || len(recs) == 0 {
		return nil
	}
	var out []string
	for _, r := range recs {
		if r[0] != "order_id" { // not the header
			out = append(out, strings.Join(r, "|"))
		}
	}
	return out
}
