// Package e2e holds the whole-pipeline tests that run orderflow as real
// processes (built once per test binary) against the real PostgreSQL, Kafka
// and the embedded ClickHouse engine: the order-by-order oracle after a
// generated workload, with the transformer killed by SIGKILL at random
// moments while it runs (TestPipelineOracleWithTransformerKills, 20,000
// orders), and the same oracle plus exact totals by status after a
// 100,000-order load (TestOracle100kOrders; -short runs 5,000).
package e2e
