// Package status reads a running orderflow process's /metrics and sums up
// where the pipeline is: changes captured, events transformed, fact rows
// written, lags, freshness percentiles and dead-lettered events. `orderflow
// status` and `make demo` print it; it reads only the public metrics, so it
// works against any orderflow process or a Prometheus federation endpoint.
package status

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Snapshot is one reading of the metrics.
type Snapshot struct {
	At               time.Time
	CaptureEvents    float64 // orderflow_capture_events_total
	SlotLagBytes     float64 // orderflow_capture_slot_lag_bytes
	TransformEvents  float64 // orderflow_transform_events_total
	FactRows         float64 // orderflow_transform_rows_total{table="customer_orders"}
	ConsumerLag      float64 // sum of orderflow_transform_consumer_lag
	DLQ              float64 // capture + transform dead-lettered events
	APIRequests      float64 // orderflow_api_requests_total
	HasCapture       bool
	HasTransform     bool
	FreshnessBuckets []Bucket
}

// Bucket is a cumulative histogram bucket.
type Bucket struct {
	UpperBound float64
	Count      float64
}

// Fetch reads url (an orderflow HTTP address or its /metrics URL).
func Fetch(ctx context.Context, url string) (*Snapshot, error) {
	if !strings.HasSuffix(url, "/metrics") {
		url = strings.TrimSuffix(url, "/") + "/metrics"
	}
	if !strings.Contains(url, "://") {
		url = "http://" + url
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("read metrics from %s: %w (is orderflow running?)", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("read metrics from %s: HTTP %d", url, resp.StatusCode)
	}
	return Parse(resp.Body)
}

// Parse reads the Prometheus text format.
func Parse(r io.Reader) (*Snapshot, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parse metrics: %w", err)
	}
	s := &Snapshot{At: time.Now()}
	sum := func(name string, match func(*dto.Metric) bool) (float64, bool) {
		f, ok := fams[name]
		if !ok {
			return 0, false
		}
		var t float64
		for _, m := range f.GetMetric() {
			if match != nil && !match(m) {
				continue
			}
			switch {
			case m.Counter != nil:
				t += m.Counter.GetValue()
			case m.Gauge != nil:
				t += m.Gauge.GetValue()
			case m.Untyped != nil:
				t += m.Untyped.GetValue()
			}
		}
		return t, true
	}
	label := func(k, v string) func(*dto.Metric) bool {
		return func(m *dto.Metric) bool {
			for _, l := range m.GetLabel() {
				if l.GetName() == k {
					return l.GetValue() == v
				}
			}
			return false
		}
	}
	s.CaptureEvents, s.HasCapture = sum("orderflow_capture_events_total", nil)
	s.SlotLagBytes, _ = sum("orderflow_capture_slot_lag_bytes", nil)
	s.TransformEvents, s.HasTransform = sum("orderflow_transform_events_total", nil)
	s.FactRows, _ = sum("orderflow_transform_rows_total", label("table", "customer_orders"))
	s.ConsumerLag, _ = sum("orderflow_transform_consumer_lag", nil)
	d1, _ := sum("orderflow_capture_dlq_total", nil)
	d2, _ := sum("orderflow_transform_dlq_total", nil)
	s.DLQ = d1 + d2
	s.APIRequests, _ = sum("orderflow_api_requests_total", nil)
	if f, ok := fams["orderflow_transform_freshness_seconds"]; ok {
		for _, m := range f.GetMetric() {
			if h := m.GetHistogram(); h != nil {
				for i, b := range h.GetBucket() {
					if i >= len(s.FreshnessBuckets) {
						s.FreshnessBuckets = append(s.FreshnessBuckets, Bucket{UpperBound: b.GetUpperBound()})
					}
					s.FreshnessBuckets[i].Count += float64(b.GetCumulativeCount())
				}
				n := len(h.GetBucket())
				if n == len(s.FreshnessBuckets) {
					// +Inf bucket: the sample count
					s.FreshnessBuckets = append(s.FreshnessBuckets, Bucket{UpperBound: math.Inf(1)})
				}
				s.FreshnessBuckets[len(s.FreshnessBuckets)-1].Count += float64(h.GetSampleCount())
			}
		}
	}
	return s, nil
}

// Quantile estimates the q-quantile of freshness between two snapshots
// (prev may be nil for "since start") by linear interpolation inside the
// bucket, like PromQL's histogram_quantile. NaN when there are no samples.
func Quantile(q float64, prev, cur *Snapshot) float64 {
	b := make([]Bucket, len(cur.FreshnessBuckets))
	copy(b, cur.FreshnessBuckets)
	if prev != nil && len(prev.FreshnessBuckets) == len(b) {
		for i := range b {
			b[i].Count -= prev.FreshnessBuckets[i].Count
		}
	}
	sort.Slice(b, func(i, j int) bool { return b[i].UpperBound < b[j].UpperBound })
	if len(b) == 0 || b[len(b)-1].Count <= 0 {
		return math.NaN()
	}
	rank := q * b[len(b)-1].Count
	lower, lowerCount := 0.0, 0.0
	for _, bk := range b {
		if bk.Count >= rank {
			if math.IsInf(bk.UpperBound, 1) {
				return lower
			}
			if bk.Count == lowerCount {
				return bk.UpperBound
			}
			return lower + (bk.UpperBound-lower)*(rank-lowerCount)/(bk.Count-lowerCount)
		}
		lower, lowerCount = bk.UpperBound, bk.Count
	}
	return lower
}

// Line renders cur (with rates against prev when given) on one line.
func Line(prev, cur *Snapshot) string {
	var b strings.Builder
	rate := func(now, before float64) string {
		if prev == nil {
			return ""
		}
		dt := cur.At.Sub(prev.At).Seconds()
		if dt <= 0 {
			return ""
		}
		return fmt.Sprintf(" (%.0f/s)", (now-before)/dt)
	}
	pv := func(f func(*Snapshot) float64) float64 {
		if prev == nil {
			return 0
		}
		return f(prev)
	}
	if cur.HasCapture {
		fmt.Fprintf(&b, "captured %.0f changes%s, slot lag %s", cur.CaptureEvents,
			rate(cur.CaptureEvents, pv(func(s *Snapshot) float64 { return s.CaptureEvents })), bytesText(cur.SlotLagBytes))
	}
	if cur.HasTransform {
		if b.Len() > 0 {
			b.WriteString(" | ")
		}
		fmt.Fprintf(&b, "transformed %.0f events%s, %.0f order facts written, consumer lag %.0f",
			cur.TransformEvents, rate(cur.TransformEvents, pv(func(s *Snapshot) float64 { return s.TransformEvents })),
			cur.FactRows, cur.ConsumerLag)
		p50, p99 := Quantile(0.5, prev, cur), Quantile(0.99, prev, cur)
		if !math.IsNaN(p50) {
			fmt.Fprintf(&b, ", freshness p50 %s p99 %s", secText(p50), secText(p99))
		}
	}
	if cur.DLQ > 0 {
		fmt.Fprintf(&b, " | dead-lettered %.0f", cur.DLQ)
	}
	if b.Len() == 0 {
		return "no pipeline metrics yet"
	}
	return b.String()
}

func secText(s float64) string {
	if s < 1 {
		return fmt.Sprintf("%.0fms", s*1000)
	}
	return fmt.Sprintf("%.2fs", s)
}

func bytesText(n float64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", n/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", n/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", n/(1<<10))
	}
	return fmt.Sprintf("%.0f B", n)
}
