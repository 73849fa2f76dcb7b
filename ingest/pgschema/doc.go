// Package pgschema owns the command side's PostgreSQL schema: numbered SQL
// migrations (migrations/NNNN_name.sql, embedded) and Migrate, which applies
// the pending ones.
//
// Contract:
//   - Consumes: a PostgreSQL connection (pool or conn).
//   - Produces: tables customers, products, campaigns, orders, order_items in
//     schema public (bigint identity primary keys, which capture uses as event
//     keys; created_at/updated_at set by the writer), and bookkeeping tables
//     orderflow_internal.schema_migrations and orderflow_internal.idempotency_keys.
//   - Guarantee: Migrate is idempotent and all-or-nothing; it runs every
//     pending migration in one transaction under a transaction-level advisory
//     lock, so concurrent `orderflow migrate` runs serialise safely. Numbers
//     start at 0001 and have no gaps or duplicates (a test enforces it).
//   - Migrations are append-only: never edit a released file, add the next
//     number instead.
package pgschema
