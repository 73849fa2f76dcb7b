package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/orderflow/orderflow/ingest/pgschema"
	"github.com/orderflow/orderflow/internal/testenv"
)

var testNow = time.Date(2025, 6, 15, 12, 0, 0, 0, time.UTC)

type fixture struct {
	t    testing.TB
	pool *pgxpool.Pool
	srv  *Server
	h    http.Handler
	reg  *prometheus.Registry
}

func newFixture(t testing.TB, token string) *fixture {
	t.Helper()
	url := testenv.Postgres(t)
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 16
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := pgschema.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	srv, err := New(Options{Pool: pool, Token: token, MaxBodyBytes: 4096, Registerer: reg, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, pool: pool, srv: srv, h: srv.Handler(), reg: reg}
}

type resp struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r resp) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

func (f *fixture) do(method, path, body string, hdr ...string) resp {
	f.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "<none>" {
			req.Header.Del(hdr[i])
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return resp{rec.Code, rec.Header(), rec.Body.Bytes()}
}

func (f *fixture) mustDo(want int, method, path, body string, hdr ...string) resp {
	f.t.Helper()
	r := f.do(method, path, body, hdr...)
	if r.Status != want {
		f.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Status, want, r.Body)
	}
	return r
}

var countedTables = []string{"customers", "products", "campaigns", "orders", "order_items", "orderflow_internal.idempotency_keys"}

// snapshot is every row of every table as text: "no row changed" means equal snapshots.
func (f *fixture) snapshot() map[string]string {
	f.t.Helper()
	out := map[string]string{}
	for _, tbl := range countedTables {
		var n int
		var s string
		if err := f.pool.QueryRow(context.Background(),
			fmt.Sprintf("SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM %s t", tbl)).Scan(&n, &s); err != nil {
			f.t.Fatal(err)
		}
		out[tbl] = fmt.Sprintf("%d rows %s", n, s)
	}
	return out
}

func (f *fixture) count(tbl string) int {
	f.t.Helper()
	var n int
	if err := f.pool.QueryRow(context.Background(), "SELECT count(*) FROM "+tbl).Scan(&n); err != nil {
		f.t.Fatal(err)
	}
	return n
}

// seed creates two customers, three products (two USD, one EUR), an
// active and an expired campaign.
func (f *fixture) seed() {
	f.t.Helper()
	f.mustDo(201, "POST", "/v1/customers", `{"name":"Ada Lovelace","email":"Ada@Example.com","phone":"+44 20 7946 0000","segment":"gold","region":"europe","country":"GB","city":"London"}`)
	f.mustDo(201, "POST", "/v1/customers", `{"name":"Grace Hopper","email":"grace@example.com","segment":"bronze","region":"north_america","country":"US","city":"Arlington"}`)
	f.mustDo(201, "POST", "/v1/products", `{"sku":"PEN-1","name":"Pen","category":"office","price":"19.99"}`)
	f.mustDo(201, "POST", "/v1/products", `{"sku":"INK-1","name":"Ink","category":"office","price":5}`)
	f.mustDo(201, "POST", "/v1/products", `{"sku":"EUR-1","name":"Stift","category":"office","price":"3.33","currency":"EUR"}`)
	f.mustDo(201, "POST", "/v1/campaigns", `{"code":"SUMMER15","name":"Summer","starts_at":"2025-06-01T00:00:00Z","ends_at":"2025-07-01T00:00:00Z","discount_percent":"15"}`)
	f.mustDo(201, "POST", "/v1/campaigns", `{"code":"WINTER10","name":"Winter","starts_at":"2025-01-01T00:00:00Z","ends_at":"2025-02-01T00:00:00Z","discount_percent":10}`)
}

