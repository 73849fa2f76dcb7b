package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orderflow/orderflow/internal/testenv"
)

// TestRunEndToEnd starts `orderflow run` (in-process, real PostgreSQL, Kafka
// and the embedded engine), sends commands to its API and waits until the
// order is a fact visible through its report and SQL APIs, with the customer
// attributes it had when the order was placed.
func TestRunEndToEnd(t *testing.T) {
	pgURL := testenv.Postgres(t)
	brokers := testenv.KafkaBrokers(t)
	lib := testenv.ChdbLib(t)
	ns := testenv.Name("run")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	env := map[string]string{
		"ORDERFLOW_PG_URL": pgURL, "ORDERFLOW_PG_SLOT": ns, "ORDERFLOW_PG_PUBLICATION": ns,
		"ORDERFLOW_KAFKA_BROKERS": strings.Join(brokers, ","), "ORDERFLOW_KAFKA_TOPIC_PREFIX": ns,
		"ORDERFLOW_TRANSFORM_GROUP": ns, "ORDERFLOW_CHDB_LIB": lib, "ORDERFLOW_CHDB_PATH": t.TempDir(),
		"ORDERFLOW_HTTP_ADDR": addr, "ORDERFLOW_LOG_LEVEL": "warn", "ORDERFLOW_ROLLUP_INTERVAL": "1s",
	}
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncWriter{w: new(bytes.Buffer)}
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"run", "-migrate"}, io.Discard, logs, func(k string) string { return env[k] })
	}()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("orderflow run log:\n%s", logs.String())
		}
		cancel()
		select {
		case code := <-done:
			if code != exitOK {
				t.Errorf("orderflow run exited %d on shutdown", code)
			}
		case <-time.After(60 * time.Second):
			t.Error("orderflow run did not shut down within 60s")
		}
	})
	base := "http://" + addr
	waitFor(t, 2*time.Minute, "orderflow run ready", func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	call := func(method, path, body string, out any) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode/100 != 2 {
			t.Fatalf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, b)
		}
		if out != nil {
			if err := json.Unmarshal(b, out); err != nil {
				t.Fatalf("%s %s: %v: %s", method, path, err, b)
			}
		}
	}
	var cust, prod, order struct {
		ID int64 `json:"id"`
	}
	call("POST", "/v1/customers", `{"name":"Ada Lovelace","email":"ada@example.com","segment":"gold","region":"europe","country":"GB","city":"London"}`, &cust)
	call("POST", "/v1/products", `{"sku":"BOOK-1","name":"Notes","category":"books","price":"12.50"}`, &prod)
	call("POST", "/v1/orders", fmt.Sprintf(`{"customer_id":%d,"items":[{"product_id":%d,"quantity":2}]}`, cust.ID, prod.ID), &order)
	call("POST", fmt.Sprintf("/v1/orders/%d/pay", order.ID), `{}`, nil)
	// After the order, the customer moves up a segment: the fact keeps "gold".
	call("PATCH", fmt.Sprintf("/v1/customers/%d", cust.ID), `{"segment":"platinum"}`, nil)

	today := time.Now().UTC().Format(time.DateOnly)
	var report struct {
		Rows []map[string]any `json:"rows"`
	}
	waitFor(t, 2*time.Minute, "the order in report segment_performance", func() bool {
		resp, err := http.Get(base + "/v1/reports/segment_performance?from=" + today + "&to=" + today + "&format=json")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		report.Rows = nil
		if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&report) != nil {
			return false
		}
		return len(report.Rows) == 1
	})
	row := report.Rows[0]
	if fmt.Sprint(row["segment"]) != "gold" || fmt.Sprint(row["orders"]) != "1" || fmt.Sprint(row["revenue"]) != "25" && fmt.Sprint(row["revenue"]) != "25.00" {
		t.Fatalf("segment_performance row = %v, want segment gold (as of the order), 1 order, revenue 25.00", row)
	}
	// The fact itself, through the read-only SQL API: paid, as-of segment.
	var got string
	waitFor(t, time.Minute, "the paid status in customer_orders", func() bool {
		resp, err := http.Post(base+"/v1/sql?format=csv", "text/plain",
			strings.NewReader(fmt.Sprintf("SELECT status, customer_segment, total FROM customer_orders FINAL WHERE order_id = %d", order.ID)))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got = strings.ReplaceAll(strings.TrimSpace(string(b)), `"`, "")
		return strings.HasSuffix(got, "paid,gold,25.00") || strings.HasSuffix(got, "paid,gold,25")
	})
	// The transformer's rollup refresh (every second here) catches up with
	// the facts, and the month's report is then read from the rollup with
	// the same answer.
	monthStart := time.Now().UTC().Format("2006-01") + "-01"
	monthEnd := time.Date(time.Now().UTC().Year(), time.Now().UTC().Month()+1, 0, 0, 0, 0, 0, time.UTC).Format(time.DateOnly)
	nextMonth := time.Date(time.Now().UTC().Year(), time.Now().UTC().Month()+1, 1, 0, 0, 0, 0, time.UTC).Format(time.DateOnly)
	var monthly struct {
		RollupMonths []string         `json:"rollup_months"`
		Rows         []map[string]any `json:"rows"`
	}
	waitFor(t, time.Minute, "sales_by_month_segment read from the refreshed rollup", func() bool {
		resp, err := http.Get(base + "/v1/reports/sales_by_month_segment?from=" + monthStart + "&to=" + monthEnd + "&format=json")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		monthly.RollupMonths, monthly.Rows = nil, nil
		if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&monthly) != nil {
			return false
		}
		return strings.Join(monthly.RollupMonths, "..") == monthStart+".."+nextMonth
	})
	if len(monthly.Rows) != 1 || fmt.Sprint(monthly.Rows[0]["segment"]) != "gold" || fmt.Sprint(monthly.Rows[0]["orders"]) != "1" || fmt.Sprint(monthly.Rows[0]["customers"]) != "1" {
		t.Fatalf("sales_by_month_segment from the rollup = %v, want one row: gold, 1 order, 1 customer", monthly.Rows)
	}
	// the counter is added to when the whole refresh returns, a moment after
	// its months are recorded (and read by the report above)
	var metrics []byte
	waitFor(t, 30*time.Second, "orderflow_rollup_months_refreshed_total > 0", func() bool {
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		metrics, _ = io.ReadAll(resp.Body)
		return regexp.MustCompile(`(?m)^orderflow_rollup_months_refreshed_total [1-9]`).Match(metrics)
	})
	if !regexp.MustCompile(`(?m)^orderflow_rollup_refresh_errors_total 0$`).Match(metrics) {
		t.Errorf("metrics: rollup refresh errors:\n%s", regexp.MustCompile(`(?m)^orderflow_rollup.*$`).FindAll(metrics, -1))
	}

	// A write through /v1/sql is refused.
	resp, err := http.Post(base+"/v1/sql", "text/plain", strings.NewReader("DROP TABLE customer_orders"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 4 {
		t.Fatalf("DROP TABLE through /v1/sql: HTTP %d, want a 4xx refusal", resp.StatusCode)
	}
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// syncWriter serialises the stages' log writes into one buffer.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.String()
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
