package capture

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/orderflow/orderflow/ingest/pgschema"
	"github.com/orderflow/orderflow/internal/envelope"
	"github.com/orderflow/orderflow/internal/testenv"
)

var shopTables = []string{"customers", "products", "campaigns", "orders", "order_items"}

// txid runs fn in a transaction and returns its xid (as pgoutput reports it).
func txid(t *testing.T, conn *pgx.Conn, fn func(tx pgx.Tx)) uint32 {
	t.Helper()
	ctx := context.Background()
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var x string
	if err := tx.QueryRow(ctx, "SELECT pg_current_xact_id()::text").Scan(&x); err != nil {
		t.Fatal(err)
	}
	fn(tx)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.ParseUint(x, 10, 64)
	return uint32(n)
}

func execTx(t *testing.T, tx pgx.Tx, sql string, args ...any) {
	t.Helper()
	if _, err := tx.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func idOf(t *testing.T, key string) int64 {
	t.Helper()
	var k map[string]json.Number
	if err := json.Unmarshal([]byte(key), &k); err != nil {
		t.Fatalf("key %q: %v", key, err)
	}
	n, err := k["id"].Int64()
	if err != nil {
		t.Fatalf("key %q: %v", key, err)
	}
	return n
}

// TestCaptureCommandSchema runs inserts, updates and deletes on every table of
// the command-side schema (ingest/pgschema) and checks each event: topic, key,
// op, before/after values, transaction id, commit LSN order and headers.
func TestCaptureCommandSchema(t *testing.T) {
	e := newITEnv(t)
	ctx := context.Background()
	if _, err := pgschema.Migrate(ctx, e.admin); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	// A table topic that exists with a finite retention (created by hand, or
	// before capture set -1): capture leaves it and warns.
	retention := "86400000"
	cl := e.kafka()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 3, -1, map[string]*string{"retention.ms": &retention}, e.topic("products")); err != nil {
		t.Fatalf("create %s: %v", e.topic("products"), err)
	}
	cl.Close()
	_, reg := e.start(e.options())
	if want := fmt.Sprintf("topic=%s retention_ms=86400000", e.topic("products")); !strings.Contains(e.logs.String(), want) {
		t.Errorf("capture did not warn about %s's retention (want %q in its log)", e.topic("products"), want)
	}
	if strings.Contains(e.logs.String(), "topic="+e.topic("orders")+" retention_ms") {
		t.Errorf("capture warned about %s, which it created with retention.ms=-1", e.topic("orders"))
	}

	ts := "2026-03-01 10:00:00.123456+00"
	var custID, prodID, campID, orderID, item1, item2 int64
	x1 := txid(t, e.admin, func(tx pgx.Tx) {
		if err := tx.QueryRow(ctx, `INSERT INTO customers (name, email, phone, segment, region, country, city, created_at, updated_at)
			VALUES ('Ada Lovelace', 'ada@example.com', '+44 20 1234 5678', 'gold', 'europe', 'GB', 'London', $1, $1) RETURNING id`, ts).Scan(&custID); err != nil {
			t.Fatal(err)
		}
		if err := tx.QueryRow(ctx, `INSERT INTO products (sku, name, category, price, created_at, updated_at)
			VALUES ('SKU-1', 'Widget', 'tools', 19.99, $1, $1) RETURNING id`, ts).Scan(&prodID); err != nil {
			t.Fatal(err)
		}
		if err := tx.QueryRow(ctx, `INSERT INTO campaigns (code, name, starts_at, ends_at, discount_percent, created_at, updated_at)
			VALUES ('SPRING', 'Spring sale', $1, $1::timestamptz + interval '30 days', 10.00, $1, $1) RETURNING id`, ts).Scan(&campID); err != nil {
			t.Fatal(err)
		}
	})
	x2 := txid(t, e.admin, func(tx pgx.Tx) {
		if err := tx.QueryRow(ctx, `INSERT INTO orders (customer_id, campaign_id, status, currency, subtotal, discount, total, placed_at, created_at, updated_at)
			VALUES ($1, $2, 'placed', 'USD', 39.98, 4.00, 35.98, $3, $3, $3) RETURNING id`, custID, campID, ts).Scan(&orderID); err != nil {
			t.Fatal(err)
		}
		for i, dst := range []*int64{&item1, &item2} {
			if err := tx.QueryRow(ctx, `INSERT INTO order_items (order_id, line_no, product_id, quantity, unit_price, discount, created_at, updated_at)
				VALUES ($1, $2, $3, 1, 19.99, 2.00, $4, $4) RETURNING id`, orderID, i+1, prodID, ts).Scan(dst); err != nil {
				t.Fatal(err)
			}
		}
	})
	x3 := txid(t, e.admin, func(tx pgx.Tx) {
		execTx(t, tx, "UPDATE customers SET segment = 'platinum', updated_at = updated_at + interval '1 hour' WHERE id = $1", custID)
		execTx(t, tx, "UPDATE orders SET status = 'paid', paid_at = placed_at + interval '5 minutes', updated_at = updated_at + interval '5 minutes' WHERE id = $1", orderID)
		execTx(t, tx, "UPDATE products SET price = 17.50 WHERE id = $1", prodID)
	})
	x4 := txid(t, e.admin, func(tx pgx.Tx) {
		execTx(t, tx, "DELETE FROM order_items WHERE id = $1", item2)
		execTx(t, tx, "UPDATE orders SET campaign_id = NULL, discount = 0, total = subtotal WHERE id = $1", orderID)
		execTx(t, tx, "DELETE FROM campaigns WHERE id = $1", campID)
	})
	e.waitFlushed(30 * time.Second)
	checkTopicRetention(t, e.brokers, e.topic("orders"), e.topic("customers"))

	topics := make([]string, len(shopTables))
	for i, tb := range shopTables {
		topics[i] = e.topic(tb)
	}
	evs := decodeAll(t, e.committed(topics...))
	byTable := map[string][]decoded{}
	for _, d := range evs {
		if d.rec.Topic != e.topic(d.Source.Table) {
			t.Errorf("event of %s on topic %s", d.Source.Table, d.rec.Topic)
		}
		if d.headerLSN != strconv.FormatUint(d.Source.LSN, 10) || d.headerTx != strconv.FormatInt(d.Source.TxID, 10) {
			t.Errorf("headers lsn=%s txid=%s, source %d/%d", d.headerLSN, d.headerTx, d.Source.LSN, d.Source.TxID)
		}
		byTable[d.Source.Table] = append(byTable[d.Source.Table], d)
	}
	type want struct {
		op  string
		xid uint32
		id  int64
	}
	expect := map[string][]want{
		"customers":   {{"c", x1, custID}, {"u", x3, custID}},
		"products":    {{"c", x1, prodID}, {"u", x3, prodID}},
		"campaigns":   {{"c", x1, campID}, {"d", x4, campID}},
		"orders":      {{"c", x2, orderID}, {"u", x3, orderID}, {"u", x4, orderID}},
		"order_items": {{"c", x2, item1}, {"c", x2, item2}, {"d", x4, item2}},
	}
	lsnOfTx := map[int64]uint64{}
	for table, ws := range expect {
		got := byTable[table]
		if len(got) != len(ws) {
			t.Fatalf("%s: %d events, want %d: %+v", table, len(got), len(ws), got)
		}
		// Events of one table can sit on different partitions; order them
		// by commit LSN (per key they are already in order, checked below).
		for i, w := range ws {
			var found *decoded
			for j := range got {
				if got[j].Op == w.op && uint32(got[j].Source.TxID) == w.xid && idOf(t, got[j].key) == w.id {
					found = &got[j]
				}
			}
			if found == nil {
				t.Fatalf("%s: no event #%d %+v in %+v", table, i, w, got)
			}
			if prev, ok := lsnOfTx[found.Source.TxID]; ok && prev != found.Source.LSN {
				t.Errorf("tx %d has two commit LSNs %d and %d", found.Source.TxID, prev, found.Source.LSN)
			}
			lsnOfTx[found.Source.TxID] = found.Source.LSN
			if found.Source.DB == "" || found.Source.Schema != "public" || found.Source.TsMs == 0 {
				t.Errorf("%s source = %+v", table, found.Source)
			}
		}
	}
	if !(lsnOfTx[int64(x1)] < lsnOfTx[int64(x2)] && lsnOfTx[int64(x2)] < lsnOfTx[int64(x3)] && lsnOfTx[int64(x3)] < lsnOfTx[int64(x4)]) {
		t.Errorf("commit LSNs not in commit order: %v", lsnOfTx)
	}
	// Per key (same partition): LSN order.
	last := map[string]uint64{}
	for _, d := range evs {
		k := d.rec.Topic + d.key
		if d.Source.LSN < last[k] {
			t.Errorf("%s key %s: LSN %d after %d", d.rec.Topic, d.key, d.Source.LSN, last[k])
		}
		last[k] = d.Source.LSN
	}

	// Values.
	find := func(table, op string) *decoded {
		for i := range byTable[table] {
			if byTable[table][i].Op == op {
				return &byTable[table][i]
			}
		}
		t.Fatalf("no %s event on %s", op, table)
		return nil
	}
	c := find("customers", "c")
	if c.Before != nil || c.After["name"] != "Ada Lovelace" || c.After["email"] != "ada@example.com" || c.After["segment"] != "gold" ||
		c.After["country"] != "GB" || c.After["created_at"] != "2026-03-01T10:00:00.123456Z" {
		t.Errorf("customer insert: %+v", c.After)
	}
	u := find("customers", "u")
	if u.After["segment"] != "platinum" || u.After["updated_at"] != "2026-03-01T11:00:00.123456Z" {
		t.Errorf("customer update after: %+v", u.After)
	}
	if id, _, _ := u.Before.Int("id"); id != custID || len(u.Before) != 1 {
		t.Errorf("customer update before = %v, want the key only (REPLICA IDENTITY DEFAULT)", u.Before)
	}
	p := find("products", "u")
	if p.After["price"] != "17.50" || p.After["currency"] != "USD" {
		t.Errorf("product update: %+v", p.After)
	}
	o := find("orders", "c")
	if o.After["subtotal"] != "39.98" || o.After["total"] != "35.98" || o.After["paid_at"] != nil || o.After["status"] != "placed" {
		t.Errorf("order insert: %+v", o.After)
	}
	if cid, _, _ := o.After.Int("customer_id"); cid != custID {
		t.Errorf("order customer_id = %v", o.After["customer_id"])
	}
	d := find("campaigns", "d")
	if d.After != nil || len(d.Before) != 1 {
		t.Errorf("campaign delete before=%v after=%v", d.Before, d.After)
	}
	for _, it := range byTable["order_items"] {
		if it.Op == "c" && (it.After["unit_price"] != "19.99" || it.After["quantity"] != json.Number("1")) {
			t.Errorf("order item: %+v", it.After)
		}
	}
	if n := counterValue(t, reg, "orderflow_capture_events_total", map[string]string{"table": "orders", "op": "u"}); n != 2 {
		t.Errorf("events_total{orders,u} = %v, want 2", n)
	}
	if n := counterValue(t, reg, "orderflow_capture_transactions_total", nil); n < 4 {
		t.Errorf("transactions_total = %v, want >= 4", n)
	}
	if n := counterValue(t, reg, "orderflow_capture_last_commit_timestamp_seconds", nil); time.Since(time.Unix(int64(n), 0)) > time.Minute {
		t.Errorf("last_commit_timestamp_seconds = %v", n)
	}
}