func TestCommands(t *testing.T) {
	f := newFixture(t, "")
	f.seed()

	var c Customer
	f.mustDo(200, "GET", "/v1/customers/1", "").json(t, &c)
	if c.Email != "ada@example.com" || c.Segment != "gold" || c.Phone == nil || !c.CreatedAt.Equal(testNow) {
		t.Fatalf("customer 1 = %+v", c)
	}
	f.mustDo(200, "PATCH", "/v1/customers/2", `{"segment":"silver","city":"New York"}`).json(t, &c)
	if c.Segment != "silver" || c.City != "New York" || c.Region != "north_america" || c.Name != "Grace Hopper" {
		t.Fatalf("patched customer = %+v", c)
	}
	var p Product
	f.mustDo(200, "GET", "/v1/products/1", "").json(t, &p)
	if p.Price.String() != "19.99" || p.Currency != "USD" {
		t.Fatalf("product 1 = %+v", p)
	}
	var cp Campaign
	f.mustDo(200, "GET", "/v1/campaigns/1", "").json(t, &cp)
	if cp.DiscountPercent.String() != "15.00" || cp.Code != "SUMMER15" {
		t.Fatalf("campaign 1 = %+v", cp)
	}

	// 3 x 19.99 + 1 x 5.00 at 15 %: lines 59.97 (discount 9.00 rounded from 8.9955) and 5.00 (0.75).
	var o Order
	f.mustDo(201, "POST", "/v1/orders", `{"customer_id":1,"campaign_code":"SUMMER15","items":[{"product_id":1,"quantity":3},{"product_id":2,"quantity":1}]}`).json(t, &o)
	if o.Subtotal.String() != "64.97" || o.Discount.String() != "9.75" || o.Total.String() != "55.22" || o.Status != "placed" ||
		o.CampaignID == nil || *o.CampaignID != 1 || len(o.Items) != 2 || o.Items[0].Discount.String() != "9.00" || o.Items[0].LineTotal.String() != "50.97" {
		t.Fatalf("order = %+v", o)
	}
	var stored Order
	f.mustDo(200, "GET", fmt.Sprintf("/v1/orders/%d", o.ID), "").json(t, &stored)
	a, _ := json.Marshal(o)
	b, _ := json.Marshal(stored)
	if !bytes.Equal(a, b) {
		t.Fatalf("placed order response differs from stored order:\n%s\n%s", a, b)
	}
	// Without a campaign: no discount.
	var o2 Order
	f.mustDo(201, "POST", "/v1/orders", `{"customer_id":2,"items":[{"product_id":2,"quantity":2}]}`).json(t, &o2)
	if o2.Total.String() != "10.00" || o2.Discount.String() != "0.00" || o2.CampaignID != nil {
		t.Fatalf("order 2 = %+v", o2)
	}

	// Lifecycle: pay, ship, deliver, refund order 1; pay, cancel order 2.
	for _, step := range []struct{ path, status string }{
		{"/v1/orders/1/pay", "paid"}, {"/v1/orders/1/ship", "shipped"}, {"/v1/orders/1/deliver", "delivered"}, {"/v1/orders/1/refund", "refunded"},
		{"/v1/orders/2/pay", "paid"}, {"/v1/orders/2/cancel", "cancelled"},
	} {
		var got Order
		body := ""
		if step.status == "paid" {
			body = "{}"
		}
		f.mustDo(200, "POST", step.path, body).json(t, &got)
		if got.Status != step.status {
			t.Fatalf("%s: status %s, want %s", step.path, got.Status, step.status)
		}
	}
	f.mustDo(200, "GET", "/v1/orders/1", "").json(t, &o)
	if o.PaidAt == nil || o.ShippedAt == nil || o.DeliveredAt == nil || o.RefundedAt == nil || o.CancelledAt != nil {
		t.Fatalf("order 1 timestamps: %+v", o)
	}
	f.mustDo(200, "GET", "/v1/orders/2", "").json(t, &o)
	if o.PaidAt == nil || o.CancelledAt == nil || o.ShippedAt != nil {
		t.Fatalf("order 2 timestamps: %+v", o)
	}
}

