// Package replay is `orderflow replay`: it rebuilds ClickHouse tables from
// the Kafka log into shadow tables and swaps them in atomically, so readers
// never see an empty or half-built table.
//
// Consumes: <prefix>.<schema>.{customers,products,campaigns,order_items,
// orders} from the start of every partition, read_committed, outside any
// consumer group (no offsets are committed; the transformer's group is not
// touched). Dimension topics and order items are applied first (every
// version, so every as-of join has its answer), then orders, through the
// transformer's own pure core (pipeline.State and pipeline.Batch): the rows
// are those the transformer derives, column for column.
//
// Emits: for each rebuilt table T (--tables, default all twelve outputs),
// T__shadow (CREATE TABLE ... AS T), filled up to the topics' last stable
// offsets, then topped up to the new ends (the transformer kept writing T
// meanwhile), then swapped with EXCHANGE TABLES T AND T__shadow (atomic in an
// Atomic database, which chDB and ClickHouse use by default) and the old
// data dropped. Events that arrived during the swap are applied to the live
// table afterwards (versioned rows: applying one twice changes nothing), so
// nothing the transformer wrote into the old table is lost.
//
// Date range (--from/--to): the facts (customer_orders, order_lines) placed
// in [from, to) are re-derived into the shadow and swapped in partition by
// partition (ALTER TABLE T REPLACE PARTITION yyyymm FROM T__shadow, atomic
// per partition). The facts are partitioned by month of placement, so the
// range is rounded out to whole months; other months are not touched.
//
// Memory: the join state of the whole log (as a transformer that owns every
// orders partition). With the embedded engine (chDB), which one process
// owns, run replay while the transformer process is stopped; with a
// ClickHouse server both can run together.
//
// Truncated log: a captured topic whose log no longer starts at offset 0
// (retention or DeleteRecords removed events) would leave their rows out of
// the rebuild; replay then fails before the swap, naming the partition,
// unless Options.AllowTruncatedLog (-allow-truncated-log) says a backfill
// has republished the current rows.
//
// See ingest/backfill for when to use backfill or replay and the Kafka
// retention replay needs.
package replay
