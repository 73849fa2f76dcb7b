// Package queries is the query side users see: the prebuilt reports (one
// embedded .sql file each, with a header comment and typed ClickHouse query
// parameters), their runner and output formats (aligned table, CSV, JSON),
// the HTTP report API (GET /v1/reports, GET /v1/reports/{name}) and the
// read-only analyst SQL endpoint (POST /v1/sql).
//
// Consumes: the ClickHouse query side built by the pipeline (customer_orders,
// order_lines, products, campaigns), read with FINAL and _is_deleted = 0, so
// a replayed or retried event never changes an answer. Reports declaring
// "@rollup" read the whole months of their period whose monthly rollup
// (customer_months, place_months, product_months) is current from it and
// everything else from the facts, with the same answer (rollup.go);
// RefreshRollup and RollupRefresher keep the rollups current.
//
// What counts as a sale, in every report: an order that is not deleted and
// whose status is not cancelled or refunded. Its value is its total (after
// discount), its date is placed_at (UTC), and its customer attributes
// (segment, region, country) are the customer's when it was placed. Date
// parameters are UTC days and both ends of a period are inclusive.
//
// Parameters are validated in Go against the report's declared type before
// the query runs and are sent to ClickHouse as typed query parameters
// ({name:Type}); user input never becomes SQL text. Analyst SQL runs on the
// engine's read-only session (readonly = 1): the engine itself refuses
// INSERT, ALTER, DROP, CREATE and SET.
package queries
