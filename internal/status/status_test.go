package status

import (
	"math"
	"strings"
	"testing"
	"time"
)

const metricsA = `# TYPE orderflow_capture_events_total counter
orderflow_capture_events_total{op="c",table="orders"} 100
orderflow_capture_events_total{op="u",table="orders"} 50
# TYPE orderflow_capture_slot_lag_bytes gauge
orderflow_capture_slot_lag_bytes 2048
# TYPE orderflow_transform_events_total counter
orderflow_transform_events_total{topic="x"} 140
# TYPE orderflow_transform_rows_total counter
orderflow_transform_rows_total{table="customer_orders"} 90
orderflow_transform_rows_total{table="order_lines"} 300
# TYPE orderflow_transform_consumer_lag gauge
orderflow_transform_consumer_lag{topic="a"} 3
orderflow_transform_consumer_lag{topic="b"} 7
# TYPE orderflow_transform_freshness_seconds histogram
orderflow_transform_freshness_seconds_bucket{le="0.1"} 10
orderflow_transform_freshness_seconds_bucket{le="0.5"} 90
orderflow_transform_freshness_seconds_bucket{le="1"} 100
orderflow_transform_freshness_seconds_bucket{le="+Inf"} 100
orderflow_transform_freshness_seconds_sum 30
orderflow_transform_freshness_seconds_count 100
`

func TestParseAndLine(t *testing.T) {
	s, err := Parse(strings.NewReader(metricsA))
	if err != nil {
		t.Fatal(err)
	}
	if s.CaptureEvents != 150 || s.FactRows != 90 || s.ConsumerLag != 10 || s.SlotLagBytes != 2048 {
		t.Fatalf("snapshot = %+v", s)
	}
	// 50 of 100 samples: rank 50 lies in (0.1, 0.5] holding samples 10..90 -> 0.1 + 0.4*40/80 = 0.3
	if p50 := Quantile(0.5, nil, s); math.Abs(p50-0.3) > 1e-9 {
		t.Fatalf("p50 = %v, want 0.3", p50)
	}
	if p99 := Quantile(0.99, nil, s); math.Abs(p99-0.95) > 1e-9 {
		t.Fatalf("p99 = %v, want 0.95", p99)
	}
	prev := *s
	prev.At = s.At.Add(-2 * time.Second)
	prev.CaptureEvents = 50
	line := Line(&prev, s)
	for _, want := range []string{"captured 150 changes (50/s)", "slot lag 2.0 KiB", "90 order facts written", "consumer lag 10"} {
		if !strings.Contains(line, want) {
			t.Errorf("line %q lacks %q", line, want)
		}
	}
	if q := Quantile(0.5, s, s); !math.IsNaN(q) {
		t.Fatalf("no new samples between equal snapshots: got %v, want NaN", q)
	}
}
