// Package querytest holds a small fixed query-side data set for tests of
// reports and dashboards: inserted straight into ClickHouse (no pipeline),
// chosen to break naive SQL (older versions and deleted rows only FINAL
// hides, cancelled and refunded orders, a segment change between a
// customer's orders, a customer with one order, a campaign with orders
// before, during and after its window, empty days).
package querytest

import (
	"context"
	"fmt"
	"io/fs"
	"sort"
	"time"

	"github.com/orderflow/orderflow/sinks"
	"github.com/orderflow/orderflow/sinks/chschema"
)

// ApplySchema runs the query-side migrations on e.
func ApplySchema(ctx context.Context, e sinks.Engine) error {
	names, err := fs.Glob(chschema.Migrations, "*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, n := range names {
		b, err := fs.ReadFile(chschema.Migrations, n)
		if err != nil {
			return err
		}
		if err := e.Exec(ctx, string(b)); err != nil {
			return fmt.Errorf("migration %s: %w", n, err)
		}
	}
	return nil
}

type customer struct {
	id                                   int64
	name, segment, region, country, city string
	signup                               time.Time
}

type product struct {
	id                  int64
	sku, name, category string
	price               string
}

type line struct {
	product  int64
	qty      int32
	cents    int64 // unit price
	discount int64 // cents
}

type order struct {
	id       int64
	cust     int64
	segment  string // as of placement
	campaign int64  // 0: none
	status   string
	placed   time.Time
	shipH    float64 // hours after placement; 0: not shipped
	delivH   float64 // hours after placement; 0: not delivered
	lines    []line
	version  uint64
	deleted  bool
}

func d(month time.Month, day, hour int) time.Time {
	return time.Date(2025, month, day, hour, 0, 0, 0, time.UTC)
}

var customers = []customer{
	{1, "Ada", "gold", "europe", "DE", "Berlin", d(1, 1, 0)},
	{2, "Ben", "silver", "north_america", "US", "Boston", d(1, 2, 0)},
	{3, "Cy", "bronze", "asia_pacific", "JP", "Osaka", d(1, 3, 0)},
	{4, "Di", "platinum", "europe", "FR", "Lyon", d(1, 4, 0)},
	{5, "Ed", "bronze", "latin_america", "BR", "Recife", d(1, 5, 0)},
	{6, "Flo", "silver", "north_america", "CA", "Quebec", d(1, 6, 0)},
}

var products = []product{
	{1, "GO-BOOK", "Go book", "books", "20.00"},
	{2, "KAFKA-BOOK", "Kafka book", "books", "35.00"},
	{3, "MUG", "Mug", "kitchen", "8.50"},
	{4, "LAMP", "Lamp", "home", "60.00"},
}

// Campaign is the fixture's campaign code: window 2025-03-01 .. 2025-03-15.
const Campaign = "SPRING25"

