package pipeline

import (
	"github.com/orderflow/orderflow/internal/envelope"
)

// Captured tables (the <table> part of the topic name).
const (
	TCustomers  = "customers"
	TProducts   = "products"
	TCampaigns  = "campaigns"
	TOrders     = "orders"
	TOrderItems = "order_items"
)

// CapturedTables are the tables the transformer consumes, dimensions first.
var CapturedTables = []string{TCustomers, TProducts, TCampaigns, TOrders, TOrderItems}

// Customer is a customers row (ingest/pgschema), compact: low-cardinality
// strings are interned.
type Customer struct {
	ID        int64
	Name      string
	Email     string
	Phone     NullString
	Segment   Sym
	Region    Sym
	Country   Sym
	City      Sym
	CreatedAt Micros // the signup time
	UpdatedAt Micros
}

// decodeCustomer returns prev updated with the columns present in img.
func decodeCustomer(img envelope.Row, prev Customer) (Customer, error) {
	r := rowReader{row: img}
	c := prev
	r.int("id", &c.ID)
	r.str("name", &c.Name)
	r.str("email", &c.Email)
	r.nullStr("phone", &c.Phone)
	r.sym("segment", &c.Segment)
	r.sym("region", &c.Region)
	r.sym("country", &c.Country)
	r.sym("city", &c.City)
	r.time("created_at", &c.CreatedAt)
	r.time("updated_at", &c.UpdatedAt)
	return c, r.err
}

// Product is a products row.
type Product struct {
	ID        int64
	SKU       string
	Name      string
	Category  Sym
	Price     Money
	Currency  string
	CreatedAt Micros
	UpdatedAt Micros
}

func decodeProduct(img envelope.Row, prev Product) (Product, error) {
	r := rowReader{row: img}
	p := prev
	r.int("id", &p.ID)
	r.str("sku", &p.SKU)
	r.str("name", &p.Name)
	r.sym("category", &p.Category)
	r.money("price", &p.Price)
	r.lowCard("currency", &p.Currency)
	r.time("created_at", &p.CreatedAt)
	r.time("updated_at", &p.UpdatedAt)
	return p, r.err
}

// Campaign is a campaigns row.
type Campaign struct {
	ID          int64
	Code        string
	Name        string
	StartsAt    Micros
	EndsAt      Micros
	DiscountPct Money
	CreatedAt   Micros
	UpdatedAt   Micros
}

func decodeCampaign(img envelope.Row, prev Campaign) (Campaign, error) {
	r := rowReader{row: img}
	c := prev
	r.int("id", &c.ID)
	r.str("code", &c.Code)
	r.str("name", &c.Name)
	r.time("starts_at", &c.StartsAt)
	r.time("ends_at", &c.EndsAt)
	r.money("discount_percent", &c.DiscountPct)
	r.time("created_at", &c.CreatedAt)
	r.time("updated_at", &c.UpdatedAt)
	return c, r.err
}

// Order is an orders row.
type Order struct {
	ID          int64
	CustomerID  int64
	CampaignID  NullInt
	Status      Sym // low-cardinality text as symbols: no pointer in the
	Currency    Sym // order state the garbage collector would scan
	Subtotal    Money
	Discount    Money
	Total       Money
	PlacedAt    Micros
	PaidAt      Micros
	ShippedAt   Micros
	DeliveredAt Micros
	CancelledAt Micros
	RefundedAt  Micros
	CreatedAt   Micros
	UpdatedAt   Micros
}

func newOrder() Order {
	return Order{PaidAt: NullTime, ShippedAt: NullTime, DeliveredAt: NullTime, CancelledAt: NullTime, RefundedAt: NullTime}
}

func decodeOrder(img envelope.Row, prev Order) (Order, error) {
	r := rowReader{row: img}
	o := prev
	r.int("id", &o.ID)
	r.int("customer_id", &o.CustomerID)
	r.nullInt("campaign_id", &o.CampaignID)
	r.sym("status", &o.Status)
	r.sym("currency", &o.Currency)
	r.money("subtotal", &o.Subtotal)
	r.money("discount", &o.Discount)
	r.money("total", &o.Total)
	r.time("placed_at", &o.PlacedAt)
	r.time("paid_at", &o.PaidAt)
	r.time("shipped_at", &o.ShippedAt)
	r.time("delivered_at", &o.DeliveredAt)
	r.time("cancelled_at", &o.CancelledAt)
	r.time("refunded_at", &o.RefundedAt)
	r.time("created_at", &o.CreatedAt)
	r.time("updated_at", &o.UpdatedAt)
	return o, r.err
}

// Item is an order_items row.
type Item struct {
	// (the two int32 fields last: no padding, 72 bytes; the transformer
	// keeps every item version of every order it owns)
	ID        int64
	OrderID   int64
	ProductID int64
	UnitPrice Money
	Discount  Money
	CreatedAt Micros
	UpdatedAt Micros
	LineNo    int32
	Quantity  int32
}

func decodeItem(img envelope.Row, prev Item) (Item, error) {
	r := rowReader{row: img}
	it := prev
	r.int("id", &it.ID)
	r.int("order_id", &it.OrderID)
	r.int("product_id", &it.ProductID)
	r.int32("quantity", &it.Quantity)
	r.money("unit_price", &it.UnitPrice)
	r.money("discount", &it.Discount)
	r.int32("line_no", &it.LineNo)
	r.time("created_at", &it.CreatedAt)
	r.time("updated_at", &it.UpdatedAt)
	return it, r.err
}

// LineTotal is quantity × unit price − discount.
func (it Item) LineTotal() Money { return Money(int64(it.Quantity))*it.UnitPrice - it.Discount }

// keyID reads the integer primary key "id" of an event: from the image, or
// the record key ({"id":42}) when the image lacks it.
func keyID(ev *envelope.Event) (int64, bool) {
	img := ev.Image()
	if id, ok, err := img.Int("id"); err == nil && ok {
		return id, true
	}
	if ev.Before != nil {
		if id, ok, err := ev.Before.Int("id"); err == nil && ok {
			return id, true
		}
	}
	return 0, false
}