// TestTransitions checks the full status machine: each action from each status.
func TestTransitions(t *testing.T) {
	f := newFixture(t, "")
	f.seed()
	// paths reach each status from placed
	reach := map[string][]string{
		"placed": nil, "paid": {"pay"}, "shipped": {"pay", "ship"}, "delivered": {"pay", "ship", "deliver"},
		"cancelled": {"cancel"}, "refunded": {"pay", "refund"},
	}
	allowed := map[string]map[string]bool{
		"pay": {"placed": true}, "ship": {"paid": true}, "deliver": {"shipped": true},
		"cancel": {"placed": true, "paid": true}, "refund": {"paid": true, "shipped": true, "delivered": true},
	}
	for from, path := range reach {
		for action, ok := range allowed {
			t.Run(action+" from "+from, func(t *testing.T) {
				var o Order
				f.mustDo(201, "POST", "/v1/orders", `{"customer_id":1,"items":[{"product_id":1,"quantity":1}]}`).json(t, &o)
				for _, a := range path {
					f.mustDo(200, "POST", fmt.Sprintf("/v1/orders/%d/%s", o.ID, a), "")
				}
				before := f.snapshot()
				r := f.do("POST", fmt.Sprintf("/v1/orders/%d/%s", o.ID, action), "")
				if ok[from] {
					if r.Status != 200 {
						t.Fatalf("status %d: %s", r.Status, r.Body)
					}
					return
				}
				var p Problem
				r.json(t, &p)
				if r.Status != 409 || p.Type != TypeIllegalTransition || p.CurrentStatus != from {
					t.Fatalf("status %d, problem %+v; want 409 illegal-transition from %s", r.Status, p, from)
				}
				if after := f.snapshot(); fmt.Sprint(after) != fmt.Sprint(before) {
					t.Fatalf("rows changed:\n%v\n%v", before, after)
				}
			})
		}
	}
}

