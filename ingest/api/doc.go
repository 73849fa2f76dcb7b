// Package api is the command API of orderflow's write model (`orderflow
// api`): HTTP+JSON commands that create and update customers, products and
// campaigns, place orders and move them through their status machine
// (pay, ship, deliver, cancel, refund; see domain.Actions), described by the
// OpenAPI document served at /openapi.json.
//
// Contract:
//   - Consumes: HTTP requests (optional bearer token, optional
//     Idempotency-Key), the PostgreSQL schema of ingest/pgschema.
//   - Emits: rows in customers, products, campaigns, orders, order_items.
//     Capture (ingest/capture) turns their commits into Kafka events; the API
//     never talks to Kafka.
//   - Guarantee: every command is exactly one transaction: the row changes,
//     server-side pricing (prices from products, the campaign discount when
//     its window contains now, totals) and the idempotency record commit
//     together or not at all. A request rejected with a 4xx wrote nothing.
//     A retried request with the same Idempotency-Key returns the first
//     response and writes nothing; the same key with another request is 422.
//   - Acknowledges (2xx) only after the transaction committed.
//   - Errors are RFC 9457 problem+json with one type per class of bad input
//     (problem.go) and field-level reasons as JSON Pointers.
//   - Metrics: orderflow_api_requests_total{command,status},
//     orderflow_api_request_duration_seconds{command},
//     orderflow_api_idempotent_replays_total{command},
//     orderflow_api_requests_in_flight.
package api
