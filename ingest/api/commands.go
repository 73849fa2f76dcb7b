package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/orderflow/orderflow/ingest/domain"
)

var orderActions = domain.Actions

// ---- customers ----

// Customer is the API representation of a customer.
type Customer struct {
	ID        int64     `json:"id"`
	Name      string    `json:"name"`
	Email     string    `json:"email"`
	Phone     *string   `json:"phone"`
	Segment   string    `json:"segment"`
	Region    string    `json:"region"`
	Country   string    `json:"country"`
	City      string    `json:"city"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

type customerBody struct {
	Name    *string `json:"name"`
	Email   *string `json:"email"`
	Phone   *string `json:"phone"`
	Segment *string `json:"segment"`
	Region  *string `json:"region"`
	Country *string `json:"country"`
	City    *string `json:"city"`
}

func (b customerBody) fields() domain.CustomerFields {
	return domain.CustomerFields{Name: b.Name, Email: b.Email, Phone: b.Phone, Segment: b.Segment, Region: b.Region, Country: b.Country, City: b.City}
}

const customerCols = `id, name, email, phone, segment, region, country, city, created_at, updated_at`

func scanCustomer(row pgx.Row) (Customer, error) {
	var c Customer
	err := row.Scan(&c.ID, &c.Name, &c.Email, &c.Phone, &c.Segment, &c.Region, &c.Country, &c.City, &c.CreatedAt, &c.UpdatedAt)
	c.CreatedAt, c.UpdatedAt = c.CreatedAt.UTC(), c.UpdatedAt.UTC()
	return c, err
}

func (s *Server) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

func (s *Server) createCustomer(ctx context.Context, tx pgx.Tx, _ *http.Request, body []byte) (result, error) {
	var b customerBody
	if p := decodeStrict(body, &b, ""); p != nil {
		return result{}, p
	}
	if errs := domain.ValidateCustomer(b.fields(), true); len(errs) > 0 {
		return result{}, validation(errs)
	}
	now := s.clock()
	email := domain.NormalizeEmail(*b.Email)
	c, err := scanCustomer(tx.QueryRow(ctx, `INSERT INTO customers (name, email, phone, segment, region, country, city, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING `+customerCols,
		strings.TrimSpace(*b.Name), email, b.Phone, *b.Segment, *b.Region, *b.Country, strings.TrimSpace(*b.City), now))
	if err != nil {
		return result{}, uniqueConflict(err, "customers_email_key", "/email", "a customer with this email already exists")
	}
	return result{http.StatusCreated, c}, nil
}

func (s *Server) updateCustomer(ctx context.Context, tx pgx.Tx, r *http.Request, body []byte) (result, error) {
	id, p := pathID(r, "customer")
	if p != nil {
		return result{}, p
	}
	var b customerBody
	if p := decodeStrict(body, &b, ""); p != nil {
		return result{}, p
	}
	f := b.fields()
	if f == (domain.CustomerFields{}) {
		return result{}, validation(domain.Errors{fieldErr("", domain.ReasonRequired, "send at least one of name, email, phone, segment, region, country, city")})
	}
	if errs := domain.ValidateCustomer(f, false); len(errs) > 0 {
		return result{}, validation(errs)
	}
	if f.Email != nil {
		e := domain.NormalizeEmail(*f.Email)
		f.Email = &e
	}
	trim := func(p *string) *string {
		if p == nil {
			return nil
		}
		t := strings.TrimSpace(*p)
		return &t
	}
	c, err := scanCustomer(tx.QueryRow(ctx, `UPDATE customers SET
			name = coalesce($2, name), email = coalesce($3, email), phone = coalesce($4, phone),
			segment = coalesce($5, segment), region = coalesce($6, region), country = coalesce($7, country),
			city = coalesce($8, city), updated_at = greatest($9, updated_at)
		WHERE id = $1 RETURNING `+customerCols,
		id, trim(f.Name), f.Email, f.Phone, f.Segment, f.Region, f.Country, trim(f.City), s.clock()))
	if errors.Is(err, pgx.ErrNoRows) {
		return result{}, problem(404, TypeNotFound, fmt.Sprintf("no customer with id %d", id))
	}
	if err != nil {
		return result{}, uniqueConflict(err, "customers_email_key", "/email", "another customer has this email")
	}
	return result{http.StatusOK, c}, nil
}

func (s *Server) getCustomer(w http.ResponseWriter, r *http.Request) {
	id, p := pathID(r, "customer")
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	c, err := scanCustomer(s.pool.QueryRow(r.Context(), `SELECT `+customerCols+` FROM customers WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		writeProblem(w, r, problem(404, TypeNotFound, fmt.Sprintf("no customer with id %d", id)))
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, 200, c)
}

