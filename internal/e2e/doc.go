// Package e2e holds the whole-pipeline tests that run orderflow as real
// processes (built once per test binary) against the real PostgreSQL, Kafka
// and the embedded ClickHouse engine: the order-by-order oracle after a
// generated workload, with the transformer killed by SIGKILL at random
// moments while it runs.
package e2e
