// Package smoke holds one integration test per service of the local stack,
// each asserting a value the rest of orderflow depends on: PostgreSQL streams
// a change through pgoutput, Kafka round-trips records including a
// transaction read with read_committed. (The ClickHouse engines' smoke tests
// live with them in sinks/.)
package smoke