func TestBadInput(t *testing.T) {
	f := newFixture(t, "")
	f.seed()
	f.mustDo(201, "POST", "/v1/orders", `{"customer_id":1,"items":[{"product_id":1,"quantity":1}]}`) // order 1: placed
	f.mustDo(201, "POST", "/v1/orders", `{"customer_id":1,"items":[{"product_id":1,"quantity":1}]}`) // order 2: cancelled
	f.mustDo(200, "POST", "/v1/orders/2/cancel", "")
	f.mustDo(201, "POST", "/v1/orders", `{"customer_id":1,"items":[{"product_id":1,"quantity":1}]}`, "Idempotency-Key", "k-used")

	big := `{"customer_id":1,"items":[` + strings.Repeat(`{"product_id":1,"quantity":1},`, 200) + `{"product_id":1,"quantity":1}]}`
	order := func(items string) string { return `{"customer_id":1,"items":[` + items + `]}` }
	tests := []struct {
		name         string
		method, path string
		body         string
		hdr          []string
		status       int
		typ          string
		pointer      string // first field error's pointer ("-" for none)
		reason       string
	}{
		{"malformed json", "POST", "/v1/orders", `{"customer_id":1,`, nil, 400, TypeMalformedJSON, "-", ""},
		{"malformed json syntax", "POST", "/v1/customers", `{"name" "x"}`, nil, 400, TypeMalformedJSON, "-", ""},
		{"empty body", "POST", "/v1/orders", ``, []string{"Content-Type", "application/json"}, 400, TypeMalformedJSON, "-", ""},
		{"trailing data", "POST", "/v1/orders", order(`{"product_id":1,"quantity":1}`) + `{}`, nil, 400, TypeMalformedJSON, "-", ""},
		{"not an object", "POST", "/v1/orders", `[1,2]`, nil, 422, TypeValidation, "", "type"},
		{"unknown field", "POST", "/v1/orders", `{"customer_id":1,"coupon":"x","items":[{"product_id":1,"quantity":1}]}`, nil, 422, TypeValidation, "/coupon", "unknown_field"},
		{"unknown item field", "POST", "/v1/orders", order(`{"product_id":1,"quantity":1},{"product_id":1,"quantity":1,"price":"0.01"}`), nil, 422, TypeValidation, "/items/1/price", "unknown_field"},
		{"bad type customer_id", "POST", "/v1/orders", `{"customer_id":"one","items":[{"product_id":1,"quantity":1}]}`, nil, 422, TypeValidation, "/customer_id", "type"},
		{"bad type quantity", "POST", "/v1/orders", order(`{"product_id":1,"quantity":1},{"product_id":1,"quantity":"2"}`), nil, 422, TypeValidation, "/items/1/quantity", "type"},
		{"fractional quantity", "POST", "/v1/orders", order(`{"product_id":1,"quantity":1.5}`), nil, 422, TypeValidation, "/items/0/quantity", "type"},
		{"items not array", "POST", "/v1/orders", `{"customer_id":1,"items":{}}`, nil, 422, TypeValidation, "/items", "type"},
		{"item null", "POST", "/v1/orders", order(`null`), nil, 422, TypeValidation, "/items/0/product_id", "required"},
		{"missing customer_id", "POST", "/v1/orders", `{"items":[{"product_id":1,"quantity":1}]}`, nil, 422, TypeValidation, "/customer_id", "required"},
		{"missing items", "POST", "/v1/orders", `{"customer_id":1}`, nil, 422, TypeValidation, "/items", "required"},
		{"empty items", "POST", "/v1/orders", `{"customer_id":1,"items":[]}`, nil, 422, TypeValidation, "/items", "length"},
		{"too many items", "POST", "/v1/orders", order(strings.TrimSuffix(strings.Repeat(`{"product_id":1,"quantity":1},`, 101), ",")), nil, 422, TypeValidation, "/items", "length"},
		{"customer_id overflow", "POST", "/v1/orders", `{"customer_id":1e30,"items":[{"product_id":1,"quantity":1}]}`, nil, 422, TypeValidation, "/customer_id", "type"},
		{"missing quantity", "POST", "/v1/orders", order(`{"product_id":1}`), nil, 422, TypeValidation, "/items/0/quantity", "required"},
		{"zero quantity", "POST", "/v1/orders", order(`{"product_id":1,"quantity":0}`), nil, 422, TypeValidation, "/items/0/quantity", "range"},
		{"negative quantity", "POST", "/v1/orders", order(`{"product_id":2,"quantity":1},{"product_id":1,"quantity":-3}`), nil, 422, TypeValidation, "/items/1/quantity", "range"},
		{"huge quantity", "POST", "/v1/orders", order(`{"product_id":1,"quantity":1001}`), nil, 422, TypeValidation, "/items/0/quantity", "range"},
		{"unknown customer", "POST", "/v1/orders", `{"customer_id":999,"items":[{"product_id":1,"quantity":1}]}`, nil, 422, TypeUnknownReference, "/customer_id", "not_found"},
		{"unknown product", "POST", "/v1/orders", order(`{"product_id":1,"quantity":1},{"product_id":999,"quantity":1}`), nil, 422, TypeUnknownReference, "/items/1/product_id", "not_found"},
		{"unknown campaign", "POST", "/v1/orders", `{"customer_id":1,"campaign_code":"NOPE","items":[{"product_id":1,"quantity":1}]}`, nil, 422, TypeUnknownReference, "/campaign_code", "not_found"},
		{"inactive campaign", "POST", "/v1/orders", `{"customer_id":1,"campaign_code":"WINTER10","items":[{"product_id":1,"quantity":1}]}`, nil, 422, TypeCampaignNotActive, "/campaign_code", "inactive"},
		{"mixed currencies", "POST", "/v1/orders", order(`{"product_id":1,"quantity":1},{"product_id":3,"quantity":1}`), nil, 422, TypeValidation, "/items/1/product_id", "mismatch"},
		{"oversized body", "POST", "/v1/orders", big, nil, 413, TypeBodyTooLarge, "-", ""},
		{"wrong content type", "POST", "/v1/orders", order(`{"product_id":1,"quantity":1}`), []string{"Content-Type", "text/plain"}, 415, TypeUnsupportedMedia, "-", ""},
		{"ship placed order", "POST", "/v1/orders/1/ship", "", nil, 409, TypeIllegalTransition, "-", ""},
		{"ship cancelled order", "POST", "/v1/orders/2/ship", "", nil, 409, TypeIllegalTransition, "-", ""},
		{"refund placed order", "POST", "/v1/orders/1/refund", "", nil, 409, TypeIllegalTransition, "-", ""},
		{"pay unknown order", "POST", "/v1/orders/999/pay", "", nil, 404, TypeNotFound, "-", ""},
		{"pay non-numeric id", "POST", "/v1/orders/abc/pay", "", nil, 404, TypeNotFound, "-", ""},
		{"pay with body field", "POST", "/v1/orders/1/pay", `{"amount":1}`, nil, 422, TypeValidation, "/amount", "unknown_field"},
		{"get unknown order", "GET", "/v1/orders/999", "", nil, 404, TypeNotFound, "-", ""},
		{"customer missing fields", "POST", "/v1/customers", `{"name":"X"}`, nil, 422, TypeValidation, "/email", "required"},
		{"customer bad email", "POST", "/v1/customers", `{"name":"X","email":"not-an-email","segment":"gold","region":"europe","country":"DE","city":"Bonn"}`, nil, 422, TypeValidation, "/email", "format"},
		{"customer bad segment", "POST", "/v1/customers", `{"name":"X","email":"x@example.com","segment":"diamond","region":"europe","country":"DE","city":"Bonn"}`, nil, 422, TypeValidation, "/segment", "enum"},
		{"customer bad country", "POST", "/v1/customers", `{"name":"X","email":"x@example.com","segment":"gold","region":"europe","country":"de","city":"Bonn"}`, nil, 422, TypeValidation, "/country", "format"},
		{"customer duplicate email", "POST", "/v1/customers", `{"name":"X","email":"ADA@example.com","segment":"gold","region":"europe","country":"DE","city":"Bonn"}`, nil, 409, TypeConflict, "/email", "duplicate"},
		{"customer name wrong type", "POST", "/v1/customers", `{"name":42,"email":"x@example.com","segment":"gold","region":"europe","country":"DE","city":"Bonn"}`, nil, 422, TypeValidation, "/name", "type"},
		{"patch empty", "PATCH", "/v1/customers/1", `{}`, nil, 422, TypeValidation, "", "required"},
		{"patch unknown customer", "PATCH", "/v1/customers/999", `{"segment":"gold"}`, nil, 404, TypeNotFound, "-", ""},
		{"patch email taken", "PATCH", "/v1/customers/2", `{"email":"ada@example.com"}`, nil, 409, TypeConflict, "/email", "duplicate"},
		{"patch bad region", "PATCH", "/v1/customers/2", `{"region":"mars"}`, nil, 422, TypeValidation, "/region", "enum"},
		{"product zero price", "POST", "/v1/products", `{"sku":"Z","name":"Z","category":"c","price":0}`, nil, 422, TypeValidation, "/price", "range"},
		{"product negative price", "POST", "/v1/products", `{"sku":"Z","name":"Z","category":"c","price":"-1.00"}`, nil, 422, TypeValidation, "/price", "range"},
		{"product 3 decimals", "POST", "/v1/products", `{"sku":"Z","name":"Z","category":"c","price":"1.001"}`, nil, 422, TypeValidation, "/price", "type"},
		{"product missing price", "POST", "/v1/products", `{"sku":"Z","name":"Z","category":"c"}`, nil, 422, TypeValidation, "/price", "required"},
		{"product duplicate sku", "POST", "/v1/products", `{"sku":"PEN-1","name":"Z","category":"c","price":1}`, nil, 409, TypeConflict, "/sku", "duplicate"},
		{"campaign ends before start", "POST", "/v1/campaigns", `{"code":"X1","name":"X","starts_at":"2025-02-01T00:00:00Z","ends_at":"2025-01-01T00:00:00Z","discount_percent":5}`, nil, 422, TypeValidation, "/ends_at", "range"},
		{"campaign bad time", "POST", "/v1/campaigns", `{"code":"X1","name":"X","starts_at":"yesterday","ends_at":"2025-01-01T00:00:00Z","discount_percent":5}`, nil, 422, TypeValidation, "/starts_at", "format"},
		{"campaign 100 percent", "POST", "/v1/campaigns", `{"code":"X1","name":"X","starts_at":"2025-01-01T00:00:00Z","ends_at":"2025-02-01T00:00:00Z","discount_percent":100}`, nil, 422, TypeValidation, "/discount_percent", "range"},
		{"idempotency key reused", "POST", "/v1/orders", order(`{"product_id":2,"quantity":1}`), []string{"Idempotency-Key", "k-used"}, 422, TypeIdempotencyMisuse, "-", ""},
		{"idempotency key too long", "POST", "/v1/orders", order(`{"product_id":1,"quantity":1}`), []string{"Idempotency-Key", strings.Repeat("k", 256)}, 400, TypeInvalidIdemKey, "-", ""},
		{"unknown route", "GET", "/v1/nope", "", nil, 404, TypeNotFound, "-", ""},
		{"wrong method", "DELETE", "/v1/orders/1", "", nil, 405, TypeMethodNotAllowed, "-", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := f.snapshot()
			r := f.do(tt.method, tt.path, tt.body, tt.hdr...)
			var p Problem
			if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("Content-Type %q, status %d, body %s", ct, r.Status, r.Body)
			}
			r.json(t, &p)
			if r.Status != tt.status || p.Type != tt.typ || p.Status != tt.status || p.Title == "" {
				t.Fatalf("got %d %s, want %d %s: %s", r.Status, p.Type, tt.status, tt.typ, r.Body)
			}
			if tt.pointer != "-" {
				if len(p.Errors) == 0 || p.Errors[0].Pointer != tt.pointer || p.Errors[0].Reason != tt.reason {
					t.Fatalf("errors = %+v, want first at %q reason %q", p.Errors, tt.pointer, tt.reason)
				}
			}
			if after := f.snapshot(); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Fatalf("rows changed:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
}

func TestAuth(t *testing.T) {
	f := newFixture(t, "s3cret")
	body := `{"sku":"A1","name":"A","category":"c","price":1}`
	for _, tt := range []struct {
		name, auth string
		want       int
	}{
		{"no header", "<none>", 401},
		{"wrong token", "Bearer nope", 401},
		{"wrong scheme", "Basic s3cret", 401},
		{"right token", "Bearer s3cret", 201},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := f.count("products")
			r := f.do("POST", "/v1/products", body, "Authorization", tt.auth)
			if r.Status != tt.want {
				t.Fatalf("status %d, want %d: %s", r.Status, tt.want, r.Body)
			}
			if tt.want == 401 {
				var p Problem
				r.json(t, &p)
				if p.Type != TypeUnauthorized || r.Header.Get("WWW-Authenticate") == "" || f.count("products") != before {
					t.Fatalf("problem %+v, header %v", p, r.Header)
				}
			}
		})
	}
	f.mustDo(401, "GET", "/v1/products/1", "")
	f.mustDo(200, "GET", "/openapi.json", "") // the document is public
}

