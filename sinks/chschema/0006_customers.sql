-- Dimension: the current state of each customer (one row per customer after
-- FINAL), for segmentation and regional reports. Same dedup contract as the
-- raw mirror; signup_month is precomputed for cohort/retention reports.
CREATE TABLE IF NOT EXISTS customers
(
    customer_id  Int64,
    name         String,
    email        String,
    phone        Nullable(String),
    segment      LowCardinality(String),
    region       LowCardinality(String),
    country      LowCardinality(String),
    city         String,
    signup_at    DateTime64(6, 'UTC'),
    signup_month Date MATERIALIZED toStartOfMonth(signup_at),
    updated_at   DateTime64(6, 'UTC'),
    _version     UInt64,
    _is_deleted  UInt8
)
ENGINE = ReplacingMergeTree(_version, _is_deleted)
ORDER BY customer_id
