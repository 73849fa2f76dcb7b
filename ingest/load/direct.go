package load

import (
	"context"
	"fmt"
	"math/big"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/orderflow/orderflow/ingest/domain"
)

// Direct writes a workload straight to PostgreSQL in batches: each batch is
// one transaction (COPY for new rows, set-based UPDATEs for status changes
// and customer changes), under the rules the command API enforces
// (ingest/domain): validated attributes, prices from the catalogue, the
// campaign discount only inside its window, totals computed here, status
// changes only along the status machine (checked by the UPDATE's WHERE
// clause; a mismatch aborts the run). Timestamps are the simulated clock's,
// so a seed gives identical table contents on a fresh database.
type Direct struct {
	conn     *pgx.Conn
	cat      *Catalogue
	prodIDs  []int64
	campIDs  []int64
	custIDs  []int64
	orderIDs []int64
	Counts   [numKinds]int
	Items    int
}

// NewDirect writes through conn (one connection keeps IDs deterministic).
func NewDirect(conn *pgx.Conn) *Direct { return &Direct{conn: conn} }

// Truncate empties the command-side tables (and the API's idempotency
// records, which would point at deleted rows) and restarts their identities.
func Truncate(ctx context.Context, conn *pgx.Conn) error {
	_, err := conn.Exec(ctx, `TRUNCATE order_items, orders, campaigns, products, customers, orderflow_internal.idempotency_keys RESTART IDENTITY CASCADE`)
	if err != nil {
		return fmt.Errorf("truncate command tables: %w", err)
	}
	return nil
}

func money(m domain.Money) pgtype.Numeric {
	return pgtype.Numeric{Int: big.NewInt(int64(m)), Exp: -2, Valid: true}
}

func reserveIDs(ctx context.Context, tx pgx.Tx, table string, n int) ([]int64, error) {
	if n == 0 {
		return nil, nil
	}
	rows, err := tx.Query(ctx, `SELECT nextval(pg_get_serial_sequence($1, 'id')) FROM generate_series(1, $2)`, table, n)
	if err != nil {
		return nil, fmt.Errorf("reserve %s ids: %w", table, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("reserve %s ids: %w", table, err)
	}
	return ids, nil
}

// Setup creates the catalogue (products and campaigns) in one transaction.
func (d *Direct) Setup(ctx context.Context, cat *Catalogue) error {
	d.cat = cat
	return pgx.BeginFunc(ctx, d.conn, func(tx pgx.Tx) error {
		var err error
		if d.prodIDs, err = reserveIDs(ctx, tx, "products", len(cat.Products)); err != nil {
			return err
		}
		rows := make([][]any, len(cat.Products))
		for i, p := range cat.Products {
			if errs := domain.ValidateProduct(domain.Product{SKU: p.SKU, Name: p.Name, Category: p.Category, Price: p.Price, Currency: p.Currency}); len(errs) > 0 {
				return fmt.Errorf("generated product %d: %w", i, errs)
			}
			rows[i] = []any{d.prodIDs[i], p.SKU, p.Name, p.Category, money(p.Price), p.Currency, cat.CreatedAt, cat.CreatedAt}
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"products"}, []string{"id", "sku", "name", "category", "price", "currency", "created_at", "updated_at"}, pgx.CopyFromRows(rows)); err != nil {
			return fmt.Errorf("copy products: %w", err)
		}
		if d.campIDs, err = reserveIDs(ctx, tx, "campaigns", len(cat.Campaigns)); err != nil {
			return err
		}
		rows = make([][]any, len(cat.Campaigns))
		for i, c := range cat.Campaigns {
			if errs := domain.ValidateCampaign(domain.Campaign{Code: c.Code, Name: c.Name, StartsAt: c.StartsAt, EndsAt: c.EndsAt, DiscountPercent: c.Percent}); len(errs) > 0 {
				return fmt.Errorf("generated campaign %d: %w", i, errs)
			}
			rows[i] = []any{d.campIDs[i], c.Code, c.Name, c.StartsAt, c.EndsAt, pgtype.Numeric{Int: big.NewInt(int64(c.Percent)), Exp: -2, Valid: true}, cat.CreatedAt, cat.CreatedAt}
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"campaigns"}, []string{"id", "code", "name", "starts_at", "ends_at", "discount_percent", "created_at", "updated_at"}, pgx.CopyFromRows(rows)); err != nil {
			return fmt.Errorf("copy campaigns: %w", err)
		}
		return nil
	})
}