// TestIdempotencyConcurrent: 32 clients place the same orders with the same
// keys, each retrying every key several times, all at once over real HTTP.
// Exactly one order exists per key and every answer for a key is the same.
func TestIdempotencyConcurrent(t *testing.T) {
	f := newFixture(t, "")
	f.seed()
	ts := httptest.NewServer(f.h)
	defer ts.Close()
	const clients, keys, retries = 32, 10, 3
	type answer struct {
		status int
		body   string
	}
	var mu sync.Mutex
	answers := map[string][]answer{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := 0; i < keys*retries; i++ {
				k := (i + c) % keys
				key := fmt.Sprintf("order-%d", k)
				body := fmt.Sprintf(`{"customer_id":%d,"items":[{"product_id":1,"quantity":%d}]}`, k%2+1, k+1)
				req, _ := http.NewRequest("POST", ts.URL+"/v1/orders", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Idempotency-Key", key)
				res, err := ts.Client().Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				mu.Lock()
				answers[key] = append(answers[key], answer{res.StatusCode, string(b)})
				mu.Unlock()
			}
		}()
	}
	close(start)
	wg.Wait()
	if n := f.count("orders"); n != keys {
		t.Fatalf("%d orders, want exactly %d (one per key)", n, keys)
	}
	if n := f.count("order_items"); n != keys {
		t.Fatalf("%d order items, want %d", n, keys)
	}
	for key, as := range answers {
		if len(as) != clients*retries {
			t.Errorf("key %s: %d answers, want %d", key, len(as), clients*retries)
		}
		for _, a := range as {
			if a.status != 201 || a.body != as[0].body {
				t.Fatalf("key %s: answer %d %s differs from first %d %s", key, a.status, a.body, as[0].status, as[0].body)
			}
		}
	}
	replays := testutil.ToFloat64(f.srv.metrics.replays.WithLabelValues("place_order"))
	if replays != clients*retries*keys-keys {
		t.Fatalf("replays = %v, want %d", replays, clients*retries*keys-keys)
	}
}