// randomText is incompressible, so PostgreSQL stores it out of line (TOAST).
func randomText(n int) string {
	b := make([]byte, n/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// TestCaptureTOASTAndSchemaChange: an update leaving a 20 KB TOASTed column
// unchanged marks it unchanged; ADD COLUMN and DROP COLUMN mid-stream change
// the shape of the next events without a restart.
func TestCaptureTOASTAndSchemaChange(t *testing.T) {
	e := newITEnv(t)
	e.exec("CREATE TABLE docs (id bigint PRIMARY KEY, title text NOT NULL, body text, updated_at timestamptz NOT NULL DEFAULT now())")
	_, reg := e.start(e.options())
	body := randomText(20 << 10)
	e.exec("INSERT INTO docs (id, title, body) VALUES (1, 'first', '" + body + "')")
	e.exec("UPDATE docs SET title = 'renamed' WHERE id = 1")
	e.exec("ALTER TABLE docs ADD COLUMN rating integer")
	e.exec("INSERT INTO docs (id, title, body, rating) VALUES (2, 'second', 'short', 5)")
	e.exec("UPDATE docs SET rating = 4 WHERE id = 1")
	e.exec("ALTER TABLE docs DROP COLUMN title")
	e.exec("UPDATE docs SET rating = 3, body = 'now short' WHERE id = 1")
	e.exec("INSERT INTO docs (id, body, rating) VALUES (3, 'third', 1)")
	e.waitFlushed(30 * time.Second)

	evs := decodeAll(t, e.committed(e.topic("docs")))
	byKey := map[int64][]decoded{}
	for _, d := range evs {
		byKey[idOf(t, d.key)] = append(byKey[idOf(t, d.key)], d)
	}
	one := byKey[1]
	if len(one) != 4 || len(byKey[2]) != 1 || len(byKey[3]) != 1 {
		t.Fatalf("events per key: 1:%d 2:%d 3:%d, want 4 1 1", len(one), len(byKey[2]), len(byKey[3]))
	}
	if one[0].Op != "c" || one[0].After["body"] != body {
		t.Fatalf("insert did not carry the 20 KB body (len %d)", len(fmt.Sprint(one[0].After["body"])))
	}
	up := one[1]
	if up.Op != "u" || up.After["title"] != "renamed" {
		t.Fatalf("update: %+v", up.After)
	}
	if _, present := up.After["body"]; present {
		t.Fatalf("unchanged TOAST body published as a value: %.40v", up.After["body"])
	}
	if len(up.Unchanged) != 1 || up.Unchanged[0] != "body" {
		t.Fatalf("unchanged = %v, want [body]", up.Unchanged)
	}
	raw := string(up.rec.Value)
	if strings.Contains(raw, envelope.DebeziumUnavailable) || strings.Contains(raw, `"body":""`) || strings.Contains(raw, `"body":null`) {
		t.Fatalf("placeholder published: %s", raw)
	}
	// After ADD COLUMN.
	if r, ok, _ := byKey[2][0].After.Int("rating"); !ok || r != 5 {
		t.Fatalf("after ADD COLUMN: %+v", byKey[2][0].After)
	}
	if r, _, _ := one[2].After.Int("rating"); r != 4 || len(one[2].Unchanged) != 1 {
		t.Fatalf("rating update: %+v unchanged %v", one[2].After, one[2].Unchanged)
	}
	// After DROP COLUMN: no title any more.
	for _, d := range []decoded{one[3], byKey[3][0]} {
		if _, has := d.After["title"]; has {
			t.Fatalf("title after DROP COLUMN: %+v", d.After)
		}
	}
	if one[3].After["body"] != "now short" || byKey[3][0].After["body"] != "third" {
		t.Fatalf("after DROP COLUMN: %+v %+v", one[3].After, byKey[3][0].After)
	}
	if n := counterValue(t, reg, "orderflow_capture_restarts_total", nil); n != 0 {
		t.Fatalf("capture restarted %v times", n)
	}
}

// TestCaptureDLQ: a column of a type capture does not decode sends the change
// to <prefix>.dlq with the reason; later changes still flow.
func TestCaptureDLQ(t *testing.T) {
	e := newITEnv(t)
	e.exec("CREATE TYPE pair AS (a integer, b text)",
		"CREATE TABLE weird (id bigint PRIMARY KEY, p pair, note text)",
		"CREATE TABLE fine (id bigint PRIMARY KEY, note text)")
	_, reg := e.start(e.options())
	e.exec("INSERT INTO weird VALUES (1, ROW(1, 'x'), 'bad')")
	e.exec("INSERT INTO fine VALUES (1, 'after the poison')")
	e.exec("INSERT INTO weird VALUES (2, ROW(2, 'y'), 'bad again')", "INSERT INTO weird VALUES (3, NULL, 'a NULL of any type is just null')")
	e.exec("INSERT INTO fine VALUES (2, 'still going')")
	e.waitFlushed(30 * time.Second)

	dlq := e.committed(DLQTopic(e.prefix))
	if len(dlq) != 2 {
		t.Fatalf("%d dead letters, want 2", len(dlq))
	}
	for _, r := range dlq {
		hdr := map[string]string{}
		for _, h := range r.Headers {
			hdr[h.Key] = string(h.Value)
		}
		if hdr["reason"] != ReasonUnsupportedType || !strings.Contains(hdr["error"], "pair") || hdr["table"] != "weird" || hdr[envelope.HeaderLSN] == "" {
			t.Fatalf("dead-letter headers: %v", hdr)
		}
		var v map[string]any
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatal(err)
		}
		if v["reason"] != ReasonUnsupportedType || v["table"] != "weird" || v["after_raw"] == nil {
			t.Fatalf("dead-letter value: %s", r.Value)
		}
	}
	weird := decodeAll(t, e.committed(e.topic("weird")))
	if len(weird) != 1 || weird[0].After["p"] != nil || weird[0].After["note"] != "a NULL of any type is just null" {
		t.Fatalf("weird events: %+v", weird)
	}
	fine := decodeAll(t, e.committed(e.topic("fine")))
	if len(fine) != 2 {
		t.Fatalf("%d events on fine, want 2", len(fine))
	}
	if n := counterValue(t, reg, "orderflow_capture_dlq_total", map[string]string{"reason": ReasonUnsupportedType}); n != 2 {
		t.Fatalf("dlq_total = %v", n)
	}
}

// TestCaptureHeartbeatAdvancesIdleSlot: with no change in any published
// table, heartbeats keep confirmed_flush_lsn moving.
func TestCaptureHeartbeatAdvancesIdleSlot(t *testing.T) {
	e := newITEnv(t)
	e.exec("CREATE TABLE idle (id bigint PRIMARY KEY)")
	o := e.options()
	o.HeartbeatInterval = 200 * time.Millisecond
	_, reg := e.start(o)
	ctx := context.Background()
	read := func() uint64 {
		var s *string
		if err := e.admin.QueryRow(ctx, "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1", e.slot).Scan(&s); err != nil {
			t.Fatal(err)
		}
		if s == nil {
			return 0
		}
		var hi, lo uint64
		if _, err := fmt.Sscanf(*s, "%X/%X", &hi, &lo); err != nil {
			t.Fatal(err)
		}
		return hi<<32 | lo
	}
	prev := read()
	moves := 0
	deadline := time.Now().Add(20 * time.Second)
	for moves < 3 && time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
		if cur := read(); cur > prev {
			moves++
			prev = cur
		}
	}
	if moves < 3 {
		t.Fatalf("confirmed_flush_lsn moved %d times in 20s of idleness, want 3", moves)
	}
	if n := counterValue(t, reg, "orderflow_capture_heartbeats_total", nil); n < 1 {
		t.Fatalf("no heartbeat came back through the slot")
	}
	if n := counterValue(t, reg, "orderflow_capture_events_total", nil); n != 0 {
		t.Fatalf("%v events from an idle table", n)
	}
}

