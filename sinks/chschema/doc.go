// Package chschema holds the ClickHouse query-side schema as numbered,
// embedded migrations (NNNN_name.sql, one statement per file), applied in
// order by `orderflow migrate` (sinks/chmigrate). Table names are
// unqualified: they resolve in the engine's database.
//
// Tables: raw_<table> mirrors of every captured table, the dimensions
// customers, products, campaigns and customer_history, the facts
// customer_orders and order_lines, change_log, and the reports' monthly
// rollups of the facts (customer_months, place_months, product_months and
// rollup_refreshes, written only by queries.RefreshRollup). Every versioned
// table is a ReplacingMergeTree(_version[, _is_deleted]) with _version = the
// commit LSN of the change that produced the row; read it with FINAL.
package chschema

import "embed"

// Migrations are the schema's migration files at the root of the FS.
//
//go:embed *.sql
var Migrations embed.FS
