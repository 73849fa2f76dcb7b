package queries

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderflow/orderflow/queries/querytest"
)

func TestReportsDeclared(t *testing.T) {
	want := []string{"campaign_impact", "daily_sales", "fulfilment_time_by_segment", "regional_revenue", "repeat_purchase_rate",
		"retention_cohorts", "rfm_segmentation", "sales_by_month_segment", "segment_performance", "top_products"}
	var got []string
	for _, r := range List() {
		got = append(got, r.Name)
		if !strings.Contains(r.SQL, "FINAL") || !strings.Contains(r.SQL, "_is_deleted = 0") {
			t.Errorf("%s: reads facts without FINAL and _is_deleted = 0", r.Name)
		}
		if r.Name != "fulfilment_time_by_segment" && !strings.Contains(r.SQL, "status NOT IN ('cancelled', 'refunded')") {
			t.Errorf("%s: does not apply the sale definition", r.Name)
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("reports = %v, want %v", got, want)
	}
}

func TestParseReportErrors(t *testing.T) {
	head := "-- @title T\n-- @question Q\n-- @sale S\n-- @column a UInt8 : a\n"
	for name, text := range map[string]string{
		"undeclared placeholder": head + "SELECT {x:UInt8} AS a",
		"type mismatch":          head + "-- @param x UInt16 = 1 : x\nSELECT {x:UInt8} AS a",
		"unused parameter":       head + "-- @param x UInt8 = 1 : x\nSELECT 1 AS a",
		"bad type":               head + "-- @param x Blob = 1 : x\nSELECT {x:Blob} AS a",
		"bad default":            head + "-- @param x Date = yesterday : x\nSELECT {x:Date} AS a",
		"missing header":         "-- @title T\nSELECT 1",
		// @rollup: the runner's placeholders only with it, all of them, as
		// typed, and Date parameters from and to
		"rollup placeholder without @rollup": head + "-- @param from Date = today : f\n-- @param to Date = today : t\n" +
			"SELECT 1 AS a WHERE {from:Date} < {to:Date} AND {rollup_from:Date} = {rollup_to:Date} AND has({rollup_ids:Array(UInt64)}, 1)",
		"unknown rollup": head + "-- @rollup nope\n-- @param from Date = today : f\n-- @param to Date = today : t\n" +
			"SELECT 1 AS a WHERE {from:Date} < {to:Date} AND {rollup_from:Date} = {rollup_to:Date} AND has({rollup_ids:Array(UInt64)}, 1)",
		"rollup without ids": head + "-- @rollup customer_months\n-- @param from Date = today : f\n-- @param to Date = today : t\n" +
			"SELECT 1 AS a WHERE {from:Date} < {to:Date} AND {rollup_from:Date} = {rollup_to:Date}",
		"rollup placeholder mistyped": head + "-- @rollup customer_months\n-- @param from Date = today : f\n-- @param to Date = today : t\n" +
			"SELECT 1 AS a WHERE {from:Date} < {to:Date} AND {rollup_from:String} = {rollup_to:Date} AND has({rollup_ids:Array(UInt64)}, 1)",
		"rollup without a period": head + "-- @rollup customer_months\n" +
			"SELECT 1 AS a WHERE {rollup_from:Date} = {rollup_to:Date} AND has({rollup_ids:Array(UInt64)}, 1)",
	} {
		if _, err := parseReport("t", text); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestParseReportRollup(t *testing.T) {
	r, err := parseReport("t", "-- @title T\n-- @question Q\n-- @sale S\n-- @column a UInt8 : a\n-- @rollup customer_months all-months\n"+
		"-- @param from Date = today : f\n-- @param to Date = today : t\n"+
		"SELECT 1 AS a WHERE {from:Date} < {to:Date} AND {rollup_from:Date} = {rollup_to:Date} AND has({rollup_ids:Array(UInt64)}, 1)")
	if err != nil || r.Rollup != "customer_months" || !r.RollupAllMonths || len(r.Params) != 2 {
		t.Fatalf("parse: %+v %v, want rollup customer_months, all months, two user parameters", r, err)
	}
}

func TestResolve(t *testing.T) {
	now := time.Date(2025, 8, 31, 15, 4, 5, 0, time.UTC)
	r, _ := Get("top_products")
	got, err := r.Resolve(map[string]string{"from": "2025-01-01"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if got["from"] != "2025-01-01" || got["to"] != "2025-08-31" || got["n"] != "10" {
		t.Fatalf("resolved %v", got)
	}
	rr, _ := Get("repeat_purchase_rate")
	got, _ = rr.Resolve(nil, now)
	if got["from"] != "2025-02-28" { // today-6m from Aug 31 normalizes like AddDate
		t.Errorf("today-6m = %s", got["from"])
	}
	for _, c := range []struct {
		report string
		params map[string]string
		param  string
		reason string
	}{
		{"top_products", map[string]string{"from": "2025-13-01"}, "from", "not a date"},
		{"top_products", map[string]string{"n": "-1"}, "n", "not an integer"},
		{"top_products", map[string]string{"n": "ten"}, "n", "not an integer"},
		{"top_products", map[string]string{"limit": "3"}, "limit", "not a parameter of this report"},
		{"top_products", map[string]string{"from": "2025-02-01", "to": "2025-01-01"}, "to", "before from"},
		{"campaign_impact", nil, "campaign", "required"},
		{"daily_sales", map[string]string{"to": "1969-12-31"}, "to", "outside"},
	} {
		r, _ := Get(c.report)
		_, err := r.Resolve(c.params, now)
		var pe *ParamError
		if !errors.As(err, &pe) || pe.Param != c.param || !strings.Contains(err.Error(), c.reason) {
			t.Errorf("%s %v: err = %v, want a ParamError on %s containing %q", c.report, c.params, err, c.param, c.reason)
		}
	}
	if _, err := Get("nope"); !errors.Is(err, ErrUnknownReport) {
		t.Errorf("Get(nope) = %v", err)
	}
}

func TestFormats(t *testing.T) {
	ts := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	res := &Result{Report: "x", Columns: []string{"day", "name", "n", "amount", "share", "at"},
		Types: []string{"Date", "String", "UInt64", "Decimal(38, 2)", "Nullable(Float64)", "DateTime64(6, 'UTC')"},
		Rows: [][]any{{ts, "a,b \"q\"", uint64(18446744073709551615), "12.5", nil, ts.Add(1500 * time.Millisecond)},
			{ts, "é", uint64(2), "-3", 0.25, ts}}}
	var b bytes.Buffer
	_ = WriteTable(&b, res)
	wantTable := `day         name     n                     amount  share  at
----------  -------  --------------------  ------  -----  ---------------------
2025-03-01  a,b "q"  18446744073709551615   12.50   NULL  2025-03-01 00:00:01.5
2025-03-01  é                           2   -3.00   0.25  2025-03-01 00:00:00
(2 rows)
`
	if b.String() != wantTable {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), wantTable)
	}
	b.Reset()
	_ = WriteCSV(&b, res)
	wantCSV := "day,name,n,amount,share,at\n2025-03-01,\"a,b \"\"q\"\"\",18446744073709551615,12.50,,2025-03-01 00:00:01.5\n2025-03-01,é,2,-3.00,0.25,2025-03-01 00:00:00\n"
	if b.String() != wantCSV {
		t.Errorf("csv:\n%q\nwant:\n%q", b.String(), wantCSV)
	}
	b.Reset()
	_ = WriteJSON(&b, res)
	if !strings.Contains(b.String(), `"n": 18446744073709551615`) || !strings.Contains(b.String(), `"amount": 12.50`) ||
		!strings.Contains(b.String(), `"share": null`) || !json.Valid(b.Bytes()) {
		t.Errorf("json: %s", b.String())
	}
	if err := Write(&b, res, "xml"); err == nil {
		t.Error("format xml accepted")
	}
}

// TestHTTP covers the report API and the read-only analyst SQL endpoint on
// chDB with the fixture.
func TestHTTP(t *testing.T) {
	e := openDB(t)
	ctx := context.Background()
	if err := querytest.Load(ctx, e); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	h, err := Handler(e, HandlerOptions{Registerer: reg, Now: func() time.Time { return time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	do := func(method, path, ctype, body string) (int, string, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}

	code, _, body := do("GET", "/v1/reports", "", "")
	var list struct {
		Reports []struct {
			Name   string  `json:"name"`
			Params []Param `json:"params"`
		} `json:"reports"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &list) != nil || len(list.Reports) != 10 {
		t.Fatalf("list: %d %s", code, body)
	}

	code, ctype, body := do("GET", "/v1/reports/segment_performance?from=2025-01-01&to=2025-04-30", "", "")
	var jr struct {
		Report string           `json:"report"`
		Rows   []map[string]any `json:"rows"`
	}
	if code != 200 || ctype != "application/json" || json.Unmarshal([]byte(body), &jr) != nil || len(jr.Rows) != 4 ||
		jr.Rows[0]["segment"] != "silver" || jr.Rows[0]["revenue"] != 195.5 || jr.Rows[0]["orders"] != 7.0 {
		t.Fatalf("report json: %d %s %s", code, ctype, body)
	}
	code, ctype, body = do("GET", "/v1/reports/segment_performance?from=2025-01-01&to=2025-04-30&format=csv", "", "")
	if code != 200 || !strings.HasPrefix(ctype, "text/csv") ||
		!strings.HasPrefix(body, "segment,revenue,orders,customers,avg_order_value,orders_per_customer\nsilver,195.50,7,2,27.93,3.5\n") {
		t.Fatalf("report csv: %d %s %q", code, ctype, body)
	}

	for _, c := range []struct {
		path  string
		code  int
		param string
	}{
		{"/v1/reports/top_products?from=yesterday", 400, "from"},
		{"/v1/reports/top_products?n=1&n=2", 400, "n"},
		{"/v1/reports/top_products?bogus=1", 400, "bogus"},
		{"/v1/reports/campaign_impact", 400, "campaign"},
		{"/v1/reports/top_products?format=xml", 400, "format"},
		{"/v1/reports/no_such_report", 404, ""},
		{"/v1/reports/retention_cohorts?from=2000-01-01&to=2025-04-30", 400, ""}, // more than 255 months
	} {
		code, ctype, body := do("GET", c.path, "", "")
		var p Problem
		if code != c.code || ctype != "application/problem+json" || json.Unmarshal([]byte(body), &p) != nil || p.Param != c.param {
			t.Errorf("%s: %d %s %s, want %d naming %q", c.path, code, ctype, body, c.code, c.param)
		}
	}

	// analyst SQL: SELECT works (text/plain and JSON bodies) ...
	code, _, body = do("POST", "/v1/sql?format=csv", "text/plain", "SELECT count() AS n FROM customer_orders FINAL WHERE _is_deleted = 0")
	if code != 200 || body != "n\n15\n" {
		t.Fatalf("sql select: %d %q", code, body)
	}
	code, _, body = do("POST", "/v1/sql", "application/json", `{"sql": "SELECT segment FROM customers FINAL WHERE customer_id = 2"}`)
	if code != 200 || !strings.Contains(body, `"segment": "gold"`) {
		t.Fatalf("sql json: %d %s", code, body)
	}
	// ... writes are refused by the engine with 403, and nothing changes
	for _, q := range []string{
		"INSERT INTO customers (customer_id, name) VALUES (99, 'x')",
		"ALTER TABLE customer_orders DELETE WHERE 1",
		"DROP TABLE customer_orders",
		"CREATE TABLE x (a UInt8) ENGINE = Memory",
		"TRUNCATE TABLE order_lines",
		"SET readonly = 0",
	} {
		code, _, body := do("POST", "/v1/sql", "text/plain", q)
		var p Problem
		if code != 403 || json.Unmarshal([]byte(body), &p) != nil || p.Type != TypeReadOnly {
			t.Errorf("%s: %d %s, want 403 read-only", q, code, body)
		}
	}
	code, _, body = do("POST", "/v1/sql", "text/plain", "SELEC 1")
	if code != 400 {
		t.Errorf("syntax error: %d %s", code, body)
	}
	code, _, _ = do("POST", "/v1/sql", "text/plain", "  ")
	if code != 400 {
		t.Errorf("empty SQL: %d", code)
	}
	code, _, _ = do("GET", "/v1/sql", "", "")
	if code != 405 {
		t.Errorf("GET /v1/sql: %d", code)
	}
	res, err := e.Query(ctx, "SELECT count() FROM customer_orders FINAL WHERE _is_deleted = 0", nil)
	if err != nil || res.Rows[0][0] != uint64(15) {
		t.Fatalf("after refused writes: %v %v", res, err)
	}
	for _, tbl := range []string{"customer_orders", "order_lines", "customers"} {
		if r, err := e.Query(ctx, "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = {t:String}", map[string]any{"t": tbl}); err != nil || r.Rows[0][0] != uint64(1) {
			t.Fatalf("table %s gone: %v %v", tbl, r, err)
		}
	}
	// metrics
	mfs, _ := reg.Gather()
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	if !names["orderflow_queries_requests_total"] || !names["orderflow_queries_duration_seconds"] {
		t.Errorf("metrics: %v", names)
	}
}
