package capture

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/ingest/pgschema"
)

// change is one committed row change as the workload accounts it.
type change struct {
	table string
	id    int64
	xid   uint32
	op    string
}

// workload runs small transactions on the command-side schema until stop is
// closed and returns every committed change.
func workload(t *testing.T, url string, stop <-chan struct{}) ([]change, error) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	var prod int64
	if err := conn.QueryRow(ctx, `INSERT INTO products (sku, name, category, price, created_at, updated_at)
		VALUES ('W-1', 'Workload widget', 'tools', 10.00, now(), now()) RETURNING id`).Scan(&prod); err != nil {
		return nil, err
	}
	var (
		out       []change
		customers []int64
		items     []int64
		n         int
	)
	for {
		select {
		case <-stop:
			return out, nil
		default:
		}
		n++
		tx, err := conn.Begin(ctx)
		if err != nil {
			return out, err
		}
		var xs string
		if err := tx.QueryRow(ctx, "SELECT pg_current_xact_id()::text").Scan(&xs); err != nil {
			return out, err
		}
		x64, _ := strconv.ParseUint(xs, 10, 64)
		xid := uint32(x64)
		var mine []change
		var newCust, newItems []int64
		var delItem = -1
		switch k := rand.IntN(10); {
		case n%40 == 0:
			// A bulk transaction, bigger than logical_decoding_work_mem
			// (64kB in this test): PostgreSQL streams it before commit.
			rows, qerr := tx.Query(ctx, `INSERT INTO customers (name, email, segment, region, country, city, created_at, updated_at)
				SELECT 'Bulk ' || g, 'bulk' || $1::int || '-' || g || '@example.com', 'bronze', 'europe', 'DE', 'Berlin', now(), now()
				FROM generate_series(1, 1500) g RETURNING id`, n)
			if qerr != nil {
				err = qerr
				break
			}
			for rows.Next() {
				var id int64
				if err = rows.Scan(&id); err != nil {
					break
				}
				mine = append(mine, change{"customers", id, xid, "c"})
				newCust = append(newCust, id)
			}
			rows.Close()
			if err == nil {
				err = rows.Err()
			}
		case k < 3 || len(customers) == 0:
			var id int64
			err = tx.QueryRow(ctx, `INSERT INTO customers (name, email, segment, region, country, city, created_at, updated_at)
				VALUES ($1, $2, 'bronze', 'europe', 'DE', 'Berlin', now(), now()) RETURNING id`,
				fmt.Sprintf("Customer %d", n), fmt.Sprintf("c%d@example.com", n)).Scan(&id)
			mine = append(mine, change{"customers", id, xid, "c"})
			newCust = append(newCust, id)
		case k < 7:
			cust := customers[rand.IntN(len(customers))]
			var oid int64
			err = tx.QueryRow(ctx, `INSERT INTO orders (customer_id, status, currency, subtotal, discount, total, placed_at, created_at, updated_at)
				VALUES ($1, 'placed', 'USD', 20.00, 0, 20.00, now(), now(), now()) RETURNING id`, cust).Scan(&oid)
			mine = append(mine, change{"orders", oid, xid, "c"})
			for line := 1; err == nil && line <= 2; line++ {
				var iid int64
				err = tx.QueryRow(ctx, `INSERT INTO order_items (order_id, line_no, product_id, quantity, unit_price, discount, created_at, updated_at)
					VALUES ($1, $2, $3, 1, 10.00, 0, now(), now()) RETURNING id`, oid, line, prod).Scan(&iid)
				mine = append(mine, change{"order_items", iid, xid, "c"})
				newItems = append(newItems, iid)
			}
		case k < 9:
			cust := customers[rand.IntN(len(customers))]
			seg := []string{"bronze", "silver", "gold", "platinum"}[rand.IntN(4)]
			_, err = tx.Exec(ctx, "UPDATE customers SET segment = $2, updated_at = now() WHERE id = $1", cust, seg)
			mine = append(mine, change{"customers", cust, xid, "u"})
		default:
			if len(items) == 0 {
				_ = tx.Rollback(ctx)
				continue
			}
			delItem = rand.IntN(len(items))
			_, err = tx.Exec(ctx, "DELETE FROM order_items WHERE id = $1", items[delItem])
			mine = append(mine, change{"order_items", items[delItem], xid, "d"})
		}
		if err != nil {
			_ = tx.Rollback(ctx)
			return out, err
		}
		if err := tx.Commit(ctx); err != nil {
			return out, err
		}
		out = append(out, mine...)
		customers = append(customers, newCust...)
		items = append(items, newItems...)
		if delItem >= 0 {
			items[delItem] = items[len(items)-1]
			items = items[:len(items)-1]
		}
		time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
	}
}