var orders = []order{
	{101, 1, "gold", 0, "delivered", d(1, 5, 10), 20, 70, []line{{1, 2, 2000, 0}, {3, 1, 850, 0}}, 10, false},
	{102, 2, "silver", 0, "delivered", d(1, 20, 9), 30, 96, []line{{2, 1, 3500, 0}}, 11, false},
	{103, 2, "silver", 0, "paid", d(2, 3, 12), 0, 0, []line{{1, 1, 2000, 0}}, 12, false},
	// Ben moved to gold before this order
	{104, 2, "gold", 1, "shipped", d(3, 5, 8), 12, 0, []line{{4, 1, 6000, 600}}, 13, false},
	// Cy: one order
	{105, 3, "bronze", 0, "placed", d(2, 14, 15), 0, 0, []line{{3, 4, 850, 0}}, 14, false},
	{106, 4, "platinum", 0, "refunded", d(1, 10, 11), 24, 0, []line{{4, 2, 6000, 0}}, 15, false},
	// Ed: only a cancelled order
	{107, 5, "bronze", 0, "cancelled", d(3, 2, 10), 0, 0, []line{{1, 1, 2000, 0}}, 16, false},
	{108, 4, "platinum", 1, "delivered", d(3, 10, 13), 10, 50, []line{{2, 2, 3500, 700}}, 17, false},
	{109, 6, "silver", 0, "delivered", d(1, 25, 16), 40, 100, []line{{3, 1, 850, 0}}, 18, false},
	{110, 6, "silver", 0, "shipped", d(2, 25, 9), 5, 0, []line{{1, 1, 2000, 0}}, 19, false},
	{111, 6, "silver", 0, "placed", d(3, 20, 18), 0, 0, []line{{2, 1, 3500, 0}}, 20, false},
	{112, 6, "silver", 0, "placed", d(4, 2, 7), 0, 0, []line{{4, 1, 6000, 0}}, 21, false},
	// deleted: the older version says placed, the newer is the delete
	{113, 1, "gold", 0, "placed", d(2, 20, 10), 0, 0, []line{{4, 3, 6000, 0}}, 22, false},
	{113, 1, "gold", 0, "placed", d(2, 20, 10), 0, 0, []line{{4, 3, 6000, 0}}, 40, true},
	// two versions: FINAL must pick the delivered one
	{114, 4, "platinum", 0, "placed", d(2, 22, 6), 0, 0, []line{{1, 5, 2000, 0}}, 23, false},
	{114, 4, "platinum", 0, "delivered", d(2, 22, 6), 48, 120, []line{{1, 5, 2000, 0}}, 41, false},
	// a stale replay of an older version arriving last must not win
	{114, 4, "platinum", 0, "cancelled", d(2, 22, 6), 0, 0, []line{{1, 5, 2000, 0}}, 30, false},
	{115, 1, "gold", 0, "placed", d(2, 27, 20), 0, 0, []line{{2, 1, 3500, 0}}, 24, false},
	{116, 6, "silver", 0, "paid", d(3, 25, 12), 0, 0, []line{{3, 2, 850, 0}}, 25, false},
}

func money(cents int64) string { return fmt.Sprintf("%d.%02d", cents/100, cents%100) }

func opt(t time.Time, h float64) any {
	if h == 0 {
		return nil
	}
	return t.Add(time.Duration(h * float64(time.Hour)))
}

var factCols = []string{"order_id", "customer_id", "customer_name", "customer_email", "customer_segment", "customer_region",
	"customer_country", "customer_city", "customer_signup_at", "customer_version", "campaign_id", "campaign_code", "status",
	"currency", "placed_at", "paid_at", "shipped_at", "delivered_at", "cancelled_at", "refunded_at", "item_count", "units",
	"subtotal", "discount", "total", "updated_at", "_version", "_is_deleted"}

var lineCols = []string{"order_id", "item_id", "line_no", "product_id", "product_sku", "product_name", "product_category",
	"quantity", "unit_price", "discount", "line_total", "customer_id", "customer_segment", "customer_region",
	"customer_country", "campaign_id", "status", "placed_at", "product_first", "_version", "_is_deleted"}