func TestMetrics(t *testing.T) {
	f := newFixture(t, "")
	f.seed()
	f.mustDo(201, "POST", "/v1/orders", `{"customer_id":1,"items":[{"product_id":1,"quantity":1}]}`)
	f.mustDo(422, "POST", "/v1/orders", `{"customer_id":1,"items":[{"product_id":1,"quantity":0}]}`)
	f.mustDo(404, "GET", "/v1/nothing", "")
	if v := testutil.ToFloat64(f.srv.metrics.requests.WithLabelValues("place_order", "201")); v != 1 {
		t.Fatalf("place_order 201 = %v", v)
	}
	if v := testutil.ToFloat64(f.srv.metrics.requests.WithLabelValues("place_order", "422")); v != 1 {
		t.Fatalf("place_order 422 = %v", v)
	}
	if v := testutil.ToFloat64(f.srv.metrics.requests.WithLabelValues("unmatched", "404")); v != 1 {
		t.Fatalf("unmatched 404 = %v", v)
	}
	n, err := testutil.GatherAndCount(f.reg, "orderflow_api_request_duration_seconds")
	if err != nil || n == 0 {
		t.Fatalf("histogram series = %d, %v", n, err)
	}
}

// TestOpenAPIMatchesRoutes: every route the mux serves is in the document
// and every documented operation reaches the mux pattern it names.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openAPIJSON, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi = %q", doc.OpenAPI)
	}
	s, err := New(Options{Pool: &pgxpool.Pool{}})
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]string{} // "METHOD /path" -> operationId
	for path, item := range doc.Paths {
		for method, op := range item {
			if method == "parameters" {
				continue
			}
			var o struct {
				OperationID string `json:"operationId"`
			}
			if err := json.Unmarshal(op, &o); err != nil {
				t.Fatal(err)
			}
			documented[strings.ToUpper(method)+" "+path] = o.OperationID
		}
	}
	served := map[string]bool{}
	for _, rt := range s.routes {
		k := rt.Method + " " + rt.Path
		served[k] = true
		id, ok := documented[k]
		if !ok {
			t.Errorf("route %s is not in openapi.yaml", k)
		} else if id != rt.Command {
			t.Errorf("route %s: operationId %q, want %q", k, id, rt.Command)
		}
	}
	for k := range documented {
		if !served[k] {
			t.Errorf("openapi.yaml documents %s, which the API does not serve", k)
		}
		method, path, _ := strings.Cut(k, " ")
		req := httptest.NewRequest(method, strings.ReplaceAll(path, "{id}", "7"), nil)
		if _, pattern := s.mux.Handler(req); pattern != k {
			t.Errorf("%s reaches mux pattern %q", k, pattern)
		}
	}
	// The served document is the embedded one.
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/openapi.json", nil))
	if rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), openAPIJSON) {
		t.Fatalf("GET /openapi.json: %d", rec.Code)
	}
}