// TestCaptureCrashExactlyOnce kills a real `orderflow capture` process with
// SIGKILL several times at random moments under a steady workload of small
// transactions and, now and then, a bulk one that PostgreSQL streams before
// commit (so kills also land while spooling or replaying one); at the end
// every committed change (table, key, transaction, op) is in Kafka exactly
// once for a read_committed reader, in commit-LSN order per key.
func TestCaptureCrashExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test builds and kills the orderflow binary; skipped with -short")
	}
	e := newITEnv(t)
	ctx := context.Background()
	if _, err := pgschema.Migrate(ctx, e.admin); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	bin := orderflowBinary(t)
	_ = bin
	logf, err := os.Create(filepath.Join(t.TempDir(), "capture.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("capture log:\n%s", b)
		}
	}()

	workMem := "ORDERFLOW_CAPTURE_DECODING_WORK_MEM=64kB"
	p := e.startProc(logf, workMem)
	p.waitReady(t, 2*time.Minute) // the slot exists: every later commit is captured
	stop := make(chan struct{})
	var (
		wg      sync.WaitGroup
		changes []change
		werr    error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		changes, werr = workload(t, e.pgURL, stop)
	}()
	const kills = 5
	for i := 0; i < kills; i++ {
		time.Sleep(time.Duration(700+rand.IntN(2300)) * time.Millisecond)
		p.kill()
		t.Logf("kill -9 #%d (pid %d)", i+1, p.cmd.Process.Pid)
		p = e.startProc(logf, workMem)
	}
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	if werr != nil {
		t.Fatalf("workload: %v", werr)
	}
	e.waitFlushed(90 * time.Second)
	streamed, _ := p.metric("orderflow_capture_streamed_transactions_total", "")
	_ = p.stop(t)

	topics := []string{e.topic("customers"), e.topic("orders"), e.topic("order_items"), e.topic("products")}
	evs := decodeAll(t, e.committed(topics...))
	got := map[change]int{}
	lastLSN := map[string]uint64{}
	for _, d := range evs {
		c := change{d.Source.Table, idOf(t, d.key), uint32(d.Source.TxID), d.Op}
		got[c]++
		k := d.rec.Topic + d.key
		if d.Source.LSN < lastLSN[k] {
			t.Errorf("%s key %s: LSN %d after %d", d.rec.Topic, d.key, d.Source.LSN, lastLSN[k])
		}
		lastLSN[k] = d.Source.LSN
	}
	want := map[change]bool{}
	missing, doubled := 0, 0
	for _, c := range changes {
		want[c] = true
		switch n := got[c]; {
		case n == 0:
			missing++
			if missing <= 5 {
				t.Errorf("missing: %+v", c)
			}
		case n > 1:
			doubled++
			if doubled <= 5 {
				t.Errorf("%d copies: %+v", n, c)
			}
		}
	}
	var extra []string
	for c := range got {
		if !want[c] && c.table != "products" {
			extra = append(extra, fmt.Sprintf("%+v", c))
		}
	}
	sort.Strings(extra)
	if len(extra) > 0 {
		t.Errorf("%d events for changes the workload did not commit, e.g. %v", len(extra), extra[:min(5, len(extra))])
	}
	if missing+doubled > 0 {
		t.Fatalf("%d committed changes: %d missing, %d duplicated", len(changes), missing, doubled)
	}
	t.Logf("%d committed changes across %d kills: each in Kafka exactly once (%d events read; the last process produced %v streamed transactions)", len(changes), kills, len(evs), streamed)
}

