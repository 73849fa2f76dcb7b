package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/internal/testenv"
)

// TestServesWithoutLibchdb runs a ClickHouse-using subcommand against the
// ClickHouse server with libchdb.so pointed at a path that does not exist:
// the embedded engine is never loaded, and /metrics, /healthz and /readyz
// answer.
func TestServesWithoutLibchdb(t *testing.T) {
	chAddr := testenv.ClickHouseServerAddr(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	env := map[string]string{
		"ORDERFLOW_CLICKHOUSE_ENGINE": "server", "ORDERFLOW_CLICKHOUSE_ADDR": chAddr,
		"ORDERFLOW_CLICKHOUSE_DATABASE": testenv.Name("nolib"),
		"ORDERFLOW_CHDB_LIB":            "/nonexistent/libchdb.so", "ORDERFLOW_HTTP_ADDR": addr, "ORDERFLOW_LOG_LEVEL": "warn",
		"ORDERFLOW_SQL_MAX_ROWS": "5",
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"reports-api"}, io.Discard, io.Discard, func(k string) string { return env[k] })
	}()
	defer func() {
		cancel()
		if code := <-done; code != exitOK {
			t.Errorf("exit code %d after shutdown", code)
		}
	}()
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := get("/readyz")
		if code == http.StatusOK {
			break
		}
		select {
		case c := <-done:
			t.Fatalf("reports-api exited with %d before serving (libchdb must not be needed)", c)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never 200: %d %s", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, body := get("/v1/reports"); code != http.StatusOK || !strings.Contains(body, "daily_sales") {
		t.Fatalf("/v1/reports: %d %.200s", code, body)
	}
	code, body := get("/metrics")
	if code != http.StatusOK || !strings.Contains(body, "go_goroutines") || !strings.Contains(body, "orderflow_queries_") {
		t.Fatalf("/metrics: %d, body lacks the runtime or orderflow metrics", code)
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz: %d", code)
	}
	// ORDERFLOW_SQL_MAX_ROWS caps analyst SQL and the cut is signalled.
	resp, err := http.Post("http://"+addr+"/v1/sql?format=csv", "text/plain", strings.NewReader("SELECT number FROM system.numbers LIMIT 20"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if resp.StatusCode != http.StatusOK || len(lines) != 6 || resp.Header.Get("Orderflow-Truncated") != "true" {
		t.Fatalf("/v1/sql with ORDERFLOW_SQL_MAX_ROWS=5: HTTP %d, %d lines (want header + 5), Orderflow-Truncated %q\n%s",
			resp.StatusCode, len(lines), resp.Header.Get("Orderflow-Truncated"), b)
	}
}
