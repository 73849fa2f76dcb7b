-- Raw mirror of public.order_items (see 0001 for the _version/_is_deleted
-- contract). Ordered by id (the primary key, the dedup key). Not partitioned
-- by time: an item row carries no immutable timestamp; order_lines is the
-- time-partitioned view of items for reports.
CREATE TABLE IF NOT EXISTS raw_order_items
(
    id          Int64,
    order_id    Int64,
    line_no     Int32,
    product_id  Int64,
    quantity    Int32,
    unit_price  Decimal(18, 2),
    discount    Decimal(18, 2),
    created_at  DateTime64(6, 'UTC'),
    updated_at  DateTime64(6, 'UTC'),
    _version    UInt64,
    _is_deleted UInt8,
    _commit_ts  DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(_version, _is_deleted)
ORDER BY id
