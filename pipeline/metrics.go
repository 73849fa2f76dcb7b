package pipeline

import "github.com/prometheus/client_golang/prometheus"

// metrics are the transformer's Prometheus series (orderflow_transform_*).
type metrics struct {
	lag       *prometheus.GaugeVec
	batchRows prometheus.Histogram
	flushSecs prometheus.Histogram
	rows      *prometheus.CounterVec
	dlq       *prometheus.CounterVec
	fresh     prometheus.Histogram
	events    *prometheus.CounterVec
	backlog   prometheus.Gauge
	barriers  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "orderflow_transform_consumer_lag",
			Help: "Records in the topic's assigned partitions not yet consumed (high watermark - position).",
		}, []string{"topic"}),
		batchRows: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "orderflow_transform_batch_rows",
			Help:    "Rows per flushed batch (all tables).",
			Buckets: prometheus.ExponentialBuckets(1, 4, 11),
		}),
		flushSecs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "orderflow_transform_flush_seconds",
			Help:    "Time to write one batch to ClickHouse (all tables, retries included).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderflow_transform_rows_total",
			Help: "Rows written to ClickHouse, by table.",
		}, []string{"table"}),
		dlq: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderflow_transform_dlq_total",
			Help: "Events sent to the dead-letter topic, by reason.",
		}, []string{"reason"}),
		fresh: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "orderflow_transform_freshness_seconds",
			Help:    "Time from the PostgreSQL commit to the ClickHouse insert acknowledgement, per event.",
			Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 5, 10, 30, 60},
		}),
		barriers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orderflow_transform_barriers_total",
			Help: "As-of barriers run: last stable offsets listed and the dimension topics read up to them. Caught up, one per poll; on a backlog, one per poll that reaches past the offsets listed last.",
		}),
		backlog: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "orderflow_transform_backlog_mode",
			Help: "1 while the transformer is behind (consumer lag of at least -transform-max-rows events, or a full poll) and batches flush at the backlog limits, else 0.",
		}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderflow_transform_events_total",
			Help: "Change events applied from the consumer group, by topic.",
		}, []string{"topic"}),
	}
	if reg != nil {
		reg.MustRegister(m.lag, m.batchRows, m.flushSecs, m.rows, m.dlq, m.fresh, m.events, m.backlog, m.barriers)
	}
	return m
}
