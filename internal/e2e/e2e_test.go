package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/internal/testenv"
)

var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "orderflow-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "orderflow")
	build := exec.Command("go", "build", "-o", bin, "./cmd/orderflow")
	build.Dir = testenv.RepoRoot()
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build orderflow:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func start(t *testing.T, env []string, logf *os.File, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p
}

func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func (p *proc) stop(t *testing.T) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Errorf("%v did not stop within 60s of SIGTERM", p.cmd.Args)
		p.kill()
	}
}

// waitReady waits until the process serving addr answers /readyz with 200.
func waitReady(ctx context.Context, t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/readyz not ready after 2 minutes (last error %v)", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func sqlCSV(ctx context.Context, addr, q string) ([]string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/v1/sql?format=csv", strings.NewReader(q))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d: %s", resp.StatusCode, b)
	}
	var out []string
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue
		}
		out = append(out, strings.ReplaceAll(sc.Text(), `"`, ""))
	}
	return out, sc.Err()
}

// factQuery and oracleQuery render each order as one comparable line:
// lifecycle, money, item counts, and the customer's attributes. Customer
// attributes are compared only where PostgreSQL still holds the version in
// force at placement (the customer last changed at or before the order);
// the other orders' as-of attributes are the subject of the report oracle
// in queries/.
const factQuery = `SELECT concat(toString(order_id), '|', toString(customer_id), '|', toString(status), '|',
 toDecimalString(subtotal, 2), '|', toDecimalString(discount, 2), '|', toDecimalString(total, 2), '|', toString(item_count), '|', toString(units), '|',
 formatDateTime(placed_at, '%Y-%m-%d %H:%i:%S'), '|', ifNull(formatDateTime(paid_at, '%Y-%m-%d %H:%i:%S'), '-'), '|',
 ifNull(formatDateTime(shipped_at, '%Y-%m-%d %H:%i:%S'), '-'), '|', ifNull(formatDateTime(delivered_at, '%Y-%m-%d %H:%i:%S'), '-'), '|',
 ifNull(formatDateTime(cancelled_at, '%Y-%m-%d %H:%i:%S'), '-'), '|', ifNull(formatDateTime(refunded_at, '%Y-%m-%d %H:%i:%S'), '-'), '|',
 toString(customer_segment), '|', toString(customer_region), '|', toString(customer_country), '|', customer_city, '|', customer_email)
FROM customer_orders FINAL WHERE _is_deleted = 0 ORDER BY order_id`

const oracleQuery = `SELECT concat_ws('|', o.id, o.customer_id, o.status,
  to_char(o.subtotal, 'FM999999990.00'), to_char(o.discount, 'FM999999990.00'), to_char(o.total, 'FM999999990.00'),
  (SELECT count(*) FROM order_items i WHERE i.order_id = o.id), (SELECT coalesce(sum(quantity), 0) FROM order_items i WHERE i.order_id = o.id),
  to_char(o.placed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'),
  coalesce(to_char(o.paid_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), '-'),
  coalesce(to_char(o.shipped_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), '-'),
  coalesce(to_char(o.delivered_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), '-'),
  coalesce(to_char(o.cancelled_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), '-'),
  coalesce(to_char(o.refunded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), '-'),
  CASE WHEN c.updated_at <= o.placed_at THEN c.segment || '|' || c.region || '|' || c.country || '|' || c.city || '|' || c.email END)
FROM orders o JOIN customers c ON c.id = o.customer_id ORDER BY o.id`