// A body without Content-Length is cut off at the limit too.
func TestBodyTooLargeStreamed(t *testing.T) {
	f := newFixture(t, "")
	f.seed()
	before := f.snapshot()
	body := io.MultiReader(strings.NewReader(`{"customer_id":1,"items":[`), strings.NewReader(strings.Repeat(`{"product_id":1,"quantity":1},`, 300)), strings.NewReader(`{"product_id":1,"quantity":1}]}`))
	req := httptest.NewRequest("POST", "/v1/orders", body)
	req.ContentLength = -1
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	var p Problem
	resp{rec.Code, rec.Header(), rec.Body.Bytes()}.json(t, &p)
	if rec.Code != 413 || p.Type != TypeBodyTooLarge {
		t.Fatalf("status %d, problem %+v", rec.Code, p)
	}
	if after := f.snapshot(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatal("rows changed")
	}
}

func TestPruneIdempotencyKeys(t *testing.T) {
	f := newFixture(t, "")
	f.seed()
	f.mustDo(201, "POST", "/v1/orders", `{"customer_id":1,"items":[{"product_id":1,"quantity":1}]}`, "Idempotency-Key", "old")
	if _, err := f.pool.Exec(context.Background(), `UPDATE orderflow_internal.idempotency_keys SET created_at = $1`, testNow.Add(-48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	f.mustDo(201, "POST", "/v1/orders", `{"customer_id":1,"items":[{"product_id":1,"quantity":1}]}`, "Idempotency-Key", "new")
	n, err := f.srv.PruneIdempotencyKeys(context.Background(), 24*time.Hour)
	if err != nil || n != 1 {
		t.Fatalf("pruned %d, %v; want 1", n, err)
	}
	if f.count("orderflow_internal.idempotency_keys") != 1 {
		t.Fatal("the fresh key was pruned")
	}
}

// An unreachable database is a 503 problem with Retry-After, not a 500.
func TestDatabaseDown(t *testing.T) {
	pool, err := pgxpool.New(context.Background(), "postgres://x:y@127.0.0.1:1/none?connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	srv, err := New(Options{Pool: pool})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct{ method, path, body string }{
		{"POST", "/v1/products", `{"sku":"A","name":"A","category":"c","price":1}`},
		{"GET", "/v1/orders/1", ""},
	} {
		req := httptest.NewRequest(r.method, r.path, strings.NewReader(r.body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, req)
		var p Problem
		_ = json.Unmarshal(rec.Body.Bytes(), &p)
		if rec.Code != 503 || p.Type != TypeServiceUnavailable || rec.Header().Get("Retry-After") == "" {
			t.Errorf("%s %s: %d %s", r.method, r.path, rec.Code, rec.Body)
		}
	}
}

// TestIdempotentReplayEveryCommand: for every mutating command, a retry with
// the same Idempotency-Key returns the first answer and changes no row.
func TestIdempotentReplayEveryCommand(t *testing.T) {
	f := newFixture(t, "")
	f.seed()
	f.mustDo(201, "POST", "/v1/orders", `{"customer_id":1,"items":[{"product_id":1,"quantity":1}]}`) // order 1
	f.mustDo(201, "POST", "/v1/orders", `{"customer_id":1,"items":[{"product_id":1,"quantity":1}]}`) // order 2
	steps := []struct{ method, path, body string }{
		{"POST", "/v1/customers", `{"name":"Lin","email":"lin@example.com","segment":"silver","region":"asia_pacific","country":"SG","city":"Singapore"}`},
		{"PATCH", "/v1/customers/1", `{"segment":"platinum"}`},
		{"POST", "/v1/products", `{"sku":"NEW-1","name":"New","category":"c","price":"1.50"}`},
		{"POST", "/v1/campaigns", `{"code":"NEW1","name":"n","starts_at":"2025-06-01T00:00:00Z","ends_at":"2025-06-30T00:00:00Z","discount_percent":"7.5"}`},
		{"POST", "/v1/orders", `{"customer_id":2,"campaign_code":"SUMMER15","items":[{"product_id":2,"quantity":4}]}`},
		{"POST", "/v1/orders/1/pay", ``},
		{"POST", "/v1/orders/1/ship", ``},
		{"POST", "/v1/orders/1/deliver", ``},
		{"POST", "/v1/orders/1/refund", `{}`},
		{"POST", "/v1/orders/2/cancel", ``},
	}
	for i, st := range steps {
		t.Run(st.method+" "+st.path, func(t *testing.T) {
			key := fmt.Sprintf("replay-%d", i)
			first := f.do(st.method, st.path, st.body, "Idempotency-Key", key)
			if first.Status >= 300 {
				t.Fatalf("first: %d %s", first.Status, first.Body)
			}
			before := f.snapshot()
			again := f.do(st.method, st.path, st.body, "Idempotency-Key", key)
			if again.Status != first.Status || !bytes.Equal(again.Body, first.Body) || again.Header.Get("Idempotent-Replayed") != "true" {
				t.Fatalf("retry answered %d %s (replayed=%q), first %d %s", again.Status, again.Body, again.Header.Get("Idempotent-Replayed"), first.Status, first.Body)
			}
			if after := f.snapshot(); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Fatalf("retry changed rows:\n%v\n%v", before, after)
			}
		})
	}
}
