-- Dimension: the current state of each product.
CREATE TABLE IF NOT EXISTS products
(
    product_id  Int64,
    sku         String,
    name        String,
    category    LowCardinality(String),
    price       Decimal(18, 2),
    currency    LowCardinality(String),
    updated_at  DateTime64(6, 'UTC'),
    _version    UInt64,
    _is_deleted UInt8
)
ENGINE = ReplacingMergeTree(_version, _is_deleted)
ORDER BY product_id
