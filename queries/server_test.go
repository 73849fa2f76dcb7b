package queries

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/internal/testenv"
	"github.com/orderflow/orderflow/sinks"
	"github.com/orderflow/orderflow/sinks/chserver"
)

// TestSQLEndpointOnServer: POST /v1/sql on a ClickHouse server (the local
// 18.16; its SQL dialect cannot run the reports, which are validated on
// chDB) runs a SELECT and refuses INSERT, ALTER and DROP with 403, leaving
// the data as it was.
func TestSQLEndpointOnServer(t *testing.T) {
	addr := testenv.ClickHouseServerAddr(t)
	ctx := context.Background()
	db := testenv.Name("q")
	e, err := chserver.Open(ctx, chserver.Options{Addr: addr, Database: db})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = e.Exec(context.Background(), "DROP DATABASE IF EXISTS "+sinks.QuoteIdent(db))
		_ = e.Close()
	})
	if err := e.Exec(ctx, "CREATE TABLE t (id Int64, v String) ENGINE = MergeTree ORDER BY id"); err != nil {
		t.Fatal(err)
	}
	if err := e.Insert(ctx, "t", []string{"id", "v"}, [][]any{{int64(1), "a"}, {int64(2), "b"}}); err != nil {
		t.Fatal(err)
	}
	h, err := Handler(e, HandlerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	post := func(q string) (int, string) {
		resp, err := http.Post(srv.URL+"/v1/sql?format=csv", "text/plain", strings.NewReader(q))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := post("SELECT id, v FROM " + db + ".t ORDER BY id"); code != 200 || body != "id,v\n1,a\n2,b\n" {
		t.Fatalf("select: %d %q", code, body)
	}
	for _, q := range []string{
		"INSERT INTO " + db + ".t (id, v) VALUES (3, 'c')",
		"ALTER TABLE " + db + ".t DELETE WHERE id = 1",
		"DROP TABLE " + db + ".t",
	} {
		code, body := post(q)
		var p Problem
		if code != 403 || json.Unmarshal([]byte(body), &p) != nil || p.Type != TypeReadOnly {
			t.Errorf("%s: %d %s, want 403 read-only", q, code, body)
		}
	}
	res, err := e.Query(ctx, "SELECT count() FROM t", nil)
	if err != nil || len(res.Rows) != 1 || res.Rows[0][0] != uint64(2) {
		t.Fatalf("after refused writes: %v %v", res, err)
	}
}
