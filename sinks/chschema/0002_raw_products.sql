-- Raw mirror of public.products (see 0001 for the _version/_is_deleted contract).
CREATE TABLE IF NOT EXISTS raw_products
(
    id          Int64,
    sku         String,
    name        String,
    category    LowCardinality(String),
    price       Decimal(18, 2),
    currency    LowCardinality(String),
    created_at  DateTime64(6, 'UTC'),
    updated_at  DateTime64(6, 'UTC'),
    _version    UInt64,
    _is_deleted UInt8,
    _commit_ts  DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(_version, _is_deleted)
ORDER BY id
