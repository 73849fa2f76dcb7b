package api

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkPlaceOrder measures orders/s through the API over real HTTP
// with 16 x GOMAXPROCS concurrent clients, each order 1-3 lines on a
// 50-product catalogue, 1000 customers.
//
//	go test -run '^$' -bench PlaceOrder -benchtime 5000x ./ingest/api/
func BenchmarkPlaceOrder(b *testing.B) {
	f := newFixture(b, "")
	for i := 0; i < 1000; i++ {
		f.mustDo(201, "POST", "/v1/customers", fmt.Sprintf(`{"name":"C %d","email":"c%d@example.com","segment":"silver","region":"europe","country":"FR","city":"Paris"}`, i, i))
	}
	for i := 0; i < 50; i++ {
		f.mustDo(201, "POST", "/v1/products", fmt.Sprintf(`{"sku":"B%d","name":"P","category":"c","price":"%d.99"}`, i, i+1))
	}
	f.mustDo(201, "POST", "/v1/campaigns", `{"code":"BENCH","name":"b","starts_at":"2025-01-01T00:00:00Z","ends_at":"2026-01-01T00:00:00Z","discount_percent":10}`)
	ts := httptest.NewServer(f.h)
	defer ts.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	client := &http.Client{Transport: tr}
	var n atomic.Int64
	b.SetParallelism(16)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			campaign := ""
			if i%3 == 0 {
				campaign = `"campaign_code":"BENCH",`
			}
			body := fmt.Sprintf(`{"customer_id":%d,%s"items":[{"product_id":%d,"quantity":1},{"product_id":%d,"quantity":2}]}`, i%1000+1, campaign, i%50+1, (i*7)%50+1)
			req, _ := http.NewRequest("POST", ts.URL+"/v1/orders", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Idempotency-Key", fmt.Sprintf("bench-%d", i))
			res, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != 201 {
				b.Errorf("status %d", res.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "orders/s")
}
