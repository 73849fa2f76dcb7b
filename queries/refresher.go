package queries

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderflow/orderflow/sinks"
)

// RollupRefresher refreshes the rollups every interval (the transformer runs
// one beside its consumer), each time the months whose facts have not
// changed for an interval: while the transformer drains a backlog into every
// month it waits instead of recomputing them each time. A failed refresh is logged and counted, and
// the reports go on reading the facts for the months it did not refresh.
type RollupRefresher struct {
	eng      sinks.Engine
	interval time.Duration
	log      *slog.Logger
	months   prometheus.Counter
	errors   prometheus.Counter
	seconds  prometheus.Histogram
	last     prometheus.Gauge
}

// NewRollupRefresher registers the refresher's metrics on reg (nil: none).
func NewRollupRefresher(eng sinks.Engine, interval time.Duration, reg prometheus.Registerer, log *slog.Logger) *RollupRefresher {
	r := &RollupRefresher{
		eng: eng, interval: interval, log: log,
		months: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orderflow_rollup_months_refreshed_total",
			Help: "Rollup months recomputed from the facts (customer_months, product_months).",
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orderflow_rollup_refresh_errors_total",
			Help: "Rollup refreshes that failed (the reports read the facts for the months not refreshed).",
		}),
		seconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "orderflow_rollup_refresh_seconds",
			Help:    "Duration of a rollup refresh.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 8),
		}),
		last: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "orderflow_rollup_last_refresh_timestamp_seconds",
			Help: "Unix time of the last successful rollup refresh.",
		}),
	}
	if reg != nil {
		reg.MustRegister(r.months, r.errors, r.seconds, r.last)
	}
	return r
}

// Run refreshes now and then every interval until ctx is done.
func (r *RollupRefresher) Run(ctx context.Context) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		r.Once(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Once runs one refresh and records it in the metrics.
func (r *RollupRefresher) Once(ctx context.Context) {
	t0 := time.Now()
	st, err := RefreshRollupSettled(ctx, r.eng, r.log, r.interval)
	r.months.Add(float64(st.Months))
	if err != nil {
		if ctx.Err() == nil {
			r.errors.Inc()
			r.log.Warn("rollup refresh failed; the reports read the facts for the months it did not refresh", "err", err)
		}
		return
	}
	r.seconds.Observe(time.Since(t0).Seconds())
	r.last.SetToCurrentTime()
}
