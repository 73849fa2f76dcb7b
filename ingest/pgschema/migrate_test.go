package pgschema

import (
	"context"
	"io/fs"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/internal/testenv"
)

func TestEmbeddedMigrationsAreNumberedWithoutGaps(t *testing.T) {
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range ms {
		if m.Version != i+1 {
			t.Fatalf("migration %d has version %d", i, m.Version)
		}
		if strings.TrimSpace(m.SQL) == "" {
			t.Errorf("migration %04d_%s is empty", m.Version, m.Name)
		}
	}
	if Latest() != len(ms) {
		t.Fatalf("Latest() = %d, want %d", Latest(), len(ms))
	}
}

func TestLoadRejectsBadSequences(t *testing.T) {
	sql := &fstest.MapFile{Data: []byte("SELECT 1;")}
	tests := []struct {
		name    string
		files   []string
		wantErr string // "" = ok
	}{
		{"ok", []string{"0001_a.sql", "0002_b.sql", "0003_c.sql"}, ""},
		{"gap", []string{"0001_a.sql", "0003_c.sql"}, "0002 is missing"},
		{"not starting at 1", []string{"0002_b.sql"}, "0001 is missing"},
		{"duplicate", []string{"0001_a.sql", "0002_b.sql", "0002_c.sql"}, "0002 is used twice"},
		{"bad name", []string{"0001_a.sql", "2_b.sql"}, "name must be"},
		{"upper case", []string{"0001_A.sql"}, "name must be"},
		{"empty", nil, "no migrations"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := fstest.MapFS{"m": &fstest.MapFile{Mode: fs.ModeDir | 0o755}}
			for _, f := range tt.files {
				fsys["m/"+f] = sql
			}
			_, err := load(fsys, "m")
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestMigrateIsIdempotentAndConcurrencySafe(t *testing.T) {
	url := testenv.Postgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()

	if v, err := Version(ctx, pool); err != nil || v != 0 {
		t.Fatalf("Version on an empty database = %d, %v; want 0, nil", v, err)
	}
	if err := CheckCurrent(ctx, pool); err == nil {
		t.Fatal("CheckCurrent on an empty database: want an error")
	}

	// Eight migrators at once: exactly one applies, the others find nothing to do.
	var wg sync.WaitGroup
	results := make([]Result, 8)
	errs := make([]error, 8)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				errs[i] = err
				return
			}
			defer conn.Close(ctx)
			results[i], errs[i] = Migrate(ctx, conn)
		}()
	}
	wg.Wait()
	applied := 0
	for i := range results {
		if errs[i] != nil {
			t.Fatalf("migrator %d: %v", i, errs[i])
		}
		if len(results[i].Applied) > 0 {
			applied++
			if results[i].From != 0 || results[i].To != Latest() {
				t.Errorf("migrator %d went %d -> %d", i, results[i].From, results[i].To)
			}
		}
	}
	if applied != 1 {
		t.Fatalf("%d migrators applied migrations, want exactly 1", applied)
	}
	res, err := Migrate(ctx, pool)
	if err != nil || len(res.Applied) != 0 || res.To != Latest() {
		t.Fatalf("second Migrate = %+v, %v; want a no-op at %d", res, err, Latest())
	}
	if err := CheckCurrent(ctx, pool); err != nil {
		t.Fatal(err)
	}
	for _, tbl := range []string{"public.customers", "public.products", "public.campaigns", "public.orders", "public.order_items", Schema + ".idempotency_keys", Schema + ".schema_migrations"} {
		var ok bool
		if err := pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", tbl).Scan(&ok); err != nil || !ok {
			t.Errorf("table %s missing (%v)", tbl, err)
		}
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM "+Schema+".schema_migrations").Scan(&n); err != nil || n != Latest() {
		t.Fatalf("schema_migrations has %d rows (%v), want %d", n, err, Latest())
	}

	// A database from the future is refused.
	if _, err := pool.Exec(ctx, "INSERT INTO "+Schema+".schema_migrations (version, name) VALUES (9999, 'future')"); err != nil {
		t.Fatal(err)
	}
	if _, err := Migrate(ctx, pool); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Migrate on a newer database: %v, want a 'newer' error", err)
	}
}

// The CHECK constraints reject what the API would reject, as a last line of defence.
func TestConstraints(t *testing.T) {
	url := testenv.Postgres(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := Migrate(ctx, conn); err != nil {
		t.Fatal(err)
	}
	const now = "'2025-01-01T00:00:00Z'"
	setup := `INSERT INTO customers (name, email, segment, region, country, city, created_at, updated_at)
		VALUES ('A', 'a@example.com', 'gold', 'europe', 'DE', 'Berlin', ` + now + `, ` + now + `);
		INSERT INTO products (sku, name, category, price, created_at, updated_at) VALUES ('P1', 'Pen', 'office', 2.50, ` + now + `, ` + now + `);
		INSERT INTO orders (customer_id, status, currency, subtotal, discount, total, placed_at, created_at, updated_at)
		VALUES (1, 'placed', 'USD', 5.00, 0, 5.00, ` + now + `, ` + now + `, ` + now + `);`
	if _, err := conn.Exec(ctx, setup); err != nil {
		t.Fatal(err)
	}
	bad := map[string]string{
		"bad segment":           `UPDATE customers SET segment = 'diamond'`,
		"upper-case email":      `UPDATE customers SET email = 'A@example.com'`,
		"zero price":            `UPDATE products SET price = 0`,
		"unknown status":        `UPDATE orders SET status = 'lost'`,
		"total not adding up":   `UPDATE orders SET total = 4.00`,
		"paid without paid_at":  `UPDATE orders SET status = 'paid'`,
		"discount w/o campaign": `UPDATE orders SET discount = 1.00, total = 4.00`,
		"zero quantity": `INSERT INTO order_items (order_id, line_no, product_id, quantity, unit_price, discount, created_at, updated_at)
			VALUES (1, 1, 1, 0, 2.50, 0, ` + now + `, ` + now + `)`,
		"unknown product": `INSERT INTO order_items (order_id, line_no, product_id, quantity, unit_price, discount, created_at, updated_at)
			VALUES (1, 1, 42, 1, 2.50, 0, ` + now + `, ` + now + `)`,
		"campaign window": `INSERT INTO campaigns (code, name, starts_at, ends_at, discount_percent, created_at, updated_at)
			VALUES ('X1', 'x', ` + now + `, ` + now + `, 10, ` + now + `, ` + now + `)`,
	}
	for name, stmt := range bad {
		t.Run(name, func(t *testing.T) {
			tx, err := conn.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = tx.Rollback(ctx) }()
			if _, err := tx.Exec(ctx, stmt); err == nil {
				t.Fatalf("%s: accepted", stmt)
			}
		})
	}
}
