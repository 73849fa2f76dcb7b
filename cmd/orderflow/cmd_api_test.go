package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/internal/testenv"
)

// TestAPICommand starts `orderflow api` like an operator would and talks to it.
func TestAPICommand(t *testing.T) {
	url := testenv.Postgres(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	var out, errb bytes.Buffer
	go func() {
		done <- Main(ctx, []string{"api", "-pg-url", url, "-http-addr", addr, "-api-token", "s3cret", "-migrate"}, &out, &errb, func(string) string { return "" })
	}()
	base := "http://" + addr
	deadline := time.Now().Add(15 * time.Second)
	for {
		res, err := http.Get(base + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("api not ready: %v; stderr %s", err, errb.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	call := func(method, path, body, token string) (int, string) {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	customer := `{"name":"Ada","email":"ada@example.com","segment":"gold","region":"europe","country":"GB","city":"London"}`
	if code, body := call("POST", "/v1/customers", customer, ""); code != 401 {
		t.Fatalf("no token: %d %s", code, body)
	}
	if code, body := call("POST", "/v1/customers", customer, "s3cret"); code != 201 {
		t.Fatalf("create customer: %d %s", code, body)
	}
	if code, body := call("GET", "/openapi.json", "", ""); code != 200 || !strings.Contains(body, `"openapi"`) {
		t.Fatalf("openapi.json: %d", code)
	}
	if code, body := call("GET", "/metrics", "", ""); code != 200 || !strings.Contains(body, `orderflow_api_requests_total{command="create_customer",status="201"} 1`) {
		t.Fatalf("metrics: %d %s", code, body)
	}
	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Fatalf("api exited %d: %s", code, errb.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("api did not stop")
	}
}