// Write applies a batch of events (in simulated time order) in one
// transaction: it inserts the batch's customers, then alternates order
// inserts (COPY) and customer changes in phases, then runs status changes
// in status-machine order, which keeps every order's own events in order.
// The phases keep each customer's changes and orders in simulated-time
// order (phase k holds the orders placed after the customer's k-th change
// in the batch), so an order's customer attributes as of its placement are
// the same by time and by commit order (LSN), which the pipeline's as-of
// join relies on.
func (d *Direct) Write(ctx context.Context, evs []Event) error {
	custBase, orderBase := len(d.custIDs), len(d.orderIDs)
	var nItems int
	err := pgx.BeginFunc(ctx, d.conn, func(tx pgx.Tx) error {
		d.custIDs, d.orderIDs = d.custIDs[:custBase], d.orderIDs[:orderBase]
		nCust := 0
		changes := map[int]int{} // customer -> changes so far in this batch
		var phases [][]Event     // phases[k]: orders placed after their customer's k-th change
		var rounds [][]Event     // rounds[k]: every customer's (k+1)-th change
		grow := func(x [][]Event, k int) [][]Event {
			for len(x) <= k {
				x = append(x, nil)
			}
			return x
		}
		for _, ev := range evs {
			switch ev.Kind {
			case KCustomer:
				nCust++
			case KCustomerUpdate:
				k := changes[ev.Customer]
				changes[ev.Customer] = k + 1
				rounds = grow(rounds, k)
				rounds[k] = append(rounds[k], ev)
			case KOrder:
				k := changes[ev.Customer]
				phases = grow(phases, k)
				phases[k] = append(phases[k], ev)
			}
		}
		if err := d.writeCustomers(ctx, tx, evs, nCust); err != nil {
			return err
		}
		orders, items, err := d.buildOrders(ctx, tx, evs)
		if err != nil {
			return err
		}
		nItems = 0
		for _, rows := range items {
			nItems += len(rows)
		}
		for k := 0; k < max(len(phases), len(rounds)); k++ {
			if k < len(phases) && len(phases[k]) > 0 {
				if err := d.copyOrders(ctx, tx, phases[k], orders, items); err != nil {
					return err
				}
			}
			if k < len(rounds) {
				if err := d.writeCustomerUpdates(ctx, tx, rounds[k]); err != nil {
					return err
				}
			}
		}
		return d.writeTransitions(ctx, tx, evs)
	})
	if err != nil {
		d.custIDs, d.orderIDs = d.custIDs[:custBase], d.orderIDs[:orderBase]
		return err
	}
	for _, ev := range evs {
		d.Counts[ev.Kind]++
	}
	d.Items += nItems
	return nil
}

func opt(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func (d *Direct) writeCustomers(ctx context.Context, tx pgx.Tx, evs []Event, n int) error {
	ids, err := reserveIDs(ctx, tx, "customers", n)
	if err != nil {
		return err
	}
	rows := make([][]any, 0, n)
	for _, ev := range evs {
		if ev.Kind != KCustomer {
			continue
		}
		if ev.Customer != len(d.custIDs) {
			return fmt.Errorf("customer %d created out of order", ev.Customer)
		}
		c := ev.New
		f := domain.CustomerFields{Name: &c.Name, Email: &c.Email, Phone: opt(c.Phone), Segment: &c.Segment, Region: &c.Region, Country: &c.Country, City: &c.City}
		if errs := domain.ValidateCustomer(f, true); len(errs) > 0 {
			return fmt.Errorf("generated customer %d: %w", ev.Customer, errs)
		}
		id := ids[len(rows)]
		d.custIDs = append(d.custIDs, id)
		rows = append(rows, []any{id, c.Name, domain.NormalizeEmail(c.Email), opt(c.Phone), c.Segment, c.Region, c.Country, c.City, ev.At, ev.At})
	}
	if len(rows) == 0 {
		return nil
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"customers"}, []string{"id", "name", "email", "phone", "segment", "region", "country", "city", "created_at", "updated_at"}, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("copy customers: %w", err)
	}
	return nil
}