// TestCaptureLeastPrivilegeRole: capture works connected as a role with only
// REPLICATION and SELECT, set up by Setup (the same statements as setup.sql).
func TestCaptureLeastPrivilegeRole(t *testing.T) {
	role := testenv.Name("capture_role")
	t.Cleanup(func() {
		// Registered first, so it runs after the database is dropped.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, testenv.PostgresAdminURL()); err == nil {
			_, _ = c.Exec(ctx, "DROP ROLE IF EXISTS "+role)
			_ = c.Close(ctx)
		}
	})
	e := newITEnv(t)
	ctx := context.Background()
	if _, err := pgschema.Migrate(ctx, e.admin); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	// The documented way: `orderflow capture -setup` as the administrator.
	cmd := exec.Command(orderflowBinary(t), "capture", "-setup", "-setup-role", role, "-pg-publication", e.pub, "-pg-url", e.pgURL)
	cmd.Env = append(os.Environ(), "ORDERFLOW_SETUP_PASSWORD=s3cret")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("orderflow capture -setup: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "s3cret") {
		t.Fatalf("setup printed the password:\n%s", out)
	}
	t.Logf("orderflow capture -setup:\n%s", out)
	// Idempotent: a second run only updates the role.
	if _, err := Setup(ctx, e.admin, SetupOptions{Role: role, Password: "s3cret", Publication: e.pub}); err != nil {
		t.Fatalf("setup again: %v", err)
	}
	var super, repl bool
	if err := e.admin.QueryRow(ctx, "SELECT rolsuper, rolreplication FROM pg_roles WHERE rolname = $1", role).Scan(&super, &repl); err != nil || super || !repl {
		t.Fatalf("role: super=%v replication=%v err=%v", super, repl, err)
	}
	o := e.options()
	u := strings.Replace(e.pgURL, "orderflow:orderflow@", role+":s3cret@", 1)
	if u == e.pgURL {
		t.Fatalf("cannot derive the role's URL from %s", e.pgURL)
	}
	o.Postgres.URL = u
	e.start(o)
	e.exec(`INSERT INTO customers (name, email, segment, region, country, city, created_at, updated_at)
		VALUES ('Grace', 'grace@example.com', 'silver', 'europe', 'FR', 'Paris', now(), now())`)
	e.waitFlushed(30 * time.Second)
	evs := decodeAll(t, e.committed(e.topic("customers")))
	if len(evs) != 1 || evs[0].After["email"] != "grace@example.com" {
		t.Fatalf("events as the capture role: %+v", evs)
	}
	// The role really is restricted.
	rc, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close(ctx)
	if _, err := rc.Exec(ctx, "DELETE FROM customers"); err == nil {
		t.Fatal("capture role could delete rows")
	}
}

