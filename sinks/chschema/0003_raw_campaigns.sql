-- Raw mirror of public.campaigns (see 0001 for the _version/_is_deleted contract).
CREATE TABLE IF NOT EXISTS raw_campaigns
(
    id           Int64,
    code         String,
    name         String,
    starts_at    DateTime64(6, 'UTC'),
    ends_at          DateTime64(6, 'UTC'),
    discount_percent Decimal(18, 2),
    created_at   DateTime64(6, 'UTC'),
    updated_at   DateTime64(6, 'UTC'),
    _version     UInt64,
    _is_deleted  UInt8,
    _commit_ts   DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(_version, _is_deleted)
ORDER BY id