func (d *Direct) writeCustomerUpdates(ctx context.Context, tx pgx.Tx, evs []Event) error {
	var round []Event
	inRound := map[int]bool{}
	flush := func() error {
		if len(round) == 0 {
			return nil
		}
		ids := make([]int64, len(round))
		seg, reg, ctry, city := make([]*string, len(round)), make([]*string, len(round)), make([]*string, len(round)), make([]*string, len(round))
		at := make([]time.Time, len(round))
		for i, ev := range round {
			p := ev.Patch
			if errs := domain.ValidateCustomer(domain.CustomerFields{Segment: p.Segment, Region: p.Region, Country: p.Country, City: p.City}, false); len(errs) > 0 {
				return fmt.Errorf("generated change of customer %d: %w", ev.Customer, errs)
			}
			ids[i], seg[i], reg[i], ctry[i], city[i], at[i] = d.custIDs[ev.Customer], p.Segment, p.Region, p.Country, p.City, ev.At
		}
		tag, err := tx.Exec(ctx, `UPDATE customers c SET segment = coalesce(v.segment, c.segment), region = coalesce(v.region, c.region),
				country = coalesce(v.country, c.country), city = coalesce(v.city, c.city), updated_at = greatest(v.at, c.updated_at)
			FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[]) AS v(id, segment, region, country, city, at)
			WHERE c.id = v.id`, ids, seg, reg, ctry, city, at)
		if err != nil {
			return fmt.Errorf("update customers: %w", err)
		}
		if int(tag.RowsAffected()) != len(round) {
			return fmt.Errorf("update customers: %d rows changed, want %d", tag.RowsAffected(), len(round))
		}
		round, inRound = round[:0], map[int]bool{}
		return nil
	}
	for _, ev := range evs {
		if ev.Kind != KCustomerUpdate {
			continue
		}
		if inRound[ev.Customer] { // the same customer twice: keep their order
			if err := flush(); err != nil {
				return err
			}
		}
		inRound[ev.Customer] = true
		round = append(round, ev)
	}
	return flush()
}

