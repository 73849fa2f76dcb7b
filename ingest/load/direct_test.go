package load

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/ingest/pgschema"
	"github.com/orderflow/orderflow/internal/testenv"
)

func migratedConn(t testing.TB) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if _, err := pgschema.Migrate(ctx, conn); err != nil {
		t.Fatal(err)
	}
	return conn
}

// TestDirectSameSeedSameData: the same seed written to two fresh databases
// gives identical tables; another seed gives different ones.
func TestDirectSameSeedSameData(t *testing.T) {
	ctx := context.Background()
	prm := Params{Seed: 7, Customers: 500, Orders: 3000, Products: 200, Campaigns: 8}
	var sums [3][]TableSum
	for i, seed := range []uint64{7, 7, 8} {
		conn := migratedConn(t)
		p := prm
		p.Seed = seed
		s, err := RunDirect(ctx, conn, p, Options{BatchSize: 500 + 300*i}, false)
		if err != nil {
			t.Fatal(err)
		}
		if s.Orders != prm.Orders || s.ByKind["customer"] != prm.Customers {
			t.Fatalf("run %d: %d orders, %d customers", i, s.Orders, s.ByKind["customer"])
		}
		if sums[i], err = Checksums(ctx, conn); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			checkRules(t, conn)
		}
	}
	for i := range sums[0] {
		if sums[0][i] != sums[1][i] {
			t.Errorf("same seed, different %s: %+v vs %+v", sums[0][i].Table, sums[0][i], sums[1][i])
		}
	}
	if sums[0][3] == sums[2][3] {
		t.Errorf("seeds 7 and 8 gave identical orders: %+v", sums[0][3])
	}
}

// checkRules verifies the loaded data obeys the command API's rules and
// has the promised shape.
func checkRules(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	ctx := context.Background()
	zero := map[string]string{
		"totals add up to items": `SELECT count(*) FROM orders o JOIN (SELECT order_id, sum(unit_price*quantity) s, sum(discount) d FROM order_items GROUP BY order_id) i
			ON i.order_id = o.id WHERE o.subtotal <> i.s OR o.discount <> i.d`,
		"orders without items":      `SELECT count(*) FROM orders o WHERE NOT EXISTS (SELECT 1 FROM order_items i WHERE i.order_id = o.id)`,
		"prices from the catalogue": `SELECT count(*) FROM order_items i JOIN products p ON p.id = i.product_id WHERE i.unit_price <> p.price`,
		"campaign outside window":   `SELECT count(*) FROM orders o JOIN campaigns c ON c.id = o.campaign_id WHERE NOT (o.placed_at >= c.starts_at AND o.placed_at < c.ends_at)`,
		"discount not the campaign's": `SELECT count(*) FROM order_items i JOIN orders o ON o.id = i.order_id JOIN campaigns c ON c.id = o.campaign_id
			WHERE i.discount <> round(i.unit_price * i.quantity * c.discount_percent / 100, 2)`,
		"order before signup": `SELECT count(*) FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.placed_at < c.created_at`,
	}
	for name, q := range zero {
		var n int
		if err := conn.QueryRow(ctx, q).Scan(&n); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if n != 0 {
			t.Errorf("%s: %d rows", name, n)
		}
	}
	positive := map[string]string{
		"delivered":         `SELECT count(*) FROM orders WHERE status = 'delivered'`,
		"cancelled":         `SELECT count(*) FROM orders WHERE status = 'cancelled'`,
		"refunded":          `SELECT count(*) FROM orders WHERE status = 'refunded'`,
		"in flight":         `SELECT count(*) FROM orders WHERE status IN ('placed', 'paid', 'shipped')`,
		"campaign orders":   `SELECT count(*) FROM orders WHERE campaign_id IS NOT NULL`,
		"changed customers": `SELECT count(*) FROM customers WHERE updated_at > created_at`,
		"repeat buyers":     `SELECT count(*) FROM (SELECT customer_id FROM orders GROUP BY 1 HAVING count(*) >= 5) x`,
		"platinum":          `SELECT count(*) FROM customers WHERE segment = 'platinum'`,
	}
	for name, q := range positive {
		var n int
		if err := conn.QueryRow(ctx, q).Scan(&n); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if n == 0 {
			t.Errorf("%s: none", name)
		}
	}
	// Zipf: the most popular product sells far more than the median one.
	var top, median float64
	if err := conn.QueryRow(ctx, `SELECT max(n), percentile_cont(0.5) WITHIN GROUP (ORDER BY n) FROM (SELECT count(*) n FROM order_items GROUP BY product_id) x`).Scan(&top, &median); err != nil {
		t.Fatal(err)
	}
	if top < 10*median {
		t.Errorf("product popularity not skewed: top %v, median %v", top, median)
	}
	// Region skew: north_america is the largest region.
	var region string
	if err := conn.QueryRow(ctx, `SELECT region FROM customers GROUP BY 1 ORDER BY count(*) DESC LIMIT 1`).Scan(&region); err != nil || region != "north_america" {
		t.Errorf("largest region %q (%v)", region, err)
	}
}