// TestPipelineOracleWithTransformerKills: `orderflow load` writes a seeded
// workload with the full order lifecycle while capture streams it and the
// transformer (an `orderflow run` with only the transform and report parts)
// is killed with SIGKILL at random moments and restarted. At the end every
// order is in customer_orders exactly once (FINAL) with PostgreSQL's values.
func TestPipelineOracleWithTransformerKills(t *testing.T) {
	pgURL := testenv.Postgres(t)
	brokers := testenv.KafkaBrokers(t)
	lib := testenv.ChdbLib(t)
	ns := testenv.Name("e2e")
	orders := 20000
	if testing.Short() {
		orders = 3000
	}
	addr := freeAddr(t)
	env := []string{
		"ORDERFLOW_PG_URL=" + pgURL, "ORDERFLOW_PG_SLOT=" + ns, "ORDERFLOW_PG_PUBLICATION=" + ns,
		"ORDERFLOW_KAFKA_BROKERS=" + strings.Join(brokers, ","), "ORDERFLOW_KAFKA_TOPIC_PREFIX=" + ns,
		"ORDERFLOW_TRANSFORM_GROUP=" + ns, "ORDERFLOW_CHDB_LIB=" + lib, "ORDERFLOW_CHDB_PATH=" + t.TempDir(),
		"ORDERFLOW_HTTP_ADDR=" + addr, "ORDERFLOW_LOG_FORMAT=json",
	}
	// ORDERFLOW_E2E_LOG=<path> keeps the processes' whole output there.
	logPath := filepath.Join(t.TempDir(), "e2e.log")
	if p := os.Getenv("ORDERFLOW_E2E_LOG"); p != "" {
		logPath = p
	}
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			if len(b) > 20000 {
				b = b[len(b)-20000:]
			}
			t.Logf("last process output:\n%s", b)
		}
		logf.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	migrate := exec.CommandContext(ctx, bin, "migrate")
	migrate.Env = append(os.Environ(), env...)
	if out, err := migrate.CombinedOutput(); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	captureAddr := freeAddr(t)
	capture := start(t, env, logf, "capture", "-http-addr", captureAddr, "-capture-heartbeat-interval", "1s")
	defer capture.stop(t)
	// The replication slot is created without a snapshot: a change committed
	// before it exists is never captured. Load only once capture is streaming
	// (/readyz is 200 once replication has started).
	waitReady(ctx, t, captureAddr)
	// Diagnosis switches: ORDERFLOW_E2E_KILLS=0 never kills the transformer;
	// ORDERFLOW_E2E_LATE=1 starts it only after the load has finished.
	noKills := os.Getenv("ORDERFLOW_E2E_KILLS") == "0"
	late := os.Getenv("ORDERFLOW_E2E_LATE") == "1"
	var transform *proc
	if !late {
		transform = start(t, env, logf, "run", "-migrate", "-run-skip", "api,capture")
	}
	defer func() {
		if transform != nil {
			transform.stop(t)
		}
	}()

	loadDone := make(chan error, 1)
	go func() {
		cmd := exec.CommandContext(ctx, bin, "load", "-seed", "7", "-customers", fmt.Sprint(orders/8), "-orders", fmt.Sprint(orders),
			"-rate", fmt.Sprint(orders/20), "-batch", "500", "-no-progress")
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			err = fmt.Errorf("%w: %s", err, out)
		}
		loadDone <- err
	}()

	rng := rand.New(rand.NewPCG(7, 7))
	kills := 0
	for loading := true; loading; {
		select {
		case err := <-loadDone:
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			loading = false
		case <-time.After(time.Duration(1500+rng.IntN(3000)) * time.Millisecond):
			if noKills || late {
				continue
			}
			transform.kill()
			kills++
			transform = start(t, env, logf, "run", "-run-skip", "api,capture")
		}
	}
	if late {
		transform = start(t, env, logf, "run", "-migrate", "-run-skip", "api,capture")
	}
	if kills < 3 && !noKills && !late {
		// The workload ended early: kill once more after it, mid catch-up.
		time.Sleep(time.Duration(200+rng.IntN(800)) * time.Millisecond)
		transform.kill()
		kills++
		transform = start(t, env, logf, "run", "-run-skip", "api,capture")
	}
	t.Logf("transformer killed %d times", kills)

	pg, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close(context.Background())
	rows, err := pg.Query(ctx, oracleQuery)
	if err != nil {
		t.Fatal(err)
	}
	want, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(want) < orders {
		t.Fatalf("PostgreSQL has %d orders, want %d", len(want), orders)
	}
	// PostgreSQL's line lacks the customer part where the customer changed
	// after the order: compare only the order part there.
	compare := func(got []string) (int, string) {
		bad, first := 0, ""
		for i := range want {
			g := ""
			if i < len(got) {
				g = got[i]
			}
			w := want[i]
			if strings.Count(w, "|") < strings.Count(g, "|") {
				g = strings.Join(strings.Split(g, "|")[:strings.Count(w, "|")+1], "|")
			}
			if g != w {
				if bad < 5 {
					first += fmt.Sprintf("\norder line %d:\n  ClickHouse %q\n  PostgreSQL %q", i, g, w)
				}
				bad++
			}
		}
		return bad, first
	}
	var got []string
	deadline := time.Now().Add(5 * time.Minute)
	for {
		got, err = sqlCSV(ctx, addr, factQuery)
		if err == nil && len(got) == len(want) {
			if bad, _ := compare(got); bad == 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			if err != nil {
				t.Fatalf("read facts: %v", err)
			}
			bad, first := compare(got)
			t.Fatalf("after 5 minutes ClickHouse has %d order facts, PostgreSQL %d orders; %d differ; first: %s", len(got), len(want), bad, first)
		}
		time.Sleep(time.Second)
	}
	// exactly once: FINAL aside, no order has two live versions after merge
	dups, err := sqlCSV(ctx, addr, "SELECT count() FROM (SELECT order_id FROM customer_orders FINAL GROUP BY order_id HAVING count() > 1)")
	if err != nil || len(dups) != 1 || dups[0] != "0" {
		t.Fatalf("orders appearing more than once under FINAL: %v %v", dups, err)
	}
	withCustomer := 0
	for _, w := range want {
		if strings.Count(w, "|") > 13 {
			withCustomer++
		}
	}
	statuses := map[string]int{}
	for _, w := range want {
		statuses[strings.Split(w, "|")[2]]++
	}
	keys := make([]string, 0, len(statuses))
	for k := range statuses {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, need := range []string{"cancelled", "delivered", "paid", "refunded", "shipped"} {
		if statuses[need] == 0 {
			t.Errorf("the workload produced no %s orders (%v): the oracle does not cover that status", need, statuses)
		}
	}
	t.Logf("%d orders equal PostgreSQL's (statuses %v); customer attributes compared on %d of them", len(want), statuses, withCustomer)
}
