package queries

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/queries/querytest"
)

func TestSelectBody(t *testing.T) {
	for _, c := range []struct {
		in, body string
		ok       bool
	}{
		{"SELECT 1", "SELECT 1", true},
		{"  select 1 ;; \n", "  select 1", true},
		{"-- the count\n/* of */ (SELECT 1)", "-- the count\n/* of */ (SELECT 1)", true},
		{"WITH x AS (SELECT 1) SELECT * FROM x", "WITH x AS (SELECT 1) SELECT * FROM x", true},
		{"WITHIN 1", "", false},
		{"SHOW TABLES", "", false},
		{"EXPLAIN SELECT 1", "", false},
		{"DESCRIBE TABLE t", "", false},
		{"-- only a comment", "", false},
		{"INSERT INTO t SELECT 1", "", false},
	} {
		body, ok := selectBody(c.in)
		if body != c.body || ok != c.ok {
			t.Errorf("selectBody(%q) = %q, %v; want %q, %v", c.in, body, ok, c.body, c.ok)
		}
	}
}

// TestQuerySQLMaxRows: analyst SQL returns at most the cap and says when it
// cut; the engine stops at the cap (an endless SELECT returns), the order of
// an ORDER BY is kept, and statements that are not a SELECT are cut too.
func TestQuerySQLMaxRows(t *testing.T) {
	e := openDB(t)
	ctx := context.Background()
	if err := querytest.Load(ctx, e); err != nil {
		t.Fatal(err)
	}
	ints := func(res *Result) []uint64 {
		var out []uint64
		for _, r := range res.Rows {
			out = append(out, r[0].(uint64))
		}
		return out
	}
	res, err := QuerySQL(ctx, e, "SELECT number AS n FROM numbers(25) ORDER BY n DESC;", 5)
	if err != nil {
		t.Fatal(err)
	}
	if got := ints(res); !res.Truncated || res.MaxRows != 5 || len(got) != 5 || got[0] != 24 || got[4] != 20 || res.Columns[0] != "n" {
		t.Fatalf("25 rows, cap 5: rows %v truncated %v max %d columns %v", got, res.Truncated, res.MaxRows, res.Columns)
	}
	// exactly the cap: not truncated
	res, err = QuerySQL(ctx, e, "SELECT number FROM numbers(5)", 5)
	if err != nil || len(res.Rows) != 5 || res.Truncated {
		t.Fatalf("5 rows, cap 5: %v %v", res, err)
	}
	// endless: only the LIMIT the cap puts on the engine ends it
	res, err = QuerySQL(ctx, e, "-- every number\nSELECT number FROM system.numbers", 3)
	if err != nil || len(res.Rows) != 3 || !res.Truncated {
		t.Fatalf("system.numbers, cap 3: %v %v", res, err)
	}
	// a real table: 15 orders, cap 10; the default cap leaves them alone
	res, err = QuerySQL(ctx, e, "SELECT * FROM customer_orders FINAL ORDER BY order_id", 10)
	if err != nil || len(res.Rows) != 10 || !res.Truncated || len(res.Columns) < 20 {
		t.Fatalf("customer_orders, cap 10: %d rows, truncated %v, %v", len(res.Rows), res != nil && res.Truncated, err)
	}
	res, err = QuerySQL(ctx, e, "SELECT * FROM customer_orders FINAL ORDER BY order_id", 0)
	if err != nil || len(res.Rows) != 15 || res.Truncated || res.MaxRows != DefaultMaxSQLRows {
		t.Fatalf("customer_orders, default cap: %v %v", res, err)
	}
	// not a SELECT: cut after the fact
	res, err = QuerySQL(ctx, e, "SHOW TABLES", 2)
	if err != nil || len(res.Rows) != 2 || !res.Truncated {
		t.Fatalf("SHOW TABLES, cap 2: %v %v", res, err)
	}
}

// TestSQLEndpointMaxRows: POST /v1/sql cuts a long result to MaxSQLRows and
// says so in every format (headers; JSON "truncated"; the table's last line).
func TestSQLEndpointMaxRows(t *testing.T) {
	e := openDB(t)
	h, err := Handler(e, HandlerOptions{MaxSQLRows: 4})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	post := func(format, q string) (*http.Response, string) {
		t.Helper()
		resp, err := http.Post(srv.URL+"/v1/sql?format="+format, "text/plain", strings.NewReader(q))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body := post("json", "SELECT number AS n FROM numbers(10)")
	var jr struct {
		Rows      []map[string]any `json:"rows"`
		MaxRows   int              `json:"max_rows"`
		Truncated *bool            `json:"truncated"`
	}
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &jr) != nil || len(jr.Rows) != 4 || jr.MaxRows != 4 ||
		jr.Truncated == nil || !*jr.Truncated || jr.Rows[3]["n"] != 3.0 ||
		resp.Header.Get(HeaderTruncated) != "true" || resp.Header.Get(HeaderMaxRows) != "4" {
		t.Fatalf("json, 10 rows, cap 4: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	resp, body = post("csv", "SELECT number AS n FROM numbers(10)")
	if resp.StatusCode != 200 || body != "n\n0\n1\n2\n3\n" || resp.Header.Get(HeaderTruncated) != "true" {
		t.Fatalf("csv, 10 rows, cap 4: %d %v %q", resp.StatusCode, resp.Header, body)
	}
	resp, body = post("table", "SELECT number AS n FROM numbers(10)")
	if resp.StatusCode != 200 || !strings.HasSuffix(body, "(4 rows; TRUNCATED: the result has more rows than the limit of 4)\n") {
		t.Fatalf("table, 10 rows, cap 4: %d %q", resp.StatusCode, body)
	}
	// within the cap: all rows, "truncated": false
	resp, body = post("json", "SELECT number AS n FROM numbers(4)")
	jr.Truncated = nil
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &jr) != nil || len(jr.Rows) != 4 || jr.Truncated == nil || *jr.Truncated ||
		resp.Header.Get(HeaderTruncated) != "false" {
		t.Fatalf("json, 4 rows, cap 4: %d %v %s", resp.StatusCode, resp.Header, body)
	}
}
