package load

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkDirect measures the direct path: each iteration loads 5000
// orders (with their customers and lifecycle commands) into an emptied
// database.
//
//	go test -run '^$' -bench Direct -benchtime 3x ./ingest/load/
func BenchmarkDirect(b *testing.B) {
	conn := migratedConn(b)
	ctx := context.Background()
	var orders, cmds int
	var secs float64
	for i := 0; i < b.N; i++ {
		sum, err := RunDirect(ctx, conn, Params{Seed: uint64(i), Customers: 1000, Orders: 5000}, Options{}, true)
		if err != nil {
			b.Fatal(err)
		}
		orders, cmds, secs = orders+sum.Orders, cmds+sum.Events, secs+sum.Elapsed.Seconds()
	}
	b.ReportMetric(float64(orders)/secs, "orders/s")
	b.ReportMetric(float64(cmds)/secs, "commands/s")
}

// BenchmarkHTTP measures the HTTP path of the generator against an
// in-process API (32 clients): each iteration sends 2000 orders with
// their customers and lifecycle commands.
//
//	go test -run '^$' -bench HTTP -benchtime 2x ./ingest/load/
func BenchmarkHTTP(b *testing.B) {
	ts, _ := apiServer(b, "")
	ctx := context.Background()
	var orders, cmds int
	var secs float64
	for i := 0; i < b.N; i++ {
		sum, err := RunHTTP(ctx, &Client{Base: ts.URL, HTTP: ts.Client()}, Params{Seed: uint64(i), Customers: 400, Orders: 2000, Products: 100, Namespace: fmt.Sprintf("b%d", i)}, Options{Concurrency: 32})
		if err != nil {
			b.Fatal(err)
		}
		orders, cmds, secs = orders+sum.Orders, cmds+sum.Events, secs+sum.Elapsed.Seconds()
	}
	b.ReportMetric(float64(orders)/secs, "orders/s")
	b.ReportMetric(float64(cmds)/secs, "commands/s")
}
