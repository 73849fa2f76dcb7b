package benchrun

import (
	"math"
	"strings"
	"testing"
)

func TestParseGoBench(t *testing.T) {
	out := `goos: linux
BenchmarkReports/daily_sales-2         	       5	  95123456 ns/op	        95.00 ms/median	        80.0 cpu-ms/op
BenchmarkBackfill-2   	       1	569000000000 ns/op	    328000 copy_rows/s	    133000 publish_rows/s	      6200 fact_rows/s
PASS`
	got := ParseGoBench(strings.NewReader(out), map[string]string{"ms/median": "<= 500 ms", "fact_rows/s": ">= 250000"})
	want := []Extra{
		{"Reports/daily_sales", 95, "ms/median", "<= 500 ms"},
		{"Reports/daily_sales", 80, "cpu-ms/op", ""},
		{"Backfill", 328000, "copy_rows/s", ""},
		{"Backfill", 133000, "publish_rows/s", ""},
		{"Backfill", 6200, "fact_rows/s", ">= 250000"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d figures %v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("figure %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestPercentile(t *testing.T) {
	xs := []float64{10, 20, 30, 40, 50, 60, 70, 80, 90, 100}
	if p := pct(xs, 0.5); p != 50 {
		t.Fatalf("p50 = %v", p)
	}
	if p := pct(xs, 0.99); p != 100 {
		t.Fatalf("p99 = %v", p)
	}
	if p := pct(nil, 0.5); !math.IsNaN(p) {
		t.Fatalf("empty p50 = %v", p)
	}
}