// TestDirectCommitOrderMatchesTime: within a batch transaction, a customer
// change and that customer's orders reach the WAL in simulated-time order,
// so "customer attributes as of the order" agree by time and by LSN. A row
// trigger records the order in which rows are written.
func TestDirectCommitOrderMatchesTime(t *testing.T) {
	conn := migratedConn(t)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, `
		CREATE TABLE write_log (seq bigserial PRIMARY KEY, kind text, cust bigint, at timestamptz);
		CREATE FUNCTION log_write() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF TG_TABLE_NAME = 'orders' AND TG_OP = 'INSERT' THEN
				INSERT INTO write_log (kind, cust, at) VALUES ('order', NEW.customer_id, NEW.placed_at);
			ELSIF TG_TABLE_NAME = 'customers' AND TG_OP = 'UPDATE' THEN
				INSERT INTO write_log (kind, cust, at) VALUES ('customer_update', NEW.id, NEW.updated_at);
			END IF;
			RETURN NULL;
		END $$;
		CREATE TRIGGER log_orders AFTER INSERT ON orders FOR EACH ROW EXECUTE FUNCTION log_write();
		CREATE TRIGGER log_customers AFTER UPDATE ON customers FOR EACH ROW EXECUTE FUNCTION log_write();`); err != nil {
		t.Fatal(err)
	}
	if _, err := RunDirect(ctx, conn, Params{Seed: 11, Customers: 200, Orders: 3000, Products: 50}, Options{BatchSize: 5000}, false); err != nil {
		t.Fatal(err)
	}
	var updates, bad int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM write_log WHERE kind = 'customer_update'`).Scan(&updates); err != nil || updates < 20 {
		t.Fatalf("%d customer updates (%v): too few to test", updates, err)
	}
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM write_log u JOIN write_log o ON o.cust = u.cust AND o.kind = 'order'
		WHERE u.kind = 'customer_update' AND ((o.at < u.at AND o.seq > u.seq) OR (o.at > u.at AND o.seq < u.seq))`).Scan(&bad); err != nil {
		t.Fatal(err)
	}
	if bad != 0 {
		t.Fatalf("%d (order, customer change) pairs written out of simulated-time order", bad)
	}
}

func TestDirectSummaryCountsItems(t *testing.T) {
	conn := migratedConn(t)
	ctx := context.Background()
	sum, err := RunDirect(ctx, conn, Params{Seed: 3, Customers: 30, Orders: 200, Products: 20}, Options{BatchSize: 150}, false)
	if err != nil {
		t.Fatal(err)
	}
	var items int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM order_items`).Scan(&items); err != nil {
		t.Fatal(err)
	}
	if sum.Items != items || items <= sum.Orders {
		t.Fatalf("summary says %d items, table has %d (orders %d)", sum.Items, items, sum.Orders)
	}
}