// Load inserts the fixture into e's customers, products, campaigns,
// customer_orders and order_lines (the schema must exist), one insert per
// table per version so that FINAL has parts to merge.
func Load(ctx context.Context, e sinks.Engine) error {
	var crow, prow [][]any
	for _, c := range customers {
		crow = append(crow, []any{c.id, c.name, fmt.Sprintf("%s@example.com", c.name), nil, c.segment, c.region, c.country, c.city,
			c.signup, c.signup, uint64(1), uint8(0)})
	}
	// Ben's current segment is gold (changed between orders 103 and 104)
	crow[1][4] = "gold"
	if err := e.Insert(ctx, "customers", []string{"customer_id", "name", "email", "phone", "segment", "region", "country", "city",
		"signup_at", "updated_at", "_version", "_is_deleted"}, crow); err != nil {
		return err
	}
	for _, p := range products {
		prow = append(prow, []any{p.id, p.sku, p.name, p.category, p.price, "USD", d(1, 1, 0), uint64(1), uint8(0)})
	}
	if err := e.Insert(ctx, "products", []string{"product_id", "sku", "name", "category", "price", "currency", "updated_at",
		"_version", "_is_deleted"}, prow); err != nil {
		return err
	}
	if err := e.Insert(ctx, "campaigns", []string{"campaign_id", "code", "name", "starts_at", "ends_at", "discount_percent",
		"updated_at", "_version", "_is_deleted"}, [][]any{
		{int64(1), Campaign, "Spring sale", d(3, 1, 0), d(3, 15, 0), "10.00", d(2, 1, 0), uint64(1), uint8(0)},
	}); err != nil {
		return err
	}
	custByID := map[int64]customer{}
	for _, c := range customers {
		custByID[c.id] = c
	}
	prodByID := map[int64]product{}
	for _, p := range products {
		prodByID[p.id] = p
	}
	for _, o := range orders {
		c := custByID[o.cust]
		var sub, disc int64
		var units uint32
		var lines [][]any
		var camp, code any = nil, ""
		if o.campaign != 0 {
			camp, code = o.campaign, Campaign
		}
		var del uint8
		if o.deleted {
			del = 1
		}
		seen := map[int64]bool{}
		for i, l := range o.lines {
			first := uint8(0)
			if !seen[l.product] {
				first, seen[l.product] = 1, true
			}
			sub += l.cents * int64(l.qty)
			disc += l.discount
			units += uint32(l.qty)
			p := prodByID[l.product]
			lines = append(lines, []any{o.id, o.id*10 + int64(i), int32(i + 1), l.product, p.sku, p.name, p.category, l.qty,
				money(l.cents), money(l.discount), money(l.cents*int64(l.qty) - l.discount), o.cust, o.segment, c.region,
				c.country, camp, o.status, o.placed, first, o.version, del})
		}
		var paid, cancelled, refunded any
		if o.status != "placed" && o.status != "cancelled" {
			paid = o.placed.Add(time.Hour)
		}
		if o.status == "cancelled" {
			cancelled = o.placed.Add(2 * time.Hour)
		}
		if o.status == "refunded" {
			refunded = o.placed.Add(200 * time.Hour)
		}
		fact := []any{o.id, o.cust, c.name, c.name + "@example.com", o.segment, c.region, c.country, c.city, c.signup, uint64(1),
			camp, code, o.status, "USD", o.placed, paid, opt(o.placed, o.shipH), opt(o.placed, o.delivH), cancelled, refunded,
			uint32(len(o.lines)), units, money(sub), money(disc), money(sub - disc), o.placed, o.version, del}
		if err := e.Insert(ctx, "customer_orders", factCols, [][]any{fact}); err != nil {
			return err
		}
		if err := e.Insert(ctx, "order_lines", lineCols, lines); err != nil {
			return err
		}
	}
	return nil
}

// Params are the parameters the golden tests run each report with.
var Params = map[string]map[string]string{
	"sales_by_month_segment":     {"from": "2025-01-01", "to": "2025-04-30"},
	"daily_sales":                {"from": "2025-02-25", "to": "2025-03-06"},
	"segment_performance":        {"from": "2025-01-01", "to": "2025-04-30"},
	"top_products":               {"from": "2025-01-01", "to": "2025-04-30", "n": "2"},
	"repeat_purchase_rate":       {"from": "2025-01-01", "to": "2025-04-30"},
	"retention_cohorts":          {"from": "2025-01-01", "to": "2025-04-30"},
	"fulfilment_time_by_segment": {"from": "2025-01-01", "to": "2025-04-30"},
	"campaign_impact":            {"campaign": Campaign},
	"regional_revenue":           {"from": "2025-01-01", "to": "2025-04-30"},
	"rfm_segmentation":           {"from": "2025-01-01", "to": "2025-04-30"},
}

// Settle merges the facts (OPTIMIZE TABLE ... FINAL): one part per month,
// so that no background merge changes their parts later, and with them
// which months of the reports' rollups are current (tests that check
// exactly which months a report reads from a rollup need that).
func Settle(ctx context.Context, e sinks.Engine) error {
	for _, t := range []string{"customer_orders", "order_lines"} {
		if err := e.Exec(ctx, "OPTIMIZE TABLE "+t+" FINAL"); err != nil {
			return err
		}
	}
	return nil
}