// buildOrders prices the batch's orders and assigns their ids (in
// simulated-time order). It returns each order's row and its item rows,
// keyed by order index.
func (d *Direct) buildOrders(ctx context.Context, tx pgx.Tx, evs []Event) (map[int][]any, map[int][][]any, error) {
	nOrders, nItems := 0, 0
	for _, ev := range evs {
		if ev.Kind == KOrder {
			nOrders++
			nItems += len(ev.Items)
		}
	}
	if nOrders == 0 {
		return nil, nil, nil
	}
	oids, err := reserveIDs(ctx, tx, "orders", nOrders)
	if err != nil {
		return nil, nil, err
	}
	iids, err := reserveIDs(ctx, tx, "order_items", nItems)
	if err != nil {
		return nil, nil, err
	}
	orders := make(map[int][]any, nOrders)
	items := make(map[int][][]any, nOrders)
	usedItems := 0
	for _, ev := range evs {
		if ev.Kind != KOrder {
			continue
		}
		if ev.Order != len(d.orderIDs) {
			return nil, nil, fmt.Errorf("order %d placed out of order", ev.Order)
		}
		var campaign *int64
		var pct domain.Percent
		if ev.Campaign >= 0 {
			c := d.cat.Campaigns[ev.Campaign]
			if !domain.Active(c.StartsAt, c.EndsAt, ev.At) {
				return nil, nil, fmt.Errorf("order %d: campaign %s is not active at %s", ev.Order, c.Code, ev.At)
			}
			campaign, pct = &d.campIDs[ev.Campaign], c.Percent
		}
		if len(ev.Items) == 0 || len(ev.Items) > domain.MaxItems {
			return nil, nil, fmt.Errorf("order %d: %d items", ev.Order, len(ev.Items))
		}
		lines := make([]domain.Line, len(ev.Items))
		var errs domain.Errors
		for i, it := range ev.Items {
			domain.ValidateQuantity(&errs, fmt.Sprintf("/items/%d/quantity", i), int64(it.Quantity))
			lines[i] = domain.Line{ProductID: d.prodIDs[it.Product], Quantity: int64(it.Quantity), UnitPrice: d.cat.Products[it.Product].Price}
		}
		if len(errs) > 0 {
			return nil, nil, fmt.Errorf("order %d: %w", ev.Order, errs)
		}
		totals, err := domain.Price(lines, pct)
		if err != nil {
			return nil, nil, fmt.Errorf("order %d: %w", ev.Order, err)
		}
		id := oids[len(orders)]
		d.orderIDs = append(d.orderIDs, id)
		orders[ev.Order] = []any{id, d.custIDs[ev.Customer], campaign, domain.StatusPlaced, "USD",
			money(totals.Subtotal), money(totals.Discount), money(totals.Total), ev.At, ev.At, ev.At}
		rows := make([][]any, len(lines))
		for i, l := range lines {
			rows[i] = []any{iids[usedItems], id, int32(i + 1), l.ProductID, int32(l.Quantity), money(l.UnitPrice), money(l.Discount), ev.At, ev.At}
			usedItems++
		}
		items[ev.Order] = rows
	}
	return orders, items, nil
}

// copyOrders inserts the given orders and their items.
func (d *Direct) copyOrders(ctx context.Context, tx pgx.Tx, evs []Event, orders map[int][]any, items map[int][][]any) error {
	orows := make([][]any, 0, len(evs))
	var irows [][]any
	for _, ev := range evs {
		orows = append(orows, orders[ev.Order])
		irows = append(irows, items[ev.Order]...)
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"orders"}, []string{"id", "customer_id", "campaign_id", "status", "currency", "subtotal", "discount", "total", "placed_at", "created_at", "updated_at"}, pgx.CopyFromRows(orows)); err != nil {
		return fmt.Errorf("copy orders: %w", err)
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"order_items"}, []string{"id", "order_id", "line_no", "product_id", "quantity", "unit_price", "discount", "created_at", "updated_at"}, pgx.CopyFromRows(irows)); err != nil {
		return fmt.Errorf("copy order items: %w", err)
	}
	return nil
}

func (d *Direct) writeTransitions(ctx context.Context, tx pgx.Tx, evs []Event) error {
	for _, a := range domain.Actions {
		var ids []int64
		var ats []time.Time
		for _, ev := range evs {
			if act, ok := ev.Kind.Action(); ok && act.Name == a.Name {
				ids = append(ids, d.orderIDs[ev.Order])
				ats = append(ats, ev.At)
			}
		}
		if len(ids) == 0 {
			continue
		}
		tag, err := tx.Exec(ctx, `UPDATE orders o SET status = $3, `+a.Column+` = greatest(v.at, o.updated_at), updated_at = greatest(v.at, o.updated_at)
			FROM unnest($1::bigint[], $2::timestamptz[]) AS v(id, at)
			WHERE o.id = v.id AND o.status = ANY($4)`, ids, ats, a.To, a.From)
		if err != nil {
			return fmt.Errorf("%s orders: %w", a.Name, err)
		}
		if int(tag.RowsAffected()) != len(ids) {
			return fmt.Errorf("%s orders: %d of %d orders were in status %v (status machine violated)", a.Name, tag.RowsAffected(), len(ids), a.From)
		}
	}
	return nil
}
