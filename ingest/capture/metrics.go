package capture

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are capture's Prometheus metrics (orderflow_capture_*).
type Metrics struct {
	Events        *prometheus.CounterVec // table, op
	Bytes         *prometheus.CounterVec // table
	Transactions  prometheus.Counter
	KafkaTxns     prometheus.Counter
	Produce       prometheus.Histogram
	SlotLag       prometheus.Gauge
	LastCommit    prometheus.Gauge
	DLQ           *prometheus.CounterVec // reason
	Streamed      prometheus.Counter
	Heartbeats    prometheus.Counter
	FlushedLSN    prometheus.Gauge
	Restarts      prometheus.Counter
	SkippedTxns   prometheus.Counter
	SpooledChunks prometheus.Counter
}

// NewMetrics registers capture's metrics on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "orderflow_capture_events_total",
			Help: "Change events committed to Kafka, by table and op (c, u, d)."}, []string{"table", "op"}),
		Bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "orderflow_capture_bytes_total",
			Help: "Bytes of change events (key + value) committed to Kafka, by table."}, []string{"table"}),
		Transactions: prometheus.NewCounter(prometheus.CounterOpts{Name: "orderflow_capture_transactions_total",
			Help: "PostgreSQL transactions committed to Kafka."}),
		KafkaTxns: prometheus.NewCounter(prometheus.CounterOpts{Name: "orderflow_capture_kafka_transactions_total",
			Help: "Kafka transactions committed (each covers one or more PostgreSQL transactions)."}),
		Produce: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "orderflow_capture_produce_seconds",
			Help:    "Time to make a Kafka transaction durable: flush every record (acks=all) and commit.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15)}),
		SlotLag: prometheus.NewGauge(prometheus.GaugeOpts{Name: "orderflow_capture_slot_lag_bytes",
			Help: "pg_current_wal_lsn() - confirmed_flush_lsn of the replication slot."}),
		LastCommit: prometheus.NewGauge(prometheus.GaugeOpts{Name: "orderflow_capture_last_commit_timestamp_seconds",
			Help: "PostgreSQL commit time of the last transaction committed to Kafka (unix seconds)."}),
		DLQ: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "orderflow_capture_dlq_total",
			Help: "Changes sent to the dead-letter topic, by reason."}, []string{"reason"}),
		Streamed: prometheus.NewCounter(prometheus.CounterOpts{Name: "orderflow_capture_streamed_transactions_total",
			Help: "Large transactions PostgreSQL streamed before commit (spooled to disk, then produced)."}),
		SpooledChunks: prometheus.NewCounter(prometheus.CounterOpts{Name: "orderflow_capture_stream_chunks_total",
			Help: "Stream Start messages received (chunks of in-progress transactions)."}),
		Heartbeats: prometheus.NewCounter(prometheus.CounterOpts{Name: "orderflow_capture_heartbeats_total",
			Help: "Heartbeat messages (pg_logical_emit_message) received back through the slot."}),
		FlushedLSN: prometheus.NewGauge(prometheus.GaugeOpts{Name: "orderflow_capture_flushed_lsn",
			Help: "LSN reported to PostgreSQL as flushed (everything before it is durable in Kafka)."}),
		Restarts: prometheus.NewCounter(prometheus.CounterOpts{Name: "orderflow_capture_restarts_total",
			Help: "Times the replication session was restarted after an error."}),
		SkippedTxns: prometheus.NewCounter(prometheus.CounterOpts{Name: "orderflow_capture_skipped_transactions_total",
			Help: "Transactions PostgreSQL resent that the Kafka checkpoint shows as already committed."}),
	}
	if reg != nil {
		reg.MustRegister(m.Events, m.Bytes, m.Transactions, m.KafkaTxns, m.Produce, m.SlotLag, m.LastCommit,
			m.DLQ, m.Streamed, m.SpooledChunks, m.Heartbeats, m.FlushedLSN, m.Restarts, m.SkippedTxns)
	}
	return m
}
