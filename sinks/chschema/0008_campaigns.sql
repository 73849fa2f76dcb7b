-- Dimension: the current state of each campaign.
CREATE TABLE IF NOT EXISTS campaigns
(
    campaign_id  Int64,
    code         String,
    name         String,
    starts_at    DateTime64(6, 'UTC'),
    ends_at          DateTime64(6, 'UTC'),
    discount_percent Decimal(18, 2),
    updated_at   DateTime64(6, 'UTC'),
    _version     UInt64,
    _is_deleted  UInt8
)
ENGINE = ReplacingMergeTree(_version, _is_deleted)
ORDER BY campaign_id