// TestCaptureStreamedSavepointsAndAbort: with a tiny
// logical_decoding_work_mem PostgreSQL streams every transaction before it
// commits; a rolled-back savepoint's rows and a rolled-back transaction's rows
// never reach Kafka, the rest does, once.
func TestCaptureStreamedSavepointsAndAbort(t *testing.T) {
	e := newITEnv(t)
	e.exec("CREATE TABLE s (id bigint PRIMARY KEY, payload text NOT NULL)")
	o := e.options()
	o.DecodingWorkMem = "64kB"
	_, reg := e.start(o)
	ctx := context.Background()
	ins := func(tx pgx.Tx, lo, hi int) {
		t.Helper()
		execTx(t, tx, "INSERT INTO s SELECT g, repeat(md5(g::text), 6) FROM generate_series($1::int, $2::int) g", lo, hi)
	}
	// Rolled back entirely.
	tx, err := e.admin.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ins(tx, 100001, 103000)
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	// Committed, with a rolled-back savepoint (and a nested one inside it).
	tx, err = e.admin.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ins(tx, 1, 2000)
	execTx(t, tx, "SAVEPOINT a")
	ins(tx, 2001, 3000)
	execTx(t, tx, "SAVEPOINT b")
	ins(tx, 3001, 4000)
	execTx(t, tx, "ROLLBACK TO SAVEPOINT a")
	ins(tx, 4001, 5000)
	execTx(t, tx, "SAVEPOINT c")
	ins(tx, 5001, 5500)
	execTx(t, tx, "RELEASE SAVEPOINT c")
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	e.waitFlushed(60 * time.Second)
	seen := map[int64]int{}
	for _, r := range e.committed(e.topic("s")) {
		seen[idOf(t, string(r.Key))]++
	}
	for id, n := range seen {
		if n != 1 || id > 5500 || (id > 2000 && id <= 4000) {
			t.Fatalf("id %d seen %d times", id, n)
		}
	}
	if len(seen) != 2000+1000+500 {
		t.Fatalf("%d rows captured, want 3500", len(seen))
	}
	if n := counterValue(t, reg, "orderflow_capture_streamed_transactions_total", nil); n != 1 {
		t.Fatalf("streamed_transactions_total = %v, want 1 (the committed one)", n)
	}
	if n := counterValue(t, reg, "orderflow_capture_stream_chunks_total", nil); n < 2 {
		t.Fatalf("stream_chunks_total = %v: PostgreSQL did not stream", n)
	}
}

// checkTopicRetention: the table topics capture created keep every event
// (retention.ms=-1 set on the topic itself, not inherited from the broker):
// the transformer's state and replay read them from the start.
func checkTopicRetention(t *testing.T, brokers []string, topics ...string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rcs, err := kadm.NewClient(cl).DescribeTopicConfigs(context.Background(), topics...)
	if err != nil {
		t.Fatalf("describe topic configs: %v", err)
	}
	for _, topic := range topics {
		rc, err := rcs.On(topic, nil)
		if err != nil {
			t.Fatalf("%s: %v", topic, err)
		}
		found := false
		for _, c := range rc.Configs {
			if c.Key != "retention.ms" {
				continue
			}
			found = true
			if c.Value == nil || *c.Value != "-1" || c.Source != kmsg.ConfigSourceDynamicTopicConfig {
				t.Errorf("%s: retention.ms = %v (source %v), want -1 set on the topic", topic, c.MaybeValue(), c.Source)
			}
		}
		if !found {
			t.Errorf("%s: no retention.ms in its configuration", topic)
		}
	}
}
