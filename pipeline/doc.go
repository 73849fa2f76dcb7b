// Package pipeline is `orderflow transform`: it consumes the captured topics
// and builds the ClickHouse query side.
//
// Consumes: <prefix>.<schema>.{customers,products,campaigns,orders,order_items}
// (envelope package: ours or Debezium's), read_committed.
//
//   - Every topic is consumed in one Kafka consumer group (scale out by adding
//     processes). The group path writes each event's raw-mirror row and
//     change_log row, the dimension and customer_history rows, and for orders
//     the customer_orders fact and the order's order_lines.
//   - The join state is read outside the group by every instance: customers,
//     products and campaigns (every version, LSN-ordered) and order_items
//     (every version, grouped by order) are read from the start of every
//     partition on start-up (state restore; no ClickHouse reads). order_items
//     is keyed by item id, so it is not co-partitioned with orders: instead
//     every instance holds every item and an order's fact is derived by the
//     owner of the order's partition from state that includes its items.
//   - Order state (needed for the placement LSN, deletes with key-only
//     "before" images and TOAST) is rebuilt per owned orders partition: on
//     assignment the partition is re-read from its start, events below the
//     committed offset only rebuild state, events from it on produce rows.
//
// As-of joins: capture writes Kafka transactions in commit-LSN order. After
// each poll, before applying the polled events, the dimension topics are read
// up to their last stable offsets (a barrier), so every dimension change
// committed before a fact event is in state. A poll whose records all lie
// below the offsets the last barrier listed (a backlog) needs none: they
// were committed before that listing, and so was every dimension change
// before them. A fact's customer and campaign
// are the versions in force at the order's INSERT LSN; items and products are
// as of the order event's LSN. Should a customer event, or an item committed
// at or before the order event, still arrive after the fact was written (a
// producer that does not honour the order above, a barrier that gave up), the
// affected owned facts are re-derived: no fact keeps "unknown" or stale
// attributes.
//
// Emits: rows with _version = the commit LSN of the change (facts: of the
// order event; every item version used is at or below it) and _is_deleted;
// ReplacingMergeTree keeps the newest, so replays and retries change nothing
// after FINAL, and an older event replayed never overwrites a newer row.
// Within a batch rows are coalesced per key, and an order changed several
// times in one poll (placed, then paid) has its fact derived once, at the
// end of the poll, from the state its last event left. change_log rows carry a content
// hash so a redelivered event collapses into the original.
//
// Delivery: effectively once. Batches flush at -transform-max-rows, -bytes or
// -age (default 200 ms); while the transformer is behind (a consumer lag of
// at least -transform-max-rows events, or a full poll) at the larger
// -transform-backlog-max-* limits instead (default 400,000 rows, 128 MiB,
// 3 s): freshness is off by seconds then anyway, and large parts cost the
// engine far less per row to insert and merge. The consumer's buffers are
// bounded and a flush blocks consumption (backpressure). Offsets are committed only after every table of
// the batch is written; a revoked partition is flushed and committed first.
// A write that fails past its retries ends the process's writing for good:
// no later batch is written or committed (not even the one flushed when the
// group is left), since its offsets would cover the failed batch's events;
// the restarted transformer redoes them from the last commit.
// A poison event goes to <prefix>.dlq (headers: reason, error, source
// topic/partition/offset) before its offset is committed; the stream goes on.
//
// Decoding: one pass over the record (go-faster/jx), row images decoded
// straight into compact typed structs (low-cardinality text as 4-byte
// symbols); Debezium's schema wrapper and TOAST placeholder are handled as in
// package envelope. Decoding is a pure function of the record, so it runs
// ahead on every core: a poll's records are decoded (envelope, primary key,
// image parsed with a mask of the fields it sets, change_log text and
// event_id) in chunks of 256 while the barrier reads the dimension topics,
// and the sequential apply takes each chunk as soon as it is decoded; it
// only lays the parsed fields over the previous state (TOAST carry-forward;
// an image that sets every column needs no previous state) and builds rows.
//
// Batches are held column by column (typed slices, nothing boxed) and
// written to the embedded engine with chdb.Engine.InsertColumns (the Native
// block Insert would build, byte for byte); other writers get rows. The
// facts' and change_log's rows are kept as structs by the apply and laid out
// in columns by the batch's writer, which runs beside the next batch's
// apply: the two take about the same time per batch.
//
// Throughput (BenchmarkDrain, 100,000 orders = 351,100 events, 300,000 fact
// rows, this 2-core box, quiet): 53,500 fact rows/s and 62,700 events/s end
// to end, 70,000 fact rows/s after the state load and group join (was
// 35,000, 40,900 and 46,300), at 32 µs of process CPU per fact row
// (transformer, inserts, merges; was 47). Freshness at 5,000 changes/s:
// p50 0.18 s, p99 0.32 s. See README.md (Performance).
//
// Records with the header orderflow_loaded (HeaderLoaded) come from
// `orderflow backfill --direct`, which wrote their ClickHouse rows itself
// with Snapshot (this package's derivation, minus change_log rows): the
// group path applies such an order to its state only, as if it had derived
// its rows (no repair re-derives them), and skips such records of the other
// tables without decoding them (the side reader still puts them in the join
// state). pipeline/replay, rebuilding tables from the log, ignores the
// header.
//
// An item changed in a transaction that leaves the order row alone
// re-derives the fact at the item's LSN once the order's partition has been
// consumed up to the orders last stable offset listed after the item was
// read (so no older order event can be missing from the state).
//
// Known limits: state is in memory: every version of every customer,
// product, campaign and item, and the orders of the owned partitions (1M
// customers ≈ 255 MiB live heap). State restore reads the table topics from
// their start, so they need unlimited retention (retention.ms=-1, as the local
// stack's broker sets); with compaction or time retention, history older than
// the log is missing and as-of falls back to the oldest version kept.
package pipeline