// uniqueConflict maps a unique violation of constraint to a 409 on ptr.
func uniqueConflict(err error, constraint, ptr, detail string) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == constraint {
		return problem(409, TypeConflict, detail, fieldErr(ptr, domain.ReasonDuplicate, detail))
	}
	return err
}

// ---- products ----

// Product is the API representation of a product.
type Product struct {
	ID        int64        `json:"id"`
	SKU       string       `json:"sku"`
	Name      string       `json:"name"`
	Category  string       `json:"category"`
	Price     domain.Money `json:"price"`
	Currency  string       `json:"currency"`
	CreatedAt time.Time    `json:"created_at"`
	UpdatedAt time.Time    `json:"updated_at"`
}

type productBody struct {
	SKU      *string `json:"sku"`
	Name     *string `json:"name"`
	Category *string `json:"category"`
	Price    raw     `json:"price"`
	Currency *string `json:"currency"`
}

const productCols = `id, sku, name, category, (price * 100)::bigint, currency, created_at, updated_at`

func scanProduct(row pgx.Row) (Product, error) {
	var p Product
	err := row.Scan(&p.ID, &p.SKU, &p.Name, &p.Category, &p.Price, &p.Currency, &p.CreatedAt, &p.UpdatedAt)
	p.CreatedAt, p.UpdatedAt = p.CreatedAt.UTC(), p.UpdatedAt.UTC()
	return p, err
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func (s *Server) createProduct(ctx context.Context, tx pgx.Tx, _ *http.Request, body []byte) (result, error) {
	var b productBody
	if p := decodeStrict(body, &b, ""); p != nil {
		return result{}, p
	}
	var errs domain.Errors
	required(&errs, "/sku", b.SKU != nil)
	required(&errs, "/name", b.Name != nil)
	required(&errs, "/category", b.Category != nil)
	price := parseMoney(&errs, "/price", b.Price)
	if b.Currency == nil {
		usd := "USD"
		b.Currency = &usd
	}
	prod := domain.Product{SKU: deref(b.SKU), Name: strings.TrimSpace(deref(b.Name)), Category: strings.TrimSpace(deref(b.Category)), Price: price, Currency: *b.Currency}
	if len(errs) == 0 {
		errs = domain.ValidateProduct(prod)
	}
	if len(errs) > 0 {
		return result{}, validation(errs)
	}
	now := s.clock()
	p, err := scanProduct(tx.QueryRow(ctx, `INSERT INTO products (sku, name, category, price, currency, created_at, updated_at)
		VALUES ($1, $2, $3, $4::numeric / 100, $5, $6, $6) RETURNING `+productCols,
		prod.SKU, prod.Name, prod.Category, int64(prod.Price), prod.Currency, now))
	if err != nil {
		return result{}, uniqueConflict(err, "products_sku_key", "/sku", "a product with this sku already exists")
	}
	return result{http.StatusCreated, p}, nil
}

func (s *Server) getProduct(w http.ResponseWriter, r *http.Request) {
	id, p := pathID(r, "product")
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	prod, err := scanProduct(s.pool.QueryRow(r.Context(), `SELECT `+productCols+` FROM products WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		writeProblem(w, r, problem(404, TypeNotFound, fmt.Sprintf("no product with id %d", id)))
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, 200, prod)
}

// ---- campaigns ----

// Campaign is the API representation of a campaign.
type Campaign struct {
	ID              int64          `json:"id"`
	Code            string         `json:"code"`
	Name            string         `json:"name"`
	StartsAt        time.Time      `json:"starts_at"`
	EndsAt          time.Time      `json:"ends_at"`
	DiscountPercent domain.Percent `json:"discount_percent"`
	CreatedAt       time.Time      `json:"created_at"`
	UpdatedAt       time.Time      `json:"updated_at"`
}

type campaignBody struct {
	Code            *string `json:"code"`
	Name            *string `json:"name"`
	StartsAt        raw     `json:"starts_at"`
	EndsAt          raw     `json:"ends_at"`
	DiscountPercent raw     `json:"discount_percent"`
}

const campaignCols = `id, code, name, starts_at, ends_at, (discount_percent * 100)::bigint, created_at, updated_at`

func scanCampaign(row pgx.Row) (Campaign, error) {
	var c Campaign
	err := row.Scan(&c.ID, &c.Code, &c.Name, &c.StartsAt, &c.EndsAt, &c.DiscountPercent, &c.CreatedAt, &c.UpdatedAt)
	c.StartsAt, c.EndsAt, c.CreatedAt, c.UpdatedAt = c.StartsAt.UTC(), c.EndsAt.UTC(), c.CreatedAt.UTC(), c.UpdatedAt.UTC()
	return c, err
}

func (s *Server) createCampaign(ctx context.Context, tx pgx.Tx, _ *http.Request, body []byte) (result, error) {
	var b campaignBody
	if p := decodeStrict(body, &b, ""); p != nil {
		return result{}, p
	}
	var errs domain.Errors
	required(&errs, "/code", b.Code != nil)
	required(&errs, "/name", b.Name != nil)
	c := domain.Campaign{
		Code: deref(b.Code), Name: strings.TrimSpace(deref(b.Name)),
		StartsAt:        parseTime(&errs, "/starts_at", b.StartsAt),
		EndsAt:          parseTime(&errs, "/ends_at", b.EndsAt),
		DiscountPercent: parsePercent(&errs, "/discount_percent", b.DiscountPercent),
	}
	if len(errs) == 0 {
		errs = domain.ValidateCampaign(c)
	}
	if len(errs) > 0 {
		return result{}, validation(errs)
	}
	now := s.clock()
	out, err := scanCampaign(tx.QueryRow(ctx, `INSERT INTO campaigns (code, name, starts_at, ends_at, discount_percent, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5::numeric / 100, $6, $6) RETURNING `+campaignCols,
		c.Code, c.Name, c.StartsAt, c.EndsAt, int64(c.DiscountPercent), now))
	if err != nil {
		return result{}, uniqueConflict(err, "campaigns_code_key", "/code", "a campaign with this code already exists")
	}
	return result{http.StatusCreated, out}, nil
}

func (s *Server) getCampaign(w http.ResponseWriter, r *http.Request) {
	id, p := pathID(r, "campaign")
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	c, err := scanCampaign(s.pool.QueryRow(r.Context(), `SELECT `+campaignCols+` FROM campaigns WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		writeProblem(w, r, problem(404, TypeNotFound, fmt.Sprintf("no campaign with id %d", id)))
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, 200, c)
}

// ---- orders ----

// Order is the API representation of an order with its items.
type Order struct {
	ID          int64        `json:"id"`
	CustomerID  int64        `json:"customer_id"`
	CampaignID  *int64       `json:"campaign_id"`
	Status      string       `json:"status"`
	Currency    string       `json:"currency"`
	Subtotal    domain.Money `json:"subtotal"`
	Discount    domain.Money `json:"discount"`
	Total       domain.Money `json:"total"`
	PlacedAt    time.Time    `json:"placed_at"`
	PaidAt      *time.Time   `json:"paid_at"`
	ShippedAt   *time.Time   `json:"shipped_at"`
	DeliveredAt *time.Time   `json:"delivered_at"`
	CancelledAt *time.Time   `json:"cancelled_at"`
	RefundedAt  *time.Time   `json:"refunded_at"`
	CreatedAt   time.Time    `json:"created_at"`
	UpdatedAt   time.Time    `json:"updated_at"`
	Items       []OrderItem  `json:"items"`
}

// OrderItem is one line of an order.
type OrderItem struct {
	ID        int64        `json:"id"`
	LineNo    int          `json:"line_no"`
	ProductID int64        `json:"product_id"`
	Quantity  int64        `json:"quantity"`
	UnitPrice domain.Money `json:"unit_price"`
	Discount  domain.Money `json:"discount"`
	LineTotal domain.Money `json:"line_total"`
}

type orderBody struct {
	CustomerID   *int64  `json:"customer_id"`
	CampaignCode *string `json:"campaign_code"`
	Items        *[]raw  `json:"items"`
}

type itemBody struct {
	ProductID *int64 `json:"product_id"`
	Quantity  *int64 `json:"quantity"`
}

const orderCols = `id, customer_id, campaign_id, status, currency, (subtotal * 100)::bigint, (discount * 100)::bigint, (total * 100)::bigint,
	placed_at, paid_at, shipped_at, delivered_at, cancelled_at, refunded_at, created_at, updated_at`

func utcp(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// orderItemCols are the item columns joined to orderCols (i.*, possibly NULL).
const orderItemCols = `i.id, i.line_no, i.product_id, i.quantity, (i.unit_price * 100)::bigint, (i.discount * 100)::bigint`

// collectOrder reads rows of orderCols + orderItemCols (one row per item,
// items in line order) into one order; found is false when there is no row.
func collectOrder(rows pgx.Rows) (o Order, found bool, err error) {
	defer rows.Close()
	o.Items = []OrderItem{}
	for rows.Next() {
		var itemID, productID, qty, price, disc *int64
		var lineNo *int
		if err := rows.Scan(&o.ID, &o.CustomerID, &o.CampaignID, &o.Status, &o.Currency, &o.Subtotal, &o.Discount, &o.Total,
			&o.PlacedAt, &o.PaidAt, &o.ShippedAt, &o.DeliveredAt, &o.CancelledAt, &o.RefundedAt, &o.CreatedAt, &o.UpdatedAt,
			&itemID, &lineNo, &productID, &qty, &price, &disc); err != nil {
			return Order{}, false, err
		}
		found = true
		if itemID != nil {
			it := OrderItem{ID: *itemID, LineNo: *lineNo, ProductID: *productID, Quantity: *qty, UnitPrice: domain.Money(*price), Discount: domain.Money(*disc)}
			it.LineTotal = it.UnitPrice*domain.Money(it.Quantity) - it.Discount
			o.Items = append(o.Items, it)
		}
	}
	if err := rows.Err(); err != nil {
		return Order{}, false, err
	}
	o.PlacedAt, o.CreatedAt, o.UpdatedAt = o.PlacedAt.UTC(), o.CreatedAt.UTC(), o.UpdatedAt.UTC()
	o.PaidAt, o.ShippedAt, o.DeliveredAt, o.CancelledAt, o.RefundedAt = utcp(o.PaidAt), utcp(o.ShippedAt), utcp(o.DeliveredAt), utcp(o.CancelledAt), utcp(o.RefundedAt)
	return o, found, nil
}

func (s *Server) getOrder(w http.ResponseWriter, r *http.Request) {
	id, p := pathID(r, "order")
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	rows, err := s.pool.Query(r.Context(), `SELECT `+prefixed("o", orderCols)+`, `+orderItemCols+`
		FROM orders o LEFT JOIN order_items i ON i.order_id = o.id WHERE o.id = $1 ORDER BY i.line_no`, id)
	var o Order
	found := false
	if err == nil {
		o, found, err = collectOrder(rows)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !found {
		writeProblem(w, r, problem(404, TypeNotFound, fmt.Sprintf("no order with id %d", id)))
		return
	}
	writeJSON(w, 200, o)
}

// placeOrder prices the items from the catalogue, applies the campaign's
// discount when its window contains now, and inserts the order and its
// lines; all in the command's transaction.
func (s *Server) placeOrder(ctx context.Context, tx pgx.Tx, _ *http.Request, body []byte) (result, error) {
	var b orderBody
	if p := decodeStrict(body, &b, ""); p != nil {
		return result{}, p
	}
	var errs domain.Errors
	required(&errs, "/customer_id", b.CustomerID != nil)
	if b.CustomerID != nil && *b.CustomerID <= 0 {
		errs = append(errs, fieldErr("/customer_id", domain.ReasonRange, "must be a positive integer"))
	}
	if b.CampaignCode != nil && *b.CampaignCode == "" {
		errs = append(errs, fieldErr("/campaign_code", domain.ReasonLength, "must not be empty; omit it for no campaign"))
	}
	var items []itemBody
	switch {
	case b.Items == nil:
		errs = append(errs, fieldErr("/items", domain.ReasonRequired, "is required"))
	case len(*b.Items) == 0:
		errs = append(errs, fieldErr("/items", domain.ReasonLength, "must hold at least one item"))
	case len(*b.Items) > domain.MaxItems:
		errs = append(errs, fieldErr("/items", domain.ReasonLength, fmt.Sprintf("must hold at most %d items", domain.MaxItems)))
	default:
		for i, rawItem := range *b.Items {
			ptr := fmt.Sprintf("/items/%d", i)
			var it itemBody
			if p := decodeStrict(rawItem, &it, ptr); p != nil {
				if p.Status == 400 { // "null" or similar inside a valid document
					p = validation(domain.Errors{fieldErr(ptr, domain.ReasonType, "must be an object")})
				}
				return result{}, p
			}
			required(&errs, ptr+"/product_id", it.ProductID != nil)
			required(&errs, ptr+"/quantity", it.Quantity != nil)
			if it.ProductID != nil && *it.ProductID <= 0 {
				errs = append(errs, fieldErr(ptr+"/product_id", domain.ReasonRange, "must be a positive integer"))
			}
			if it.Quantity != nil {
				domain.ValidateQuantity(&errs, ptr+"/quantity", *it.Quantity)
			}
			items = append(items, it)
		}
	}
	if len(errs) > 0 {
		return result{}, validation(errs)
	}
	now := s.clock()

	// One round trip for every lookup the order needs.
	ids := make([]int64, len(items))
	for i, it := range items {
		ids[i] = *it.ProductID
	}
	batch := &pgx.Batch{}
	batch.Queue(`SELECT EXISTS (SELECT 1 FROM customers WHERE id = $1)`, *b.CustomerID)
	if b.CampaignCode != nil {
		batch.Queue(`SELECT id, starts_at, ends_at, (discount_percent * 100)::bigint FROM campaigns WHERE code = $1`, *b.CampaignCode)
	}
	batch.Queue(`SELECT id, (price * 100)::bigint, currency FROM products WHERE id = ANY($1)`, ids)
	br := tx.SendBatch(ctx, batch)
	type prod struct {
		price    domain.Money
		currency string
	}
	var refErrs domain.Errors
	var campaignID *int64
	var pct domain.Percent
	var inactive *Problem
	catalogue := map[int64]prod{}
	err := func() error {
		defer br.Close()
		var exists bool
		if err := br.QueryRow().Scan(&exists); err != nil {
			return fmt.Errorf("look up customer: %w", err)
		}
		if !exists {
			refErrs = append(refErrs, fieldErr("/customer_id", domain.ReasonNotFound, fmt.Sprintf("no customer with id %d", *b.CustomerID)))
		}
		if b.CampaignCode != nil {
			var id int64
			var start, end time.Time
			err := br.QueryRow().Scan(&id, &start, &end, &pct)
			switch {
			case errors.Is(err, pgx.ErrNoRows):
				refErrs = append(refErrs, fieldErr("/campaign_code", domain.ReasonNotFound, fmt.Sprintf("no campaign with code %q", *b.CampaignCode)))
			case err != nil:
				return fmt.Errorf("look up campaign: %w", err)
			case !domain.Active(start, end, now):
				inactive = problem(422, TypeCampaignNotActive,
					fmt.Sprintf("campaign %q runs from %s to %s; now is %s", *b.CampaignCode, start.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339), now.Format(time.RFC3339)),
					fieldErr("/campaign_code", domain.ReasonInactive, "campaign window does not contain the current time"))
			default:
				campaignID = &id
			}
		}
		rows, err := br.Query()
		if err != nil {
			return fmt.Errorf("look up products: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var id int64
			var p prod
			if err := rows.Scan(&id, &p.price, &p.currency); err != nil {
				return fmt.Errorf("look up products: %w", err)
			}
			catalogue[id] = p
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("look up products: %w", err)
		}
		return nil
	}()
	if err != nil {
		return result{}, err
	}
	lines := make([]domain.Line, len(items))
	currency := ""
	for i, it := range items {
		p, ok := catalogue[*it.ProductID]
		if !ok {
			refErrs = append(refErrs, fieldErr(fmt.Sprintf("/items/%d/product_id", i), domain.ReasonNotFound, fmt.Sprintf("no product with id %d", *it.ProductID)))
			continue
		}
		if currency == "" {
			currency = p.currency
		} else if p.currency != currency {
			errs = append(errs, fieldErr(fmt.Sprintf("/items/%d/product_id", i), domain.ReasonMismatch,
				fmt.Sprintf("product %d is priced in %s, the order's other items in %s; one currency per order", *it.ProductID, p.currency, currency)))
		}
		lines[i] = domain.Line{ProductID: *it.ProductID, Quantity: *it.Quantity, UnitPrice: p.price}
	}
	if len(refErrs) > 0 {
		return result{}, problem(422, TypeUnknownReference, refErrs.Error(), refErrs...)
	}
	if inactive != nil {
		return result{}, inactive
	}
	if len(errs) > 0 {
		return result{}, validation(errs)
	}
	totals, err := domain.Price(lines, pct)
	if err != nil {
		return result{}, validation(domain.Errors{fieldErr("/items", domain.ReasonRange, err.Error())})
	}

	o := Order{CustomerID: *b.CustomerID, CampaignID: campaignID, Status: domain.StatusPlaced, Currency: currency,
		Subtotal: totals.Subtotal, Discount: totals.Discount, Total: totals.Total, PlacedAt: now, CreatedAt: now, UpdatedAt: now}
	lineNo := make([]int32, len(lines))
	prods := make([]int64, len(lines))
	qty := make([]int64, len(lines))
	price := make([]int64, len(lines))
	disc := make([]int64, len(lines))
	for i, l := range lines {
		lineNo[i], prods[i], qty[i], price[i], disc[i] = int32(i+1), l.ProductID, l.Quantity, int64(l.UnitPrice), int64(l.Discount)
	}
	// The order and its lines in one statement.
	rows, err := tx.Query(ctx, `WITH o AS (
			INSERT INTO orders (customer_id, campaign_id, status, currency, subtotal, discount, total, placed_at, created_at, updated_at)
			VALUES ($1, $2, 'placed', $3, $4::numeric / 100, $5::numeric / 100, $6::numeric / 100, $7, $7, $7) RETURNING id)
		INSERT INTO order_items (order_id, line_no, product_id, quantity, unit_price, discount, created_at, updated_at)
		SELECT o.id, l, p, q, u::numeric / 100, d::numeric / 100, $7, $7
		FROM o, unnest($8::int[], $9::bigint[], $10::int[], $11::bigint[], $12::bigint[]) AS t(l, p, q, u, d)
		ORDER BY l RETURNING order_id, id, line_no`,
		o.CustomerID, o.CampaignID, o.Currency, int64(o.Subtotal), int64(o.Discount), int64(o.Total), now,
		lineNo, prods, qty, price, disc)
	if err != nil {
		return result{}, fmt.Errorf("insert order: %w", err)
	}
	itemIDs := map[int]int64{}
	for rows.Next() {
		var id int64
		var ln int
		if err := rows.Scan(&o.ID, &id, &ln); err != nil {
			rows.Close()
			return result{}, fmt.Errorf("insert order: %w", err)
		}
		itemIDs[ln] = id
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return result{}, fmt.Errorf("insert order: %w", err)
	}
	if len(itemIDs) != len(lines) {
		return result{}, fmt.Errorf("insert order: %d of %d lines inserted", len(itemIDs), len(lines))
	}
	for i, l := range lines {
		o.Items = append(o.Items, OrderItem{ID: itemIDs[i+1], LineNo: i + 1, ProductID: l.ProductID, Quantity: l.Quantity,
			UnitPrice: l.UnitPrice, Discount: l.Discount, LineTotal: l.UnitPrice*domain.Money(l.Quantity) - l.Discount})
	}
	return result{http.StatusCreated, o}, nil
}

// transition runs a status-changing command (pay, ship, deliver, cancel,
// refund). The body is empty or an empty JSON object.
func (s *Server) transition(a domain.Action) commandFunc {
	return func(ctx context.Context, tx pgx.Tx, r *http.Request, body []byte) (result, error) {
		id, p := pathID(r, "order")
		if p != nil {
			return result{}, p
		}
		if len(strings.TrimSpace(string(body))) > 0 {
			var empty struct{}
			if p := decodeStrict(body, &empty, ""); p != nil {
				return result{}, p
			}
		}
		now := s.clock()
		// The status change and the answer (order + items) in one statement.
		rows, err := tx.Query(ctx, `WITH o AS (
				UPDATE orders SET status = $2, `+a.Column+` = greatest($3, updated_at), updated_at = greatest($3, updated_at)
				WHERE id = $1 AND status = ANY($4) RETURNING *)
			SELECT `+prefixed("o", orderCols)+`, `+orderItemCols+`
			FROM o LEFT JOIN order_items i ON i.order_id = o.id ORDER BY i.line_no`, id, a.To, now, a.From)
		if err != nil {
			return result{}, fmt.Errorf("%s order: %w", a.Name, err)
		}
		o, found, err := collectOrder(rows)
		if err != nil {
			return result{}, fmt.Errorf("%s order: %w", a.Name, err)
		}
		if !found {
			var status string
			err := tx.QueryRow(ctx, `SELECT status FROM orders WHERE id = $1`, id).Scan(&status)
			if errors.Is(err, pgx.ErrNoRows) {
				return result{}, problem(404, TypeNotFound, fmt.Sprintf("no order with id %d", id))
			}
			if err != nil {
				return result{}, fmt.Errorf("read order status: %w", err)
			}
			p := problem(409, TypeIllegalTransition, fmt.Sprintf("cannot %s order %d: it is %s; %s needs an order that is %s",
				a.Name, id, status, a.Name, strings.Join(a.From, " or ")))
			p.CurrentStatus = status
			return result{}, p
		}
		return result{http.StatusOK, o}, nil
	}
}

// prefixed qualifies every column of a column list with table alias t.
func prefixed(t, cols string) string {
	parts := strings.Split(cols, ",")
	for i, c := range parts {
		c = strings.TrimSpace(c)
		if strings.HasPrefix(c, "(") { // (expr * 100)::bigint
			parts[i] = "(" + t + "." + c[1:]
		} else {
			parts[i] = t + "." + c
		}
	}
	return strings.Join(parts, ", ")
}