// TestCaptureLargeTransactionStreamed: one transaction of 200,000 rows (about
// 200 MB, more than logical_decoding_work_mem) is streamed by PostgreSQL
// before it commits; the capture process spools it to disk and produces it
// at commit, staying under a memory bound far below the transaction's size.
// Every row arrives exactly once, all with the transaction's commit LSN.
func TestCaptureLargeTransactionStreamed(t *testing.T) {
	if testing.Short() {
		t.Skip("200k-row transaction; skipped with -short")
	}
	const rows = 200000
	const bound = 128 << 20 // bytes of peak RSS; the transaction is ~230 MB of events
	e := newITEnv(t)
	e.exec("CREATE TABLE big (id bigint PRIMARY KEY, payload text NOT NULL, n integer NOT NULL)",
		"CREATE TABLE small (id bigint PRIMARY KEY)")
	logf, err := os.Create(filepath.Join(t.TempDir(), "capture.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("capture log:\n%s", b)
		}
	}()
	p := e.startProc(logf)
	p.waitReady(t, 2*time.Minute)
	start := time.Now()
	// An interleaved small transaction commits while the big one is open.
	ctx := context.Background()
	tx, err := e.admin.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO big SELECT g, substr(repeat(md5(g::text) || md5((g * 7)::text), 16), 1, 1000), g % 97
		FROM generate_series(1, $1) g`, rows); err != nil {
		t.Fatal(err)
	}
	other, err := pgx.Connect(ctx, e.pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	if _, err := other.Exec(ctx, "INSERT INTO small VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("200k-row transaction committed in %s", time.Since(start).Round(time.Millisecond))
	e.waitFlushed(3 * time.Minute)
	t.Logf("captured %d rows in %s", rows, time.Since(start).Round(time.Millisecond))
	streamed, err := p.metric("orderflow_capture_streamed_transactions_total", "")
	if err != nil {
		t.Fatal(err)
	}
	peak := p.peakRSS()
	_ = p.stop(t)
	if streamed < 1 {
		t.Fatalf("PostgreSQL did not stream the transaction (streamed_transactions_total = %v)", streamed)
	}
	t.Logf("peak RSS of the capture process: %.1f MiB (bound %d MiB)", float64(peak)/(1<<20), bound>>20)
	if peak == 0 || peak > bound {
		t.Fatalf("peak RSS %d bytes, bound %d", peak, bound)
	}

	seen := make([]bool, rows+1)
	var lsn uint64
	count, dups := 0, 0
	e.eachCommitted(func(r *kgo.Record) {
		id := idOf(t, string(r.Key))
		if id < 1 || id > rows {
			t.Fatalf("unexpected key %s", r.Key)
		}
		if seen[id] {
			dups++
		}
		seen[id] = true
		count++
		for _, h := range r.Headers {
			if h.Key == "lsn" {
				l, _ := strconv.ParseUint(string(h.Value), 10, 64)
				if lsn != 0 && l != lsn {
					t.Fatalf("two commit LSNs in one transaction: %d, %d", lsn, l)
				}
				lsn = l
			}
		}
	}, e.topic("big"))
	if count != rows || dups != 0 {
		t.Fatalf("%d events (%d duplicates), want %d", count, dups, rows)
	}
	small := decodeAll(t, e.committed(e.topic("small")))
	if len(small) != 1 || small[0].Source.LSN >= lsn {
		t.Fatalf("small transaction: %d events, LSN %v vs big %d", len(small), small, lsn)
	}
}
